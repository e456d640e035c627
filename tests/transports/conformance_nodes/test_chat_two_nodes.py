"""Every chat conformance test (tests/transports/conformance/test_chat.py), the members of each
room split across two nodes: the same tests, run again here with this folder's ``transport``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_path = Path(__file__).parent.parent / "conformance" / "test_chat.py"
_spec = importlib.util.spec_from_file_location("conformance_test_chat_two_nodes", _path)
assert _spec is not None and _spec.loader is not None
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)

pytestmark = _suite.pytestmark
globals().update({name: getattr(_suite, name) for name in dir(_suite) if name.startswith("test_")})
