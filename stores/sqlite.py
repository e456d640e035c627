"""The embedded default store: one SQLite file in WAL mode.

``synchronous=NORMAL`` under WAL makes every committed transaction survive a crash of the
process (the OS holds the WAL pages); a power cut may lose the last few commits. Pass
``synchronous="FULL"`` to trade write latency for surviving that too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from interplay.core.rooms import Kind, RoomMessage
from interplay.core.store import RoomRecord

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
"""


class SQLiteStore:
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
