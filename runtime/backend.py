"""What the runtime needs from a backend: perform the core's reads and writes (core/effects.py).

A backend is any object with these three coroutines; ``interplay.backends`` has the memory and
SQLite ones, and ``interplay.testing.backend`` the conformance suite every backend passes.

* ``write(writes)``: make the writes durable, all or none, in order; return once they are.
  The runtime calls it with everything its sessions wrote while the previous call ran (group
  commit), so one call may carry many messages of many rooms.
* ``read(read)``: the answer to a ``LoadRoom`` (``LoadedRoom``), ``ReadHistory`` (a list of
  ``RoomMessage``), ``FindMessage`` (a ``RoomMessage`` or None: an index lookup),
  ``LoadDocument`` (``DocumentRecord`` or None) or ``RoomAges`` (a list of
  ``RoomAge``, retention's sweep). The runtime only reads once every write it made before is
  durable.
* ``aclose()``.

An ``AppendMessage`` whose seq is not the room's head + 1 (another writer got there first, or
the room was never created) fails the whole call with ``WriteConflict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from interplay.core.effects import DocumentRecord, LoadedRoom, Read, RoomAge, Write
from interplay.core.rooms import RoomMessage

ReadResult = LoadedRoom | list[RoomMessage] | RoomMessage | DocumentRecord | list[RoomAge] | None


class WriteConflict(Exception):
    """A write that contradicts what the backend holds: nothing of its call was written."""


class Backend(Protocol):
    async def read(self, read: Read) -> ReadResult: ...

    async def write(self, writes: Sequence[Write]) -> None: ...

    async def aclose(self) -> None: ...
