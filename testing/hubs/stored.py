"""The core's hubs with their storage effects performed at once, on a backend's sync side.

``Stored(hub, backend)`` wraps a ``RoomHub`` or ``DocumentHub`` so ``handle`` does what the
runtime does around it: answer ``needs`` first, handle, then write what the hub wrote, and
read each ``Replay`` from the log (a reader behind retention gets the ``BehindRetention`` in
its place: the runtime would cut it). The hub machines (and interplay's core tests) drive hubs
with it, no event loop; a new hub over the same backend is a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

from interplay.backends import MemoryBackend
from interplay.core.documents import DocumentHub
from interplay.core.effects import Read, Write
from interplay.core.events import Deliver
from interplay.core.log_cursor import BehindRetention, LogCursor
from interplay.core.rooms import Replay, RoomHub

H = TypeVar("H", RoomHub, DocumentHub)
PAGE = 7  # messages per log read: small, so that tests cross page boundaries


class SyncBackend(Protocol):
    """A backend's synchronous side (``MemoryBackend``, ``SQLiteBackend``)."""

    def read_now(self, read: Read) -> Any: ...

    def write_now(self, writes: Sequence[Write]) -> None: ...


class Stored(Generic[H]):
    def __init__(self, hub: H, backend: SyncBackend) -> None:
        self.hub: H = hub
        self.backend = backend

    def handle(self, command: Any, **kwargs: Any) -> list[Any]:
        hub, backend = self.hub, self.backend
        while (read := hub.needs(command)) is not None:
            result = backend.read_now(read)
            if isinstance(hub, RoomHub):
                hub.provide(read, result, session=getattr(command, "session", ""))
            else:
                hub.provide(read, result)
        try:
            events = list(hub.handle(command, **kwargs))
        finally:
            backend.write_now(hub.take_writes())
        if isinstance(hub, RoomHub):
            return self._replayed(events, kwargs.get("now", 0.0))
        return events

    def _replayed(self, events: list[Any], now: float) -> list[Any]:
        """Each ``Replay`` read from the log as the runtime does (a page at a time, checked
        by a ``LogCursor``), in its place; a reader behind retention ends there."""
        hub = self.hub
        assert isinstance(hub, RoomHub)
        out = []
        for event in events:
            replay = event.message
            if not isinstance(replay, Replay):
                out.append(event)
                continue
            cursor = LogCursor(room=replay.room, epoch=replay.epoch, after=replay.after_seq)
            cutoff = int((now - hub.ttl) * 1000) if hub.ttl is not None else 0
            while cursor.after < replay.head:
                page = self.backend.read_now(cursor.read(PAGE))
                assert isinstance(page, list)
                try:
                    taken = cursor.take(page, upto=replay.head, cutoff=cutoff)
                except BehindRetention as behind:
                    hub.retained_from(behind.room, behind.first_seq)
                    out.append(Deliver(to=event.to, message=behind))
                    break
                out += [Deliver(to=event.to, message=m) for m in taken]
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hub, name)


def stored_rooms(backend: SyncBackend | None = None, **kwargs: Any) -> Any:
    """A ``RoomHub(**kwargs)`` over ``backend`` (a new MemoryBackend by default)."""
    return Stored(RoomHub(**kwargs), backend if backend is not None else MemoryBackend())


def stored_documents(backend: SyncBackend | None = None, **kwargs: Any) -> Any:
    """A ``DocumentHub(**kwargs)`` over ``backend`` (a new MemoryBackend by default)."""
    return Stored(DocumentHub(**kwargs), backend if backend is not None else MemoryBackend())
