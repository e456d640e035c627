"""An in-memory backend: for tests and for embedding where history need not survive a restart."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

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
    TrimRoom,
    Write,
)
from interplay.core.rooms import RoomMessage
from interplay.runtime.backend import ReadResult

from ._checks import check_appends


class MemoryBackend:
    """Every write applied at once, in order; reads see every write before them."""

    def __init__(self) -> None:
        self._rooms: dict[str, RoomRecord] = {}
        self._messages: dict[str, list[RoomMessage]] = {}
        self._by_id: dict[str, dict[tuple[str, str], RoomMessage]] = {}  # the id index
        self._documents: dict[str, DocumentRecord] = {}

    async def read(self, read: Read) -> ReadResult:
        return self.read_now(read)

    async def write(self, writes: Sequence[Write]) -> None:
        self.write_now(writes)

    async def aclose(self) -> None:
        pass

    # -- the same, synchronously (tests drive the core with these, no event loop) ----------

    def read_now(self, read: Read) -> ReadResult:
        if isinstance(read, LoadRoom):
            record = self._rooms.get(read.room)
            messages = self._messages.get(read.room, [])
            recent = messages[-read.recent :] if read.recent else []
            first = messages[0].seq if messages else None
            ids = tuple((m.sender, m.id) for m in messages)
            return LoadedRoom(record=record, recent=list(recent), first_seq=first, ids=ids)
        if isinstance(read, FindMessage):
            return self._by_id.get(read.room, {}).get((read.sender, read.id))
        if isinstance(read, ReadHistory):
            messages = self._messages.get(read.room, [])
            start = bisect_right(messages, read.after_seq, key=lambda m: m.seq)
            return messages[start : start + read.limit]
        if isinstance(read, RoomAges):
            return [self._age(room, read.before) for room in self._rooms_after(read)]
        record = self._documents.get(read.document)
        if record is None:
            return None
        # A copy: the stored record's edits grow with later writes; what was read must not.
        return DocumentRecord(
            text=record.text,
            revision=record.revision,
            edits=list(record.edits),
            earlier=list(record.earlier),
        )

    def write_now(self, writes: Sequence[Write]) -> None:
        check_appends(writes, self._head)  # first, so a refused batch changes nothing
        for write in writes:
            self._apply(write)

    def _rooms_after(self, read: RoomAges) -> list[str]:
        return sorted(room for room in self._rooms if room > read.after_room)[: read.limit]

    def _age(self, room: str, before: int) -> RoomAge:
        record, messages = self._rooms[room], self._messages.get(room, [])
        kept = next((m.seq for m in messages if m.timestamp >= before), None)
        return RoomAge(
            room=room,
            epoch=record.epoch,
            head=record.head,
            oldest=messages[0].seq if messages else None,
            first_kept=kept,
        )

    def _head(self, room: str) -> int | None:
        record = self._rooms.get(room)
        return record.head if record else None

    def _apply(self, write: Write) -> None:
        if isinstance(write, AppendMessage):
            message = write.message
            self._messages[message.room].append(message)
            self._by_id[message.room].setdefault((message.sender, message.id), message)
            self._rooms[message.room] = RoomRecord(
                epoch=self._rooms[message.room].epoch, head=message.seq
            )
        elif isinstance(write, CreateRoom):
            self._rooms[write.room] = RoomRecord(epoch=write.epoch, head=0)
            self._messages[write.room] = []
            self._by_id[write.room] = {}
        elif isinstance(write, TrimRoom):
            messages = self._messages.get(write.room, [])
            cut = bisect_right(messages, write.before_seq - 1, key=lambda m: m.seq)
            index = self._by_id.get(write.room, {})
            for gone in messages[:cut]:
                if index.get((gone.sender, gone.id)) is gone:
                    del index[(gone.sender, gone.id)]
            del messages[:cut]
        elif isinstance(write, ForgetRoom):
            self._rooms.pop(write.room, None)
            self._messages.pop(write.room, None)
            self._by_id.pop(write.room, None)
        elif isinstance(write, SaveEdit):
            record = self._documents.get(write.document)
            if write.snapshot is not None:
                earlier = [] if record is None else list(record.earlier)
                if record is not None:
                    earlier += [
                        (edit.author, edit.op_id, record.revision + n)
                        for n, edit in enumerate(record.edits, 1)
                    ]
                earlier.append((write.edit.author, write.edit.op_id, write.revision))
                self._documents[write.document] = DocumentRecord(
                    text=write.snapshot,
                    revision=write.revision,
                    edits=[],
                    earlier=[e for e in earlier if e[1] and e[2] >= write.keep_from],
                )
                return
            if record is None:
                record = DocumentRecord(text="", revision=0, edits=[])
                self._documents[write.document] = record
            record.edits.append(write.edit)
        else:
            raise TypeError(f"not a write: {write!r}")
