"""The embedded default backend: one SQLite file in WAL mode, group commit.

Each ``write`` call is one transaction: the runtime hands over everything its sessions wrote
while the previous one ran, so a busy room commits many messages at once. ``synchronous=NORMAL``
under WAL makes every committed transaction survive a crash of the process (the OS holds the WAL
pages); a power cut may lose the last few commits. Pass ``synchronous="FULL"`` to trade write
latency for surviving that too. Statements run on the event loop's thread: a transaction of a
batch takes tens of microseconds, less than handing it to a thread would.

The file is marked as interplay's (``PRAGMA application_id``): a file that is not a database, or
is another program's, or cannot be created, is refused at open with ``UnusableDataFile`` (one
line that says why), never left to fail later.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from interplay.core.effects import (
    AppendMessage,
    CreateRoom,
    DocumentRecord,
    FindMessage,
    ForgetRoom,
    LoadedRoom,
    LoadRoom,
    Read,
    ReadHistory,
    RoomAge,
    RoomAges,
    RoomRecord,
    SaveEdit,
    StoredEdit,
    TrimRoom,
    Write,
)
from interplay.core.ot import TextOp
from interplay.core.rooms import Kind, RoomMessage
from interplay.runtime.backend import ReadResult

from ._checks import check_appends

# "IPLY": marks a file as interplay's, so another program's SQLite database is not taken for it.
APPLICATION_ID = 0x49504C59

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room  TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    head  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    id        TEXT NOT NULL,
    sender    TEXT NOT NULL,
    content   TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (room, sender, id);
CREATE TABLE IF NOT EXISTS documents (
    document TEXT PRIMARY KEY,
    text     TEXT NOT NULL,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS document_ops (
    document TEXT NOT NULL,
    revision INTEGER NOT NULL,
    op       TEXT NOT NULL,
    author   TEXT NOT NULL,
    op_id    TEXT NOT NULL,
    PRIMARY KEY (document, revision)
) WITHOUT ROWID;
"""
_COLUMNS = {
    "rooms": ["room", "epoch", "head"],
    "messages": ["room", "seq", "id", "sender", "content", "timestamp", "kind"],
    "documents": ["document", "text", "revision"],
    "document_ops": ["document", "revision", "op", "author", "op_id"],
}


