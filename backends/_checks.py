"""The append rule every backend enforces the same way (runtime/backend.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from interplay.core.effects import AppendMessage, CreateRoom, Write
from interplay.runtime.backend import WriteConflict


def check_appends(writes: Sequence[Write], head_of: Callable[[str], int | None]) -> None:
    """Raise ``WriteConflict`` unless each append's seq is its room's head + 1, counting the
    batch's own earlier writes. ``head_of(room)``: the stored head, None if no such room."""
    heads: dict[str, int | None] = {}
    for write in writes:
        if isinstance(write, CreateRoom):
            heads[write.room] = 0
        elif isinstance(write, AppendMessage):
            room, seq = write.message.room, write.message.seq
            head = heads[room] if room in heads else head_of(room)
            if head is None:
                raise WriteConflict(f"room {room!r}: append of seq {seq} to a room never created")
            if seq != head + 1:
                raise WriteConflict(
                    f"room {room!r}: append of seq {seq} after head {head}: another writer "
                    "shares this backend"
                )
            heads[room] = seq
