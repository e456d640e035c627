"""An in-memory store: for tests and for embedding where history need not survive a restart."""

from __future__ import annotations

from bisect import bisect_right

from interplay.core.rooms import RoomMessage
from interplay.core.store import DocumentRecord, RoomRecord, StoredEdit


class MemoryStore:
    def __init__(self) -> None:
        self._epochs: dict[str, str] = {}
        self._messages: dict[str, list[RoomMessage]] = {}
        self._documents: dict[str, DocumentRecord] = {}

    def load_room(self, room: str) -> RoomRecord | None:
        epoch = self._epochs.get(room)
        if epoch is None:
            return None
        messages = self._messages[room]
        return RoomRecord(epoch=epoch, head=messages[-1].seq if messages else 0)

    def create_room(self, room: str, epoch: str) -> None:
        self._epochs[room] = epoch
        self._messages[room] = []

    def append(self, message: RoomMessage) -> None:
        self._messages[message.room].append(message)

    def read(self, room: str, after_seq: int, limit: int) -> list[RoomMessage]:
        messages = self._messages.get(room, [])
        start = bisect_right(messages, after_seq, key=lambda m: m.seq)
        return messages[start : start + limit]

    def trim(self, room: str, before_seq: int) -> None:
        messages = self._messages.get(room, [])
        del messages[: bisect_right(messages, before_seq - 1, key=lambda m: m.seq)]

    def load_document(self, document: str) -> DocumentRecord | None:
        return self._documents.get(document)

    def save_edit(
        self, document: str, revision: int, edit: StoredEdit, snapshot: str | None
    ) -> None:
        if snapshot is not None:
            self._documents[document] = DocumentRecord(text=snapshot, revision=revision, edits=[])
            return
        record = self._documents.get(document)
        if record is None:
            record = self._documents[document] = DocumentRecord(text="", revision=0, edits=[])
        record.edits.append(edit)
