"""Every chat conformance test (tests/transports/conformance/test_chat.py), the members of each
room split across two nodes: the same tests, run again here with this folder's ``transport``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

_path = Path(__file__).parent.parent / "conformance" / "test_chat.py"
_spec = importlib.util.spec_from_file_location("conformance_test_chat_two_nodes", _path)
assert _spec is not None and _spec.loader is not None
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)

# Slow: a Redis and two nodes per test; CI runs it, the inner loop has the one-node suite.
pytestmark = [_suite.pytestmark, pytest.mark.slow]
globals().update({name: getattr(_suite, name) for name in dir(_suite) if name.startswith("test_")})

# The model test starts two nodes and a Redis per example: a tenth of the profile's examples
# here (the single-node suite runs them all against the same rules).
_model = _suite.test_valid_and_refused_messages_mixed_on_one_stream_match_the_model
test_valid_and_refused_messages_mixed_on_one_stream_match_the_model = settings(
    max_examples=max(5, settings.default.max_examples // 10),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    deadline=None,
)(given(steps=_suite.STEPS)(_model.hypothesis.inner_test))
