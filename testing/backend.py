"""What every backend must do (``interplay.runtime.backend``), as a test class to subclass.

    from interplay.testing.backend import BackendConformance

    class TestMyBackend(BackendConformance):
        reopens = True                       # it keeps what it wrote across a close

        async def open_backend(self, storage):
            return MyBackend(storage / "data")

pytest runs every check on ``TestMyBackend`` (only a class named ``Test*`` is collected, so
importing ``BackendConformance`` into a test module runs nothing by itself). Each test gets a
fresh, empty folder ``storage`` (pytest's ``tmp_path``): a backend over it starts empty. With
``reopens``, the suite closes the backend and opens a new one over the same ``storage`` between
a write and the next read, so every check also proves that what was written survives a close
(leave it False for a backend that forgets, like ``MemoryBackend``). A backend whose storage is
not a folder (a server) can use the folder's name as a key prefix or database name.

The checks run under anyio's pytest plugin (installed with anyio), on the ``anyio_backend``
your tests choose (asyncio unless told otherwise).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest

from interplay.core.effects import (
    AppendMessage,
    CreateRoom,
    DocumentRecord,
    FindMessage,
    ForgetRoom,
    LoadDocument,
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
from interplay.runtime.backend import Backend, ReadResult, WriteConflict

__all__ = ["BackendConformance", "Store"]


class Store:
    """The backend under test, as the checks use it; with ``reopens``, a new backend over the
    same storage before each read that follows a write (a failed one too)."""

    def __init__(self, suite: BackendConformance, storage: Path, backend: Backend) -> None:
        self.suite = suite
        self.storage = storage
        self.backend = backend
        self.reopened = 0
        self._written = False

    async def write(self, *writes: Write) -> None:
        self._written = True
        await self.backend.write(list(writes))

    async def read(self, read: Read) -> ReadResult:
        if self.suite.reopens and self._written:
            await self.backend.aclose()
            self.backend = await self.suite.open_backend(self.storage)
            self.reopened += 1
            self._written = False
        return await self.backend.read(read)

    async def history(self, room: str, after_seq: int = 0, limit: int = 1000) -> list[int]:
        messages = await self.read(ReadHistory(room=room, after_seq=after_seq, limit=limit))
        assert isinstance(messages, list) and all(isinstance(m, RoomMessage) for m in messages), (
            f"ReadHistory returned {messages!r}, not a list of RoomMessage"
        )
        return [m.seq for m in messages if isinstance(m, RoomMessage)]  # (all of them)

    async def load(self, room: str, recent: int = 100) -> LoadedRoom:
        loaded = await self.read(LoadRoom(room=room, recent=recent))
        assert isinstance(loaded, LoadedRoom), f"LoadRoom returned {loaded!r}, not a LoadedRoom"
        return loaded

    async def document(self, document: str) -> DocumentRecord | None:
        record = await self.read(LoadDocument(document=document))
        assert record is None or isinstance(record, DocumentRecord), (
            f"LoadDocument returned {record!r}, not a DocumentRecord or None"
        )
        return record


def text(seq: int, room: str = "lobby", epoch: str = "e1") -> RoomMessage:
    return RoomMessage(
        kind=Kind.TEXT,
        room=room,
        sender="ann",
        id=f"{epoch}-{seq}",
        content=f"message {seq} ✓",
        timestamp=1_700_000_000_000 + seq,
        seq=seq,
        epoch=epoch,
    )


def appends(seqs: Sequence[int], room: str = "lobby", epoch: str = "e1") -> list[Write]:
    return [AppendMessage(message=text(seq, room, epoch)) for seq in seqs]


def op_ids(*revisions: int) -> list[tuple[str, str, int]]:
    """``DocumentRecord.earlier`` for ``edit(n)`` at each revision: (author, op id, revision)."""
    return [("eve", f"op{n}", n) for n in revisions]


def edit(n: int) -> StoredEdit:
    return StoredEdit(op=TextOp.from_components([n - 1, "é"]), author="eve", op_id=f"op{n}")


@pytest.mark.anyio
class BackendConformance:
    """Subclass it as ``Test<YourBackend>`` and implement ``open_backend``."""

    reopens: ClassVar[bool] = False
    """Close and reopen the backend over the same storage between a write and the next read."""

    async def open_backend(self, storage: Path) -> Backend:
        """A backend over ``storage``: a fresh empty folder per test; the same folder again
        when the suite reopens it (``reopens``). The suite closes it (``aclose``)."""
        raise NotImplementedError(
            f"{type(self).__name__}: implement open_backend(storage) to return your backend"
        )

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        store = Store(self, tmp_path, await self.open_backend(tmp_path))
        try:
            yield store
        finally:
            await store.backend.aclose()

    # -- rooms ---------------------------------------------------------------------------------

    async def test_a_room_never_created_is_not_there(self, store: Store) -> None:
        assert await store.load("nowhere") == LoadedRoom(record=None, recent=[])
        assert await store.history("nowhere") == []

    async def test_appended_messages_read_back_in_order(self, store: Store) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 6)))
        await store.write(*appends(range(6, 9)))
        messages = await store.read(ReadHistory(room="lobby", after_seq=0, limit=100))
        assert messages == [text(seq) for seq in range(1, 9)]  # every field, as written
        assert await store.history("lobby", after_seq=3, limit=2) == [4, 5]
        assert await store.history("lobby", after_seq=6) == [7, 8]
        assert await store.history("lobby", after_seq=8) == []
        assert await store.history("lobby", limit=0) == []

    async def test_rooms_are_independent(self, store: Store) -> None:
        await store.write(
            CreateRoom(room="a", epoch="ea"),
            CreateRoom(room="b", epoch="eb"),
            *appends([1, 2], room="a", epoch="ea"),
            *appends([1], room="b", epoch="eb"),
            *appends([3], room="a", epoch="ea"),
        )
        assert await store.history("a") == [1, 2, 3]
        assert await store.history("b") == [1]
        assert (await store.load("b")).record == RoomRecord(epoch="eb", head=1)

    async def test_load_room_returns_its_record_and_the_last_recent_messages(
        self, store: Store
    ) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"))
        assert await store.load("lobby") == LoadedRoom(
            record=RoomRecord(epoch="e1", head=0), recent=[]
        )
        await store.write(*appends(range(1, 9)))
        loaded = await store.load("lobby", recent=3)
        assert loaded.record == RoomRecord(epoch="e1", head=8)
        assert loaded.recent == [text(6), text(7), text(8)]
        assert (await store.load("lobby", recent=0)).recent == []
        assert [m.seq for m in (await store.load("lobby", recent=100)).recent] == list(range(1, 9))

    async def test_trim_forgets_older_messages_and_keeps_the_head(self, store: Store) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 9)))
        await store.write(TrimRoom(room="lobby", before_seq=4))
        assert await store.history("lobby") == [4, 5, 6, 7, 8]
        loaded = await store.load("lobby", recent=100)
        assert loaded.record == RoomRecord(epoch="e1", head=8)
        assert [m.seq for m in loaded.recent] == [4, 5, 6, 7, 8]
        await store.write(*appends([9]))  # the stream goes on from the head
        assert await store.history("lobby", after_seq=7) == [8, 9]

    async def test_a_load_tells_the_oldest_stored_seq(self, store: Store) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"))
        assert (await store.load("lobby")).first_seq is None
        await store.write(*appends(range(1, 9)), TrimRoom(room="lobby", before_seq=6))
        assert (await store.load("lobby", recent=1)).first_seq == 6
        await store.write(TrimRoom(room="lobby", before_seq=9))
        assert (await store.load("lobby")).first_seq is None

    async def test_room_ages_page_through_rooms_by_name(self, store: Store) -> None:
        def stamped(seq: int, room: str, at: int) -> Write:
            message = text(seq, room)
            return AppendMessage(message=replace(message, timestamp=at))

        await store.write(
            CreateRoom(room="b", epoch="eb"),
            *(stamped(seq, "b", at) for seq, at in [(1, 100), (2, 200), (3, 300)]),
            CreateRoom(room="a", epoch="ea"),  # created, never posted to
            CreateRoom(room="c", epoch="ec"),
            stamped(1, "c", 100),
            TrimRoom(room="b", before_seq=2),
        )
        first = await store.read(RoomAges(before=250, after_room="", limit=2))
        assert first == [
            RoomAge(room="a", epoch="ea", head=0, oldest=None, first_kept=None),
            RoomAge(room="b", epoch="eb", head=3, oldest=2, first_kept=3),
        ]
        rest = await store.read(RoomAges(before=250, after_room="b", limit=2))
        assert rest == [RoomAge(room="c", epoch="ec", head=1, oldest=1, first_kept=None)]
        assert await store.read(RoomAges(before=250, after_room="c", limit=2)) == []

    async def test_forget_room_drops_its_record_and_messages(self, store: Store) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 4)))
        await store.write(CreateRoom(room="other", epoch="eo"), ForgetRoom(room="lobby"))
        assert await store.load("lobby") == LoadedRoom(record=None, recent=[])
        assert await store.history("lobby") == []
        assert (await store.load("other")).record == RoomRecord(epoch="eo", head=0)
        await store.write(CreateRoom(room="lobby", epoch="e2"), *appends([1], epoch="e2"))
        assert await store.history("lobby") == [1]  # a forgotten room can start again

    async def test_create_room_again_resets_it_under_a_new_epoch(self, store: Store) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 6)))
        await store.write(CreateRoom(room="lobby", epoch="e2"))
        assert await store.load("lobby") == LoadedRoom(
            record=RoomRecord(epoch="e2", head=0), recent=[]
        )
        assert await store.history("lobby") == []
        await store.write(*appends([1, 2], epoch="e2"))
        messages = await store.read(ReadHistory(room="lobby", after_seq=0, limit=100))
        assert messages == [text(1, epoch="e2"), text(2, epoch="e2")]

    async def test_one_call_applies_its_writes_in_order(self, store: Store) -> None:
        await store.write(
            CreateRoom(room="lobby", epoch="e1"),
            *appends([1, 2, 3]),
            TrimRoom(room="lobby", before_seq=3),
            *appends([4]),
            CreateRoom(room="lobby", epoch="e2"),  # the reset comes after those appends ...
            *appends([1], epoch="e2"),  # ... and this one after the reset
        )
        loaded = await store.load("lobby")
        assert loaded.record == RoomRecord(epoch="e2", head=1)
        assert loaded.recent == [text(1, epoch="e2")]

    @pytest.mark.parametrize(
        ("bad", "why"),
        [
            pytest.param(text(6), "seq 6 skips seq 5", id="skips-a-seq"),
            pytest.param(text(4), "seq 4 is used twice in room 'lobby'", id="repeats-a-seq"),
            pytest.param(text(1, room="nowhere"), "room 'nowhere' was never created", id="no-room"),
        ],
    )
    async def test_an_append_out_of_sequence_conflicts_and_writes_nothing_of_its_call(
        self, store: Store, bad: RoomMessage, why: str
    ) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends([1, 2, 3]))
        try:
            await store.write(
                *appends([4]),  # fine on its own: refused with the rest of its call
                CreateRoom(room="other", epoch="eo"),
                SaveEdit(document="doc", revision=1, edit=edit(1)),
                TrimRoom(room="lobby", before_seq=3),
                AppendMessage(message=bad),
            )
        except WriteConflict:
            pass
        else:
            pytest.fail(
                f"the backend accepted an append whose seq is not its room's head + 1 ({why}): "
                "write() must raise WriteConflict for the whole call (two nodes, or two "
                "processes, appending to one room would otherwise both get the same seq)",
                pytrace=False,
            )
        assert await store.history("lobby") == [1, 2, 3], (
            "a call refused with WriteConflict left some of its writes behind (all or none)"
        )
        assert (await store.load("lobby")).record == RoomRecord(epoch="e1", head=3)
        assert (await store.load("other")).record is None
        assert await store.document("doc") is None
        await store.write(*appends([4]))  # and the backend is usable after it
        assert await store.history("lobby") == [1, 2, 3, 4]

    async def test_a_seq_already_stored_is_never_stored_again(self, store: Store) -> None:
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends([1, 2]))
        for seq in (1, 2):
            try:
                await store.write(AppendMessage(message=text(seq)))
            except WriteConflict:
                continue
            pytest.fail(
                f"the backend stored seq {seq} of room 'lobby' a second time (its history reads "
                f"{await store.history('lobby')}): an append whose seq is not the room's head + 1 "
                "must raise WriteConflict, or two writers reuse one seq",
                pytrace=False,
            )
        assert await store.history("lobby") == [1, 2]

    # -- documents -----------------------------------------------------------------------------

    async def test_a_document_never_edited_is_none(self, store: Store) -> None:
        assert await store.document("doc") is None

    async def test_edits_without_a_snapshot_are_kept_in_order(self, store: Store) -> None:
        await store.write(SaveEdit(document="doc", revision=1, edit=edit(1)))
        await store.write(
            SaveEdit(document="doc", revision=2, edit=edit(2)),
            SaveEdit(document="doc", revision=3, edit=edit(3)),
        )
        assert await store.document("doc") == DocumentRecord(
            text="", revision=0, edits=[edit(1), edit(2), edit(3)]
        )
        assert await store.document("other") is None

    async def test_a_snapshot_replaces_the_edits_up_to_its_revision(self, store: Store) -> None:
        await store.write(*(SaveEdit(document="doc", revision=n, edit=edit(n)) for n in (1, 2)))
        await store.write(SaveEdit(document="doc", revision=3, edit=edit(3), snapshot="ééé"))
        assert await store.document("doc") == DocumentRecord(
            text="ééé", revision=3, edits=[], earlier=op_ids(1, 2, 3)
        )
        await store.write(*(SaveEdit(document="doc", revision=n, edit=edit(n)) for n in (4, 5)))
        assert await store.document("doc") == DocumentRecord(
            text="ééé", revision=3, edits=[edit(4), edit(5)], earlier=op_ids(1, 2, 3)
        )

    async def test_a_snapshot_keeps_the_op_ids_of_the_revisions_from_keep_from(
        self, store: Store
    ) -> None:
        """A retried edit older than the last snapshot is recognised across a restart: the op
        ids of every kept revision are stored (from the snapshot's ``keep_from`` on)."""
        await store.write(
            *(SaveEdit(document="doc", revision=n, edit=edit(n)) for n in range(1, 5))
        )
        await store.write(
            SaveEdit(document="doc", revision=5, edit=edit(5), snapshot="éééé", keep_from=3)
        )
        await store.write(SaveEdit(document="doc", revision=6, edit=edit(6)))
        await store.write(
            SaveEdit(document="doc", revision=7, edit=edit(7), snapshot="éééééé", keep_from=5)
        )
        assert await store.document("doc") == DocumentRecord(
            text="éééééé", revision=7, edits=[], earlier=op_ids(5, 6, 7)
        )

    # -- the id index ----------------------------------------------------------------------

    async def test_find_message_looks_up_a_senders_id_among_what_is_stored(
        self, store: Store
    ) -> None:
        """``FindMessage``: the stored message a sender sent with an id (an index, not a scan;
        how a re-sent TEXT is recognised across the retained range), and ``LoadedRoom.ids``
        every stored (sender, id), oldest first. Trimmed or forgotten messages are not found."""
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 6)))
        assert await store.read(FindMessage(room="lobby", sender="ann", id="e1-3")) == text(3)
        assert await store.read(FindMessage(room="lobby", sender="bob", id="e1-3")) is None
        assert await store.read(FindMessage(room="other", sender="ann", id="e1-3")) is None
        loaded = await store.load("lobby")
        assert list(loaded.ids) == [("ann", f"e1-{seq}") for seq in range(1, 6)]
        await store.write(TrimRoom(room="lobby", before_seq=4))
        assert await store.read(FindMessage(room="lobby", sender="ann", id="e1-3")) is None
        assert await store.read(FindMessage(room="lobby", sender="ann", id="e1-4")) == text(4)
        assert list((await store.load("lobby")).ids) == [("ann", "e1-4"), ("ann", "e1-5")]
        await store.write(ForgetRoom(room="lobby"))
        assert await store.read(FindMessage(room="lobby", sender="ann", id="e1-4")) is None
        await store.write(CreateRoom(room="lobby", epoch="e2"), *appends([1], epoch="e2"))
        assert await store.read(FindMessage(room="lobby", sender="ann", id="e1-5")) is None
        assert await store.read(FindMessage(room="lobby", sender="ann", id="e2-1")) == text(
            1, epoch="e2"
        )

    async def test_what_a_read_returned_does_not_change_with_later_writes(
        self, store: Store
    ) -> None:
        await store.write(
            CreateRoom(room="lobby", epoch="e1"),
            *appends([1]),
            SaveEdit(document="doc", revision=1, edit=edit(1)),
        )
        loaded, history, document = (
            await store.load("lobby"),
            await store.read(ReadHistory(room="lobby", after_seq=0, limit=10)),
            await store.document("doc"),
        )
        await store.write(*appends([2]), SaveEdit(document="doc", revision=2, edit=edit(2)))
        assert loaded.recent == [text(1)]
        assert history == [text(1)]
        assert document == DocumentRecord(text="", revision=0, edits=[edit(1)])

    async def test_a_reopening_suite_reopens(self, store: Store) -> None:
        """The suite's own check: with ``reopens`` the backend really is reopened between a
        write and a read (else the survival checks above would prove nothing)."""
        await store.write(CreateRoom(room="lobby", epoch="e1"), *appends([1]))
        assert await store.history("lobby") == [1]
        assert store.reopened == (1 if self.reopens else 0)
