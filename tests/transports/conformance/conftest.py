"""The transports every conformance test runs over: add one here and the whole suite runs on it."""

from __future__ import annotations

import pytest
from conformance import Transport
from conformance.grpc_transport import GrpcTransport

TRANSPORTS: dict[str, type[Transport]] = {
    "grpc": GrpcTransport,
}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Transport:
    return TRANSPORTS[request.param]()
