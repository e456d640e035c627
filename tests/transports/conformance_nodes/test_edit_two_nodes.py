"""Every edit conformance check (``interplay.testing.transport.EditConformance``), the editors
of each document split across two nodes on one Redis (``conformance/nodes.py``), over gRPC
and WebSocket: each edit committed to the shared log by compare-and-set
(runtime/node_documents.py)."""

from __future__ import annotations

from typing import Any

import pytest
from conformance.grpc_transport import GrpcTransport
from conformance.nodes import TwoNodes
from conformance.websocket_transport import WebSocketTransport
from hypothesis import given, settings

from interplay.testing.transport import EditConformance
from interplay.testing.transport.base import SUPPRESSED
from interplay.testing.transport.edit import EDITS

# Slow: a Redis and two nodes per test; CI runs it, the inner loop has the one-node suite.
pytestmark = pytest.mark.slow

_model: Any = EditConformance.test_valid_and_refused_edits_mixed_on_one_stream_match_the_model


class _FewerExamples(EditConformance):
    # The model check starts two nodes and a Redis per example: a tenth of the profile's
    # examples here (the one-node suite runs them all against the same rules).
    test_valid_and_refused_edits_mixed_on_one_stream_match_the_model = settings(
        max_examples=max(5, settings.default.max_examples // 10),
        suppress_health_check=SUPPRESSED,
        deadline=None,
    )(given(edits=EDITS)(_model.hypothesis.inner_test))


class TestGrpcEditTwoNodes(TwoNodes, GrpcTransport, _FewerExamples):
    pass


class TestWebSocketEditTwoNodes(TwoNodes, WebSocketTransport, _FewerExamples):
    pass
