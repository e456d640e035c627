"""Our transports pass the transport suite (``interplay.testing.transport``): one class each,
the suite's ``listen`` for that transport mixed into ``TransportConformance``."""

from __future__ import annotations

from conformance.grpc_transport import GrpcTransport
from conformance.websocket_transport import JsonWebSocketTransport, WebSocketTransport

from interplay.testing.transport import TransportConformance


class TestGrpc(GrpcTransport, TransportConformance):
    pass


class TestWebSocket(WebSocketTransport, TransportConformance):
    pass


class TestWebSocketJson(JsonWebSocketTransport, TransportConformance):
    pass
