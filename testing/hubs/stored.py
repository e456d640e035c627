"""The core's hubs with their storage effects performed at once, on a backend's sync side.

``Stored(hub, backend)`` wraps a ``RoomHub`` or ``DocumentHub`` so ``handle`` does what the
runtime does around it: answer ``needs`` first, handle, then write what the hub wrote. The hub
machines (and interplay's core tests) drive hubs with it, no event loop; a new hub over the
same backend is a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

from interplay.backends import MemoryBackend
from interplay.core.documents import DocumentHub
from interplay.core.effects import Read, Write
from interplay.core.rooms import RoomHub

H = TypeVar("H", RoomHub, DocumentHub)


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
            return list(hub.handle(command, **kwargs))
        finally:
            backend.write_now(hub.take_writes())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hub, name)


def stored_rooms(backend: SyncBackend | None = None, **kwargs: Any) -> Any:
    """A ``RoomHub(**kwargs)`` over ``backend`` (a new MemoryBackend by default)."""
    return Stored(RoomHub(**kwargs), backend if backend is not None else MemoryBackend())


def stored_documents(backend: SyncBackend | None = None, **kwargs: Any) -> Any:
    """A ``DocumentHub(**kwargs)`` over ``backend`` (a new MemoryBackend by default)."""
    return Stored(DocumentHub(**kwargs), backend if backend is not None else MemoryBackend())
