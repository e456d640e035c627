"""The embedded default store: one SQLite file in WAL mode.

``synchronous=NORMAL`` under WAL makes every committed transaction survive a crash of the
process (the OS holds the WAL pages); a power cut may lose the last few commits. Pass
``synchronous="FULL"`` to trade write latency for surviving that too.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from interplay.core.ot import TextOp
from interplay.core.rooms import Kind, RoomMessage
from interplay.core.store import DocumentRecord, RoomRecord, StoredEdit

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


class SQLiteStore:
    """Chat history and documents. A document is a snapshot plus the ops since it; each new
    snapshot deletes the ops behind it, so a document costs its text plus the ops between
    snapshots (the core decides how often: ``DocumentHub(snapshot_every=...)``)."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous: unknown SQLite level {synchronous!r}")
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def load_room(self, room: str) -> RoomRecord | None:
        row = self._db.execute("SELECT epoch, head FROM rooms WHERE room = ?", (room,)).fetchone()
        return RoomRecord(epoch=row[0], head=row[1]) if row else None

    def create_room(self, room: str, epoch: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM messages WHERE room = ?", (room,))
            self._db.execute(
                "INSERT OR REPLACE INTO rooms (room, epoch, head) VALUES (?, ?, 0)", (room, epoch)
            )

    def append(self, message: RoomMessage) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    message.room,
                    message.seq,
                    message.id,
                    message.sender,
                    message.content,
                    message.timestamp,
                    int(message.kind),
                ),
            )
            self._db.execute(
                "UPDATE rooms SET head = ? WHERE room = ?", (message.seq, message.room)
            )

    def read(self, room: str, after_seq: int, limit: int) -> list[RoomMessage]:
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

    def trim(self, room: str, before_seq: int) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM messages WHERE room = ? AND seq < ?", (room, before_seq))

    def load_document(self, document: str) -> DocumentRecord | None:
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
        return DocumentRecord(text=text, revision=revision, edits=edits)

    def save_edit(
        self, document: str, revision: int, edit: StoredEdit, snapshot: str | None
    ) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO document_ops VALUES (?, ?, ?, ?, ?)",
                (
                    document,
                    revision,
                    json.dumps(edit.op.ops, ensure_ascii=False),
                    edit.author,
                    edit.op_id,
                ),
            )
            if snapshot is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?)",
                    (document, snapshot, revision),
                )
                self._db.execute(
                    "DELETE FROM document_ops WHERE document = ? AND revision <= ?",
                    (document, revision),
                )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN ... COMMIT, or ROLLBACK on error (the connection runs in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
