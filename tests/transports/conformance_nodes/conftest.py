"""The chat conformance suite over two nodes on one Redis (``conformance/nodes.py``)."""

from __future__ import annotations

import pytest
from conformance import Transport
from conformance.grpc_transport import GrpcTransport
from conformance.nodes import TwoNodes
from conformance.websocket_transport import WebSocketTransport

TRANSPORTS: dict[str, type[Transport]] = {"grpc": GrpcTransport, "websocket": WebSocketTransport}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Transport:
    return TwoNodes(TRANSPORTS[request.param]())
