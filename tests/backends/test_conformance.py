"""What every backend must do (``interplay.runtime.backend``), through the async protocol.

Each test runs against every entry of ``BACKENDS``: a new backend joins the suite with one line
there (a factory over the test's ``tmp_path``). A ``restarts`` entry is reopened on the same
storage between a write and the next read: what was written must survive closing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from interplay.backends import MemoryBackend, SQLiteBackend, UnusableDataFile
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

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Subject:
    name: str
    open: Callable[[Path], Backend]  # a backend over the storage at this folder
    restarts: bool = False  # reopen it between a write and the next read


BACKENDS = [
    Subject("memory", lambda _: MemoryBackend()),
    Subject("sqlite", lambda folder: SQLiteBackend(folder / "interplay.db")),
    Subject(
        "sqlite-restarted", lambda folder: SQLiteBackend(folder / "interplay.db"), restarts=True
    ),
]


class Store:
    """The backend under test; for a ``restarts`` subject, a new one over the same storage
    before each read that follows a write (a failed one too)."""

    def __init__(self, subject: Subject, folder: Path) -> None:
        self.subject = subject
        self.folder = folder
        self.backend = subject.open(folder)
        self.restarts = 0
        self._written = False

    async def write(self, *writes: Write) -> None:
        self._written = True
        await self.backend.write(list(writes))

    async def read(self, read: Read) -> ReadResult:
        if self.subject.restarts and self._written:
            await self.backend.aclose()
            self.backend = self.subject.open(self.folder)
            self.restarts += 1
            self._written = False
        return await self.backend.read(read)

    async def history(self, room: str, after_seq: int = 0, limit: int = 1000) -> list[int]:
        messages = await self.read(ReadHistory(room=room, after_seq=after_seq, limit=limit))
        assert isinstance(messages, list)
        return [m.seq for m in messages]

    async def load(self, room: str, recent: int = 100) -> LoadedRoom:
        loaded = await self.read(LoadRoom(room=room, recent=recent))
        assert isinstance(loaded, LoadedRoom)
        return loaded

    async def document(self, document: str) -> DocumentRecord | None:
        record = await self.read(LoadDocument(document=document))
        assert record is None or isinstance(record, DocumentRecord)
        return record


@pytest.fixture(params=BACKENDS, ids=[subject.name for subject in BACKENDS])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(request.param, tmp_path)
    yield store
    await store.backend.aclose()


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


def edit(n: int) -> StoredEdit:
    return StoredEdit(op=TextOp.from_components([n - 1, "é"]), author="eve", op_id=f"op{n}")


# -- rooms ---------------------------------------------------------------------------------


async def test_a_room_never_created_is_not_there(store: Store) -> None:
    assert await store.load("nowhere") == LoadedRoom(record=None, recent=[])
    assert await store.history("nowhere") == []


async def test_appended_messages_read_back_in_order(store: Store) -> None:
    await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 6)))
    await store.write(*appends(range(6, 9)))
    messages = await store.read(ReadHistory(room="lobby", after_seq=0, limit=100))
    assert messages == [text(seq) for seq in range(1, 9)]  # every field, as written
    assert await store.history("lobby", after_seq=3, limit=2) == [4, 5]
    assert await store.history("lobby", after_seq=6) == [7, 8]
    assert await store.history("lobby", after_seq=8) == []
    assert await store.history("lobby", limit=0) == []


async def test_rooms_are_independent(store: Store) -> None:
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


async def test_load_room_returns_its_record_and_the_last_recent_messages(store: Store) -> None:
    await store.write(CreateRoom(room="lobby", epoch="e1"))
    assert await store.load("lobby") == LoadedRoom(record=RoomRecord(epoch="e1", head=0), recent=[])
    await store.write(*appends(range(1, 9)))
    loaded = await store.load("lobby", recent=3)
    assert loaded.record == RoomRecord(epoch="e1", head=8)
    assert loaded.recent == [text(6), text(7), text(8)]
    assert (await store.load("lobby", recent=0)).recent == []
    assert [m.seq for m in (await store.load("lobby", recent=100)).recent] == list(range(1, 9))


async def test_trim_forgets_older_messages_and_keeps_the_head(store: Store) -> None:
    await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 9)))
    await store.write(TrimRoom(room="lobby", before_seq=4))
    assert await store.history("lobby") == [4, 5, 6, 7, 8]
    loaded = await store.load("lobby", recent=100)
    assert loaded.record == RoomRecord(epoch="e1", head=8)
    assert [m.seq for m in loaded.recent] == [4, 5, 6, 7, 8]
    await store.write(*appends([9]))  # the stream goes on from the head
    assert await store.history("lobby", after_seq=7) == [8, 9]


async def test_a_load_tells_the_oldest_stored_seq(store: Store) -> None:
    await store.write(CreateRoom(room="lobby", epoch="e1"))
    assert (await store.load("lobby")).first_seq is None
    await store.write(*appends(range(1, 9)), TrimRoom(room="lobby", before_seq=6))
    assert (await store.load("lobby", recent=1)).first_seq == 6
    await store.write(TrimRoom(room="lobby", before_seq=9))
    assert (await store.load("lobby")).first_seq is None


async def test_room_ages_page_through_rooms_by_name(store: Store) -> None:
    def stamped(seq: int, room: str, at: int) -> Write:
        message = text(seq, room)
        return AppendMessage(message=RoomMessage(**{**_fields(message), "timestamp": at}))

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


async def test_forget_room_drops_its_record_and_messages(store: Store) -> None:
    await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 4)))
    await store.write(CreateRoom(room="other", epoch="eo"), ForgetRoom(room="lobby"))
    assert await store.load("lobby") == LoadedRoom(record=None, recent=[])
    assert await store.history("lobby") == []
    assert (await store.load("other")).record == RoomRecord(epoch="eo", head=0)
    await store.write(CreateRoom(room="lobby", epoch="e2"), *appends([1], epoch="e2"))
    assert await store.history("lobby") == [1]  # a forgotten room can start again


def _fields(message: RoomMessage) -> dict[str, object]:
    return {name: getattr(message, name) for name in RoomMessage.__slots__}


async def test_create_room_again_resets_it_under_a_new_epoch(store: Store) -> None:
    await store.write(CreateRoom(room="lobby", epoch="e1"), *appends(range(1, 6)))
    await store.write(CreateRoom(room="lobby", epoch="e2"))
    assert await store.load("lobby") == LoadedRoom(record=RoomRecord(epoch="e2", head=0), recent=[])
    assert await store.history("lobby") == []
    await store.write(*appends([1, 2], epoch="e2"))
    messages = await store.read(ReadHistory(room="lobby", after_seq=0, limit=100))
    assert messages == [text(1, epoch="e2"), text(2, epoch="e2")]


async def test_one_call_applies_its_writes_in_order(store: Store) -> None:
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
    "bad",
    [
        pytest.param(text(6), id="skips-a-seq"),
        pytest.param(text(4), id="repeats-the-head"),
        pytest.param(text(1, room="nowhere"), id="room-never-created"),
    ],
)
async def test_an_append_out_of_sequence_conflicts_and_writes_nothing_of_its_call(
    store: Store, bad: RoomMessage
) -> None:
    await store.write(CreateRoom(room="lobby", epoch="e1"), *appends([1, 2, 3]))
    with pytest.raises(WriteConflict):
        await store.write(
            *appends([4]),  # fine on its own: refused with the rest of its call
            CreateRoom(room="other", epoch="eo"),
            SaveEdit(document="doc", revision=1, edit=edit(1)),
            TrimRoom(room="lobby", before_seq=3),
            AppendMessage(message=bad),
        )
    assert await store.history("lobby") == [1, 2, 3]
    assert (await store.load("lobby")).record == RoomRecord(epoch="e1", head=3)
    assert (await store.load("other")).record is None
    assert await store.document("doc") is None
    await store.write(*appends([4]))  # and the backend is usable after it
    assert await store.history("lobby") == [1, 2, 3, 4]


# -- documents -----------------------------------------------------------------------------


async def test_a_document_never_edited_is_none(store: Store) -> None:
    assert await store.document("doc") is None


async def test_edits_without_a_snapshot_are_kept_in_order(store: Store) -> None:
    await store.write(SaveEdit(document="doc", revision=1, edit=edit(1)))
    await store.write(
        SaveEdit(document="doc", revision=2, edit=edit(2)),
        SaveEdit(document="doc", revision=3, edit=edit(3)),
    )
    assert await store.document("doc") == DocumentRecord(
        text="", revision=0, edits=[edit(1), edit(2), edit(3)]
    )
    assert await store.document("other") is None


def ids(*revisions: int) -> list[tuple[str, str, int]]:
    return [("eve", f"op{n}", n) for n in revisions]


async def test_a_snapshot_replaces_the_edits_up_to_its_revision(store: Store) -> None:
    await store.write(*(SaveEdit(document="doc", revision=n, edit=edit(n)) for n in (1, 2)))
    await store.write(SaveEdit(document="doc", revision=3, edit=edit(3), snapshot="ééé"))
    assert await store.document("doc") == DocumentRecord(
        text="ééé", revision=3, edits=[], earlier=ids(1, 2, 3)
    )
    await store.write(*(SaveEdit(document="doc", revision=n, edit=edit(n)) for n in (4, 5)))
    assert await store.document("doc") == DocumentRecord(
        text="ééé", revision=3, edits=[edit(4), edit(5)], earlier=ids(1, 2, 3)
    )


async def test_a_snapshot_keeps_the_op_ids_of_the_revisions_from_keep_from(store: Store) -> None:
    """A retried edit older than the last snapshot is recognised across a restart: the op
    ids of every kept revision are stored (from the snapshot's ``keep_from`` on)."""
    await store.write(*(SaveEdit(document="doc", revision=n, edit=edit(n)) for n in range(1, 5)))
    await store.write(
        SaveEdit(document="doc", revision=5, edit=edit(5), snapshot="éééé", keep_from=3)
    )
    await store.write(SaveEdit(document="doc", revision=6, edit=edit(6)))
    await store.write(
        SaveEdit(document="doc", revision=7, edit=edit(7), snapshot="éééééé", keep_from=5)
    )
    assert await store.document("doc") == DocumentRecord(
        text="éééééé", revision=7, edits=[], earlier=ids(5, 6, 7)
    )


# -- the id index --------------------------------------------------------------------------


async def test_find_message_looks_up_a_senders_id_among_what_is_stored(store: Store) -> None:
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


async def test_what_a_read_returned_does_not_change_with_later_writes(store: Store) -> None:
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


async def test_a_restarted_backend_is_reopened(store: Store) -> None:
    """The suite's own check: a ``restarts`` subject really is reopened between writes and
    reads (else the survival checks above would prove nothing)."""
    await store.write(CreateRoom(room="lobby", epoch="e1"), *appends([1]))
    assert await store.history("lobby") == [1]
    assert store.restarts == (1 if store.subject.restarts else 0)


# -- SQLite: what it refuses to open --------------------------------------------------------


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, but someone's notes\n" * 100)
    with pytest.raises(UnusableDataFile) as caught:
        SQLiteBackend(path)
    assert caught.value.reason.startswith("not an SQLite database (file is not a database)")
    assert path.read_text().startswith("not a database")  # untouched


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)",
            "another program's SQLite database (tables messages)",
        ),
        (
            "PRAGMA application_id = 1234",
            "another program's SQLite database (application_id 0x4d2)",
        ),
    ],
)
def test_sqlite_refuses_another_programs_database(
    tmp_path: Path, statement: str, reason: str
) -> None:
    import sqlite3

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute(statement)
    with pytest.raises(UnusableDataFile) as caught:
        SQLiteBackend(foreign)
    assert caught.value.reason == reason


def test_sqlite_adopts_its_own_file_from_before_it_was_marked(tmp_path: Path) -> None:
    import sqlite3

    from interplay.backends.sqlite import _SCHEMA, APPLICATION_ID

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA)
    SQLiteBackend(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_sqlite_refuses_a_directory_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UnusableDataFile) as caught:
        SQLiteBackend(tmp_path / "file" / "data" / "interplay.db")
    assert caught.value.reason.startswith("cannot create its directory (")
