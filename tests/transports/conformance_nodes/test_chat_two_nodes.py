"""Every chat conformance check (``interplay.testing.transport.ChatConformance``), the members of
each room split across two nodes on one Redis (``conformance/nodes.py``), over gRPC and
WebSocket."""

from __future__ import annotations

from typing import Any

import pytest
from conformance.grpc_transport import GrpcTransport
from conformance.nodes import TwoNodes
from conformance.websocket_transport import WebSocketTransport
from hypothesis import given, settings

from interplay.testing.transport import ChatConformance
from interplay.testing.transport.base import SUPPRESSED
from interplay.testing.transport.chat import STEPS

# Slow: a Redis and two nodes per test; CI runs it, the inner loop has the one-node suite.
pytestmark = pytest.mark.slow

_model: Any = ChatConformance.test_valid_and_refused_messages_mixed_on_one_stream_match_the_model


class _FewerExamples(ChatConformance):
    # The model check starts two nodes and a Redis per example: a tenth of the profile's
    # examples here (the one-node suite runs them all against the same rules).
    test_valid_and_refused_messages_mixed_on_one_stream_match_the_model = settings(
        max_examples=max(5, settings.default.max_examples // 10),
        suppress_health_check=SUPPRESSED,
        deadline=None,
    )(given(steps=STEPS)(_model.hypothesis.inner_test))


class TestGrpcTwoNodes(TwoNodes, GrpcTransport, _FewerExamples):
    pass


class TestWebSocketTwoNodes(TwoNodes, WebSocketTransport, _FewerExamples):
    pass
