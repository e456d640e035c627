"""What the core asks of storage, as values: reads it needs before a command, writes it made.

The core never calls a store. A hub says what it must read before it can handle a command
(``needs(command)`` -> ``LoadRoom``, ``ReadHistory``, ``FindMessage``, ``LoadDocument``;
retention's sweep:
``RoomAges``), takes the result back (``provide(read, result)``), and after each command hands
over what must be written (``take_writes()`` -> ``CreateRoom``, ``AppendMessage``, ``TrimRoom``,
``ForgetRoom``, ``SaveEdit``, in order).
The runtime performs them on a backend (``interplay.backends``) and delivers a command's events
only once its writes, and every write before them, are durable: a message that got its ``seq``
is stored before anyone receives it. The same core so runs over SQLite in-process or a
networked engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ot import TextOp
    from .rooms import RoomMessage


# -- records: what a backend holds ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomRecord:
    """A room's stream position: its identity (``epoch``) and the last assigned ``seq``."""

    epoch: str
    head: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEdit:
    op: TextOp
    author: str
    op_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentRecord:
    """A snapshot (``text`` at ``revision``) and the edits after it, in order; ``earlier``:
    ``(author, op_id, revision)`` of the kept edits at or before the snapshot (their op ids
    are recognised across a restart)."""

    text: str
    revision: int
    edits: list[StoredEdit]
    earlier: list[tuple[str, str, int]] = field(default_factory=list)


# -- reads: what a hub needs before it can handle a command --------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadRoom:
    """The room's record and its last ``recent`` messages (the history window).
    ``generation`` is the hub's, for its own bookkeeping: a backend ignores it."""

    room: str
    recent: int
    generation: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedRoom:
    """What ``LoadRoom`` returns: ``record`` None if the backend never saw the room;
    ``first_seq`` the oldest stored message's seq (None: none stored, or not told); ``ids``
    the ``(sender, id)`` of every stored message, oldest first (for the idempotency filter,
    ``core/id_filter.py``)."""

    record: RoomRecord | None
    recent: list[RoomMessage]
    first_seq: int | None = None
    ids: Sequence[tuple[str, str]] = ()
    # Many nodes: ``(node, user)`` for each user present in the room through another node.
    elsewhere: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadHistory:
    """Up to ``limit`` stored messages of ``room`` with seq > ``after_seq``, ascending."""

    room: str
    after_seq: int
    limit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FindMessage:
    """The stored message of ``room`` that ``sender`` sent with ``id`` (None: none is
    stored): an index lookup, never a scan (a re-sent TEXT is recognised by it)."""

    room: str
    sender: str
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadDocument:
    """The stored document (None if never edited)."""

    document: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomAges:
    """Retention's sweep, one bounded step: up to ``limit`` rooms whose name sorts after
    ``after_room``, in name order, each as a ``RoomAge`` measured against ``before`` (Unix ms:
    messages stamped earlier have expired)."""

    before: int
    after_room: str
    limit: int
    generation: int = 0  # the hub's, as on LoadRoom


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomAge:
    """One room of a ``RoomAges`` step: its stored ``epoch`` and ``head``, the oldest stored seq
    (``oldest``, None: no message stored) and the first seq stamped at or after ``before``
    (``first_kept``, None: every stored message has expired)."""

    room: str
    epoch: str
    head: int
    oldest: int | None
    first_kept: int | None


Read = LoadRoom | ReadHistory | FindMessage | LoadDocument | RoomAges


# -- writes: what a hub changed, to be made durable in order --------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRoom:
    """Start (or restart) a room's stream at seq 0 under ``epoch``, forgetting old messages."""

    room: str
    epoch: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendMessage:
    """Store a sequenced message; the room's head becomes ``message.seq`` (the next one: a
    backend refuses any other, which is how two writers of one room are caught)."""

    message: RoomMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class TrimRoom:
    """Forget the room's messages with seq < ``before_seq`` (retention)."""

    room: str
    before_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetRoom:
    """Forget the room: its record (epoch and head) and every message. A later JOIN starts it
    afresh under a new epoch, so a client resuming the old one is told history was reset.
    ``head``: the head retention saw (None: not told); a backend many nodes share forgets the
    room only while it is still there and no node has anyone in it."""

    room: str
    head: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveEdit:
    """``edit`` made ``revision``; with a ``snapshot`` (the text at ``revision``), keep it and
    forget the edits before ``keep_from`` (those from it on stay, for their op ids)."""

    document: str
    revision: int
    edit: StoredEdit
    snapshot: str | None = None
    keep_from: int = 0


Write = CreateRoom | AppendMessage | TrimRoom | ForgetRoom | SaveEdit
