"""A store wrapper that times its writes, for the ``interplay_store_write_seconds`` metric.

Writes are synchronous and run on the event loop (``core/store.py``: a message is durable before
anyone receives it), so their latency is latency every member of the room feels; this makes it
visible. One histogram per write method; reads and anything else pass straight through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from interplay.core.histogram import Histogram
from interplay.core.rooms import RoomMessage
from interplay.core.store import DocumentRecord, DocumentStore, HistoryStore, RoomRecord, StoredEdit

WRITES = ("append", "create_room", "trim", "save_edit")


class Store(HistoryStore, DocumentStore, Protocol):
    """Both of the core's store protocols: what ``MemoryStore`` and ``SQLiteStore`` are."""


class TimedStore:
    """Delegates everything to ``inner``; each write's duration goes into ``latency[method]``."""

    def __init__(self, inner: Store, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.latency: dict[str, Histogram] = {name: Histogram() for name in WRITES}
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # close(), path, ...: whatever the real store has

    # -- timed writes --------------------------------------------------------------------

    def append(self, message: RoomMessage) -> None:
        started = self._clock()
        try:
            self.inner.append(message)
        finally:
            self.latency["append"].observe(self._clock() - started)

    def create_room(self, room: str, epoch: str) -> None:
        started = self._clock()
        try:
            self.inner.create_room(room, epoch)
        finally:
            self.latency["create_room"].observe(self._clock() - started)

    def trim(self, room: str, before_seq: int) -> None:
        started = self._clock()
        try:
            self.inner.trim(room, before_seq)
        finally:
            self.latency["trim"].observe(self._clock() - started)

    def save_edit(
        self, document: str, revision: int, edit: StoredEdit, snapshot: str | None
    ) -> None:
        started = self._clock()
        try:
            self.inner.save_edit(document, revision, edit, snapshot)
        finally:
            self.latency["save_edit"].observe(self._clock() - started)

    # -- reads, untimed ------------------------------------------------------------------

    def load_room(self, room: str) -> RoomRecord | None:
        return self.inner.load_room(room)

    def read(self, room: str, after_seq: int, limit: int) -> list[RoomMessage]:
        return self.inner.read(room, after_seq, limit)

    def load_document(self, document: str) -> DocumentRecord | None:
        return self.inner.load_document(document)
