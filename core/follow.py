"""One room's shared stream, put back in order for the hub (many nodes, DESIGN §10).

A node hears of a room's messages three ways: live from pub/sub, from the answer to its own
publish script, and from reading the stream (to fill a gap, or after a reconnect). They arrive
in any order, some twice. ``Follower.offer`` takes each with the hub's ``(epoch, head)`` for the
room and says which messages are next, in seq order (hand each to ``RoomHub.observe``), and
whether the node must read the stream after the head (``behind``: a seq beyond the next one is
waiting, or a message of another epoch arrived). Nothing is ever delivered out of order or
twice, and a gap is never skipped: what is ahead waits, bounded by ``limit``, for the read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .rooms import RoomMessage

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ordered:
    """What ``offer`` found: ``ready`` in seq order for ``RoomHub.observe``; ``behind``: read
    the stream after the head; ``new_epoch``: the stream restarted under another epoch (read
    it from its retained start)."""

    ready: list[RoomMessage] = field(default_factory=list)
    behind: bool = False
    new_epoch: bool = False


class Follower:
    """Messages of one room that came early, until the ones before them arrive."""

    __slots__ = ("_ahead", "_limit")

    def __init__(self, *, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        self._ahead: dict[int, RoomMessage] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._ahead)

    def offer(self, message: RoomMessage, head: tuple[str, int]) -> Ordered:
        """``message`` arrived; ``head`` is the hub's ``(epoch, seq)`` of the room."""
        epoch, seq = head
        if message.epoch != epoch:
            self._ahead.clear()  # the old epoch's messages will never be next
            return Ordered(behind=True, new_epoch=True)
        if message.seq <= seq:
            return self.drain(head)  # a duplicate; maybe what it was waiting for came
        if message.seq > seq + 1:
            if len(self._ahead) < self._limit:
                self._ahead[message.seq] = message
            return Ordered(behind=True)
        self._ahead[message.seq] = message
        return self.drain(head)

    def hold(self, message: RoomMessage) -> None:
        """Keep ``message`` for a room the hub has not loaded yet (``drain`` it after)."""
        if len(self._ahead) < self._limit:
            self._ahead[message.seq] = message

    def drain(self, head: tuple[str, int]) -> Ordered:
        """What is next after ``head`` among the messages waiting (e.g. after a read)."""
        epoch, seq = head
        ahead, ready = self._ahead, []
        for old in [s for s, m in ahead.items() if s <= seq or m.epoch != epoch]:
            del ahead[old]
        while (following := ahead.pop(seq + 1, None)) is not None:
            ready.append(following)
            seq += 1
        return Ordered(ready=ready, behind=bool(ahead))

    def clear(self) -> None:
        self._ahead.clear()


class InRevisionOrder(Generic[T]):
    """A document's shared log, put back in revision order for ``DocumentHub.observe_edit``:
    what came early waits (at most ``limit``) until the revisions before it arrive."""

    __slots__ = ("_ahead", "_limit")

    def __init__(self, *, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        self._ahead: dict[int, T] = {}
        self._limit = limit

    def __len__(self) -> int:
        return len(self._ahead)

    def offer(self, revision: int, item: T, head: int) -> tuple[list[tuple[int, T]], bool]:
        """``item`` is ``revision``; ``head`` the replica's revision: what is next, in order,
        and whether the log must be read after the head (a revision is missing)."""
        if revision > head:
            self.hold(revision, item)
        return self.drain(head)

    def hold(self, revision: int, item: T) -> None:
        """Keep ``item`` for a document not loaded yet (``drain`` it after)."""
        if len(self._ahead) < self._limit:
            self._ahead[revision] = item

    def drain(self, head: int) -> tuple[list[tuple[int, T]], bool]:
        """What is next after ``head`` among what waits (e.g. after a read of the log)."""
        ahead, ready = self._ahead, []
        for old in [r for r in ahead if r <= head]:
            del ahead[old]
        while (following := ahead.pop(head + 1, None)) is not None:
            head += 1
            ready.append((head, following))
        return ready, bool(ahead)
