"""The suite's tests and its neutral client name no wire library: a WebSocket transport must
run them unchanged (only conformance/grpc_transport.py and the server factory know gRPC)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SUPPORT = HERE.parents[1] / "support" / "conformance"
NEUTRAL = [
    *sorted(p for p in HERE.glob("test_*.py") if p.name != Path(__file__).name),
    SUPPORT / "calls.py",
    SUPPORT / "transport.py",
]
WIRE = ("grpclib", "GRPCError", "Status.", "ChannelFor", "h2.", "websockets", "_maybe_raise")


@pytest.mark.parametrize("path", NEUTRAL, ids=lambda p: p.name)
def test_names_no_wire_library(path: Path) -> None:
    text = path.read_text()
    assert [word for word in WIRE if word in text] == []


def test_every_module_of_the_suite_is_checked() -> None:
    assert {p.name for p in NEUTRAL} >= {"test_chat.py", "test_edit.py", "test_game.py"}
