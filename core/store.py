"""What the core needs from durable storage, declared here so the core never imports a store.

Implementations live in ``interplay.stores`` (SQLite, the embedded default, and an in-memory
one for tests). Calls are synchronous: ``append`` returns only once the message is durable, so a
message that got its ``seq`` is stored before anyone receives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .ot import TextOp
    from .rooms import RoomMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomRecord:
    """A room's stream position: its identity (``epoch``) and the last assigned ``seq``."""

    epoch: str
    head: int


class HistoryStore(Protocol):
    def load_room(self, room: str) -> RoomRecord | None:
        """The room's record, or None if the store has never seen the room (or lost it)."""

    def create_room(self, room: str, epoch: str) -> None:
        """Start (or restart) a room's stream at seq 0 under ``epoch``, forgetting old messages."""

    def append(self, message: RoomMessage) -> None:
        """Store a sequenced message durably; the room's head becomes ``message.seq``."""

    def read(self, room: str, after_seq: int, limit: int) -> list[RoomMessage]:
        """Up to ``limit`` stored messages with seq > ``after_seq``, ascending."""

    def trim(self, room: str, before_seq: int) -> None:
        """Forget the room's messages with seq < ``before_seq`` (retention)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEdit:
    op: TextOp
    author: str
    op_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentRecord:
    """A snapshot (``text`` at ``revision``) and the edits after it, in order."""

    text: str
    revision: int
    edits: list[StoredEdit]


class DocumentStore(Protocol):
    def load_document(self, document: str) -> DocumentRecord | None:
        """The stored document, or None if it was never edited."""

    def save_edit(
        self, document: str, revision: int, edit: StoredEdit, snapshot: str | None
    ) -> None:
        """Store durably that ``edit`` made ``revision``. With a ``snapshot`` (the text at
        ``revision``), keep it and forget the edits up to ``revision``."""
