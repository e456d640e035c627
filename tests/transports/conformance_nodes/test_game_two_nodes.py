"""Every GameSync conformance check (``interplay.testing.transport.GameConformance``), the
players of each match split across two nodes on one Redis (``conformance/nodes.py``), over
gRPC and WebSocket: one node owns each match by lease and ticks it, the other forwards its
players' inputs and relays the owner's states (runtime/node_matches.py)."""

from __future__ import annotations

import pytest
from conformance.grpc_transport import GrpcTransport
from conformance.nodes import TwoNodes
from conformance.websocket_transport import WebSocketTransport

from interplay.testing.transport import GameConformance

# Slow: a Redis and two nodes per test; CI runs it, the inner loop has the one-node suite.
pytestmark = pytest.mark.slow


class TestGrpcGameTwoNodes(TwoNodes, GrpcTransport, GameConformance):
    pass


class TestWebSocketGameTwoNodes(TwoNodes, WebSocketTransport, GameConformance):
    pass
