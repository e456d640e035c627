"""Where one session reads one room's log (history on JOIN, and a receiver that fell behind),
or one document's kept history (an editor that fell behind: ``RevisionCursor``).

Every TEXT is durable before anyone receives it, so a session need not be handed a room's
history, or what it missed while slow, in one go: it keeps a ``LogCursor`` (the last seq it was
given), reads a page at a time (``read(limit)`` -> a ``ReadHistory`` the runtime performs), and
``take``s each page, which checks the page continues where the cursor is. A page that does not
(the log was trimmed past the cursor, its messages expired, or the room's history was reset
under another epoch) raises ``BehindRetention``: the session can only resume, and its resume
is told where history starts now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .effects import ReadHistory

if TYPE_CHECKING:
    from .documents import Acked, Remote
    from .rooms import RoomMessage


class BehindRetention(Exception):
    """The log no longer holds the message after the cursor; ``first_seq``: where it starts
    now (None: the room's stream was reset under another epoch)."""

    def __init__(self, room: str, after: int, first_seq: int | None) -> None:
        where = "was reset" if first_seq is None else f"starts at seq {first_seq}"
        super().__init__(f"room {room!r}: history {where}; seq {after + 1} is no longer retained")
        self.room = room
        self.after = after
        self.first_seq = first_seq


class LogCursor:
    """The position of one session in one room's log (see the module docstring).

    ``stale``: presence (JOIN/LEAVE) the session missed while it read from the log; it gets
    the room's current members when it is back to live delivery."""

    __slots__ = ("after", "epoch", "room", "stale")

    def __init__(self, *, room: str, epoch: str, after: int, stale: bool = False) -> None:
        self.room = room
        self.epoch = epoch
        self.after = after
        self.stale = stale

    def read(self, limit: int) -> ReadHistory:
        """The next page: up to ``limit`` messages after the cursor."""
        return ReadHistory(room=self.room, after_seq=self.after, limit=limit)

    def take(self, page: Sequence[RoomMessage], *, upto: int, cutoff: int = 0) -> list[RoomMessage]:
        """The messages of ``page`` (the answer to ``read``) with seq up to ``upto``, in
        order; the cursor moves past them. Raises ``BehindRetention`` if the page does not
        start right after the cursor (or under the cursor's epoch), or if its first message
        was stamped before ``cutoff`` (Unix ms: expired by a TTL), or if it is empty while
        messages up to ``upto`` exist."""
        if upto <= self.after:
            return []
        first = page[0] if page else None
        if first is None or first.seq != self.after + 1 or first.timestamp < cutoff:
            gone = first is not None and first.epoch != self.epoch
            raise BehindRetention(
                self.room, self.after, None if gone else (first.seq if first else upto + 1)
            )
        if first.epoch != self.epoch:
            raise BehindRetention(self.room, self.after, None)
        taken = [m for m in page if m.seq <= upto]
        last = taken[-1].seq
        if last - first.seq + 1 != len(taken):
            raise BehindRetention(self.room, self.after, None)  # a hole: not one stream
        self.after = last
        return taken


class RevisionCursor:
    """The position of one editing session in one document's history (the edits the hub
    keeps: ``DocumentHub.history``): ``after``, the last revision it was given. ``acks``: the
    ``Acked`` of its own edits past the cursor, held back by revision so that each comes in
    its place among the others' edits, as live delivery would have sent it."""

    __slots__ = ("acks", "after", "document")

    def __init__(self, *, document: str, after: int) -> None:
        self.document = document
        self.after = after
        self.acks: dict[int, Acked] = {}

    def take(self, remotes: Sequence[Remote], *, upto: int) -> list[Remote | Acked]:
        """The events of ``remotes`` (one page of history after the cursor) up to revision
        ``upto``, in order, each of its own edits as its ``Acked``; the cursor moves past
        them."""
        taken: list[Remote | Acked] = []
        for remote in remotes:
            if remote.revision > upto:
                break
            if remote.revision != self.after + 1:
                raise ValueError(f"revision {remote.revision} does not follow {self.after}")
            taken.append(self.acks.pop(remote.revision, remote))
            self.after = remote.revision
        return taken
