"""The transports every conformance test runs over: add one here and the whole suite runs on it."""

from __future__ import annotations

import pytest
from conformance import Transport
from conformance.grpc_transport import GrpcTransport
from conformance.websocket_transport import JsonWebSocketTransport, WebSocketTransport

TRANSPORTS: dict[str, type[Transport]] = {
    "grpc": GrpcTransport,
    "websocket": WebSocketTransport,
    "websocket-json": JsonWebSocketTransport,
}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Transport:
    return TRANSPORTS[request.param]()
