"""The suite's checks and its neutral client name no wire library: any transport runs them
unchanged (only the ``listen`` of each transport, tests/support/conformance, knows its wire)."""

from __future__ import annotations

from pathlib import Path

import pytest

import interplay.testing.transport as suite

SUITE = Path(suite.__file__).resolve().parent
NEUTRAL = sorted(SUITE.glob("*.py"))
WIRE = ("grpclib", "GRPCError", "Status.", "ChannelFor", "h2.", "websockets", "_maybe_raise")


@pytest.mark.parametrize("path", NEUTRAL, ids=lambda p: p.name)
def test_names_no_wire_library(path: Path) -> None:
    text = path.read_text()
    assert [word for word in WIRE if word in text] == []


def test_every_module_of_the_suite_is_checked() -> None:
    names = {p.name for p in NEUTRAL}
    assert names >= {"chat.py", "edit.py", "game.py", "calls.py", "server.py", "base.py"}


def test_the_words_do_name_each_wire() -> None:
    """The guard can fail: each transport's own module names its wire with one of the words."""
    wires = Path(__file__).resolve().parents[2] / "support" / "conformance"
    for name in ("grpc_transport.py", "websocket_transport.py"):
        assert any(word in (wires / name).read_text() for word in WIRE), name