class UnusableDataFile(Exception):
    """The data file cannot be opened as interplay's: ``reason`` says why, in one line."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class SQLiteBackend:
    """Chat history and documents. A document is a snapshot plus the ops since it; a new
    snapshot deletes the ops before its ``keep_from`` (the core's kept revisions stay, for
    their op ids), so a document costs its text plus about ``DocumentHub(keep=...)`` ops."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous: unknown SQLite level {synchronous!r}")
        self.path = str(path)
        if self.path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise UnusableDataFile(
                    self.path, f"cannot create its directory ({error.strerror or error})"
                ) from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as error:
            raise UnusableDataFile(self.path, f"cannot open it ({error})") from None
        try:
            self._open(synchronous)
        except BaseException:
            self._db.close()
            raise

    def _open(self, synchronous: str) -> None:
        """Check the file is interplay's (or new), then make sure every table is there."""
        db = self._db
        try:
            application = db.execute("PRAGMA application_id").fetchone()[0]
            tables = {
                name: [column[1] for column in db.execute(f"PRAGMA table_info({name!r})")]
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_master"
                    " WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            }
        except sqlite3.DatabaseError as error:  # "file is not a database"
            raise UnusableDataFile(self.path, f"not an SQLite database ({error})") from None
        if application not in (0, APPLICATION_ID):
            raise UnusableDataFile(
                self.path, f"another program's SQLite database (application_id {application:#x})"
            )
        foreign = sorted(name for name, columns in tables.items() if _COLUMNS.get(name) != columns)
        if foreign:  # application_id 0: ours from before it was set, or someone else's
            raise UnusableDataFile(
                self.path, f"another program's SQLite database (tables {', '.join(foreign)})"
            )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.executescript(_SCHEMA)
            if application != APPLICATION_ID:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.Error as error:  # read-only file or directory, full disk, ...
            raise UnusableDataFile(self.path, f"cannot write to it ({error})") from None

    async def read(self, read: Read) -> ReadResult:
        return self.read_now(read)

    async def write(self, writes: Sequence[Write]) -> None:
        self.write_now(writes)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # -- reads ---------------------------------------------------------------------------

    def read_now(self, read: Read) -> ReadResult:
        if isinstance(read, LoadRoom):
            record = self._record(read.room)
            recent = []
            if record is not None and record.head and read.recent:
                recent = self._messages(read.room, max(0, record.head - read.recent), read.recent)
            first = self._oldest(read.room) if record is not None else None
            ids: tuple[tuple[str, str], ...] = ()
            if record is not None:
                ids = tuple(
                    self._db.execute(
                        "SELECT sender, id FROM messages WHERE room = ? ORDER BY seq", (read.room,)
                    )
                )
            return LoadedRoom(record=record, recent=recent, first_seq=first, ids=ids)
        if isinstance(read, FindMessage):
            return self._find(read)
        if isinstance(read, ReadHistory):
            return self._messages(read.room, read.after_seq, read.limit)
        if isinstance(read, RoomAges):
            return self._ages(read)
        return self._document(read.document)

    def _find(self, read: FindMessage) -> RoomMessage | None:
        """The first stored message of ``read.sender`` with ``read.id`` (the messages_by_id
        index: a seek, not a scan)."""
        row = self._db.execute(
            "SELECT seq FROM messages WHERE room = ? AND sender = ? AND id = ?"
            " ORDER BY seq LIMIT 1",
            (read.room, read.sender, read.id),
        ).fetchone()
        if row is None:
            return None
        found = self._messages(read.room, row[0] - 1, 1)
        return found[0] if found else None

    def _oldest(self, room: str) -> int | None:
        row = self._db.execute(
            "SELECT seq FROM messages WHERE room = ? ORDER BY seq LIMIT 1", (room,)
        ).fetchone()
        return row[0] if row else None

    def _ages(self, read: RoomAges) -> list[RoomAge]:
        """Each room's oldest seq (an index seek) and its first unexpired one: a scan from the
        oldest that stops at the first young message, so it reads only what is to be trimmed."""
        db = self._db
        rooms = db.execute(
            "SELECT room, epoch, head FROM rooms WHERE room > ? ORDER BY room LIMIT ?",
            (read.after_room, read.limit),
        ).fetchall()
        ages = []
        for room, epoch, head in rooms:
            kept = db.execute(
                "SELECT seq FROM messages WHERE room = ? AND timestamp >= ? ORDER BY seq LIMIT 1",
                (room, read.before),
            ).fetchone()
            ages.append(
                RoomAge(
                    room=room,
                    epoch=epoch,
                    head=head,
                    oldest=self._oldest(room),
                    first_kept=kept[0] if kept else None,
                )
            )
        return ages

    def _record(self, room: str) -> RoomRecord | None:
        row = self._db.execute("SELECT epoch, head FROM rooms WHERE room = ?", (room,)).fetchone()
        return RoomRecord(epoch=row[0], head=row[1]) if row else None

    def _head(self, room: str) -> int | None:
        record = self._record(room)
        return record.head if record else None

    def _messages(self, room: str, after_seq: int, limit: int) -> list[RoomMessage]:
        rows = self._db.execute(
            "SELECT seq, id, sender, content, timestamp, kind, epoch FROM messages"
            " JOIN rooms USING (room) WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?",
            (room, after_seq, limit),
        )
        return [
            RoomMessage(
                kind=Kind(kind),
                room=room,
                seq=seq,
                id=id_,
                sender=sender,
                content=content,
                timestamp=timestamp,
                epoch=epoch,
            )
            for seq, id_, sender, content, timestamp, kind, epoch in rows
        ]

    def _document(self, document: str) -> DocumentRecord | None:
        row = self._db.execute(
            "SELECT text, revision FROM documents WHERE document = ?", (document,)
        ).fetchone()
        text, revision = row if row else ("", 0)
        edits = [
            StoredEdit(op=TextOp.from_components(json.loads(op)), author=author, op_id=op_id)
            for op, author, op_id in self._db.execute(
                "SELECT op, author, op_id FROM document_ops WHERE document = ? AND revision > ?"
                " ORDER BY revision",
                (document, revision),
            )
        ]
        if not row and not edits:
            return None
        earlier = self._db.execute(
            "SELECT author, op_id, revision FROM document_ops"
            " WHERE document = ? AND revision <= ? AND op_id != '' ORDER BY revision",
            (document, revision),
        ).fetchall()
        return DocumentRecord(text=text, revision=revision, edits=edits, earlier=earlier)

    # -- writes: one transaction per call -------------------------------------------------

    def write_now(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # holds the write lock: the heads checked stay true
        try:
            check_appends(writes, self._head)
            heads: dict[str, int] = {}
            appended: list[tuple[str, int, str, str, str, int, int]] = []
            for write in writes:
                if isinstance(write, AppendMessage):
                    m = write.message
                    appended.append(
                        (m.room, m.seq, m.id, m.sender, m.content, m.timestamp, int(m.kind))
                    )
                    heads[m.room] = m.seq
                    continue
                if appended:  # keep the batch's order: appends before what follows them
                    self._append(appended, heads)
                    appended, heads = [], {}
                self._apply(write)
            if appended:
                self._append(appended, heads)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _append(
        self, rows: list[tuple[str, int, str, str, str, int, int]], heads: dict[str, int]
    ) -> None:
        self._db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self._db.executemany(
            "UPDATE rooms SET head = ? WHERE room = ?", [(h, r) for r, h in heads.items()]
        )

    def _apply(self, write: Write) -> None:
        db = self._db
        if isinstance(write, CreateRoom):
            db.execute("DELETE FROM messages WHERE room = ?", (write.room,))
            db.execute(
                "INSERT OR REPLACE INTO rooms (room, epoch, head) VALUES (?, ?, 0)",
                (write.room, write.epoch),
            )
        elif isinstance(write, TrimRoom):
            db.execute(
                "DELETE FROM messages WHERE room = ? AND seq < ?", (write.room, write.before_seq)
            )
        elif isinstance(write, ForgetRoom):
            db.execute("DELETE FROM messages WHERE room = ?", (write.room,))
            db.execute("DELETE FROM rooms WHERE room = ?", (write.room,))
        elif isinstance(write, SaveEdit):
            db.execute(
                "INSERT INTO document_ops VALUES (?, ?, ?, ?, ?)",
                (
                    write.document,
                    write.revision,
                    json.dumps(write.edit.op.ops, ensure_ascii=False),
                    write.edit.author,
                    write.edit.op_id,
                ),
            )
            if write.snapshot is not None:
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?)",
                    (write.document, write.snapshot, write.revision),
                )
                db.execute(  # the kept ones stay, for their op ids
                    "DELETE FROM document_ops WHERE document = ? AND revision < ?",
                    (write.document, write.keep_from),
                )
        else:
            raise TypeError(f"not a write: {write!r}")
