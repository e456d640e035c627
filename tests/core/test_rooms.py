"""RoomHub rules that the state machine does not reach: limits, identity, history edges."""

from __future__ import annotations

import pytest

from interplay.backends import MemoryBackend, SQLiteBackend
from interplay.core import (
    ChatLimits,
    Disconnect,
    InvalidArgument,
    Join,
    Kind,
    LimitExceeded,
    PermissionDenied,
    Post,
    RoomHub,
    TokenBucket,
)
from interplay.core.effects import AppendMessage, CreateRoom, LoadedRoom, LoadRoom, ReadHistory
from interplay.testing.hubs.stored import stored_rooms


def hub(**kwargs: object) -> RoomHub:
    return stored_rooms(**kwargs)  # type: ignore[no-any-return]


def test_limits_name_the_field_and_rule() -> None:
    h = hub(limits=ChatLimits(max_content_bytes=8, max_id_length=4, max_rooms=2))
    with pytest.raises(InvalidArgument, match=r"^room: must be at most 4 characters"):
        h.handle(Join(session="s", user="ann", room="lobby"), now=0)
    with pytest.raises(InvalidArgument, match=r"^user: must not be empty"):
        h.handle(Join(session="s", user="", room="r"), now=0)
    with pytest.raises(InvalidArgument, match=r"^resume_after_seq: must not be negative"):
        h.handle(Join(session="s", user="ann", room="r", resume_after_seq=-1), now=0)
    h.handle(Join(session="s", user="ann", room="r1"), now=0)
    h.handle(Join(session="s", user="ann", room="r2"), now=0)
    with pytest.raises(LimitExceeded, match=r"^room: at most 2 rooms per stream"):
        h.handle(Join(session="s", user="ann", room="r3"), now=0)
    with pytest.raises(LimitExceeded, match=r"^content: must be at most 8 bytes"):
        h.handle(Post(session="s", room="r1", content="😀😀😀"), now=0)  # 3 chars, 12 bytes
    h.handle(Post(session="s", room="r1", content="😀😀"), now=0)  # exactly 8 bytes
    with pytest.raises(InvalidArgument, match=r"^id: must be at most 4"):
        h.handle(Post(session="s", room="r1", content="x", id="12345"), now=0)
    assert h.head("r1") is not None and h.head("r1")[1] == 1  # type: ignore[index]


def test_the_token_bucket_says_how_long_to_wait_and_never_refuses() -> None:
    bucket = TokenBucket(10, 3, now=0)
    for _ in range(3):
        assert bucket.delay(0) == 0
        bucket.take(0)
    assert bucket.delay(0) == pytest.approx(0.1)  # one token back after 1/rate seconds
    assert bucket.delay(0.05) == pytest.approx(0.05)
    assert bucket.delay(0.1) == 0
    bucket.take(0.1)
    assert bucket.delay(0.1) == pytest.approx(0.1)
    assert TokenBucket(0, 0, now=0).delay(0) == 0  # rate 0: no limit


def test_a_hub_reads_only_what_it_was_given_and_writes_only_through_effects() -> None:
    h = RoomHub(history=2)
    join = Join(session="s", user="ann", room="r")
    read = h.needs(join)
    assert read == LoadRoom(room="r", recent=2)
    with pytest.raises(RuntimeError, match="not loaded"):
        h.handle(join, now=0)
    h.provide(read, LoadedRoom(record=None, recent=[]))
    assert h.needs(join) is None
    h.handle(join, now=0)
    [create] = h.take_writes()
    assert isinstance(create, CreateRoom) and create.room == "r"
    [deliver] = h.handle(Post(session="s", room="r", content="hi"), now=0)
    [append] = h.take_writes()
    assert isinstance(append, AppendMessage) and append.message == deliver.message
    assert h.take_writes() == []


def test_identity_is_bound_by_the_first_join() -> None:
    h = hub()
    h.handle(Join(session="s", user="ann", room="a"), now=0)
    with pytest.raises(PermissionDenied, match="bound to 'ann'"):
        h.handle(Join(session="s", user="bob", room="b"), now=0)
    with pytest.raises(PermissionDenied):
        h.handle(Post(session="s", room="a", content="x", user="bob"), now=0)
    [event] = h.handle(Post(session="s", room="a", content="x", user="ann"), now=0)
    assert event.message.sender == "ann"
    assert h.rooms_of("s") == {"a"}


def test_server_stamps_time_and_generates_missing_ids() -> None:
    h = hub()
    h.handle(Join(session="s", user="ann", room="r"), now=12.5)
    [first] = h.handle(Post(session="s", room="r", content="x"), now=13.25)
    [second] = h.handle(Post(session="s", room="r", content="x"), now=14)
    assert first.message.timestamp == 13_250
    assert first.message.id and second.message.id and first.message.id != second.message.id
    assert (first.message.seq, second.message.seq) == (1, 2)


def test_history_survives_a_restart_over_the_same_sqlite_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "chat.db"
    store = SQLiteBackend(path)
    first = stored_rooms(store, history=2)
    first.handle(Join(session="s", user="ann", room="r"), now=0)
    for n in range(3):
        first.handle(Post(session="s", room="r", content=f"m{n}", id=f"i{n}"), now=0)
    epoch = first.head("r")[0]  # type: ignore[index]
    store.close()

    again = stored_rooms(SQLiteBackend(path), history=2)
    events = again.handle(Join(session="t", user="bob", room="r"), now=1)
    echo, *history = [e.message for e in events]
    assert (echo.kind, echo.seq, echo.epoch) == (Kind.JOIN, 3, epoch)
    assert [(m.seq, m.content) for m in history] == [(2, "m1"), (3, "m2")]
    resumed = again.handle(Join(session="u", user="cat", room="r", resume_after_seq=0), now=1)
    assert [m.message.content for m in resumed if m.message.kind is Kind.TEXT] == [
        "m0",
        "m1",
        "m2",
    ]
    # A retry of an id still in the window is acknowledged, not stored again.
    again.handle(Join(session="s2", user="ann", room="r"), now=1)
    [ack] = again.handle(Post(session="s2", room="r", content="m2", id="i2"), now=1)
    assert (ack.to, ack.message.seq) == (("s2",), 3)
    assert again.handle(Disconnect(session="nobody"), now=1) == []


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_800_texts_re_sent_after_a_restart_are_each_stored_once(tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    """The issue's crash: a client re-sends its 800 unacknowledged TEXTs to a restarted
    server. Each is recognised while its original is retained (not only in the window of
    100): the sender gets the original back, nothing is stored twice, the others hear
    nothing; a new id among them is stored."""
    memory = MemoryBackend()

    def backend() -> MemoryBackend | SQLiteBackend:
        return memory if kind == "memory" else SQLiteBackend(tmp_path / "chat.db")

    first = stored_rooms(backend())
    first.handle(Join(session="s", user="ann", room="r"), now=0)
    for n in range(800):
        first.handle(Post(session="s", room="r", content=f"m{n}", id=f"i{n}"), now=0)

    again = stored_rooms(backend())  # a new hub over what was stored: a restart
    again.handle(Join(session="t", user="ann", room="r"), now=1)
    again.handle(Join(session="b", user="bob", room="r"), now=1)
    for n in range(800):
        [ack] = again.handle(Post(session="t", room="r", content=f"m{n}", id=f"i{n}"), now=1)
        assert (ack.to, ack.message.seq, ack.message.content) == (("t",), n + 1, f"m{n}")
    [new] = again.handle(Post(session="t", room="r", content="new", id="i800"), now=1)
    assert (new.to, new.message.seq) == (("t", "b"), 801)
    stored = again.backend.read_now(ReadHistory(room="r", after_seq=0, limit=10_000))
    assert [m.id for m in stored] == [f"i{n}" for n in range(801)]
    # Another sender may use the same ids: they are per sender.
    [bobs] = again.handle(Post(session="b", room="r", content="m0", id="i0"), now=1)
    assert bobs.message.seq == 802
