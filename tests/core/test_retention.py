"""Retention by time, with the clock an argument: what the sweep keeps, trims and forgets, and
what a joiner or a resume then sees; across a restart on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from interplay.backends import MemoryBackend, SQLiteBackend
from interplay.core import Join, Kind, Leave, Post, RoomHub
from interplay.core.effects import LoadRoom, ReadHistory
from interplay.core.rooms import Expired, Publish, RoomMessage
from interplay.testing.hubs.stored import Stored, SyncBackend

ROOMS = ["a", "b", "c", "d"]


def sweep_twice_round(hub: Stored[RoomHub], now: float) -> list[Expired]:
    """Retention steps at ``now`` until the sweep has been round every room twice (a lap
    may start in the middle)."""
    steps, laps = [], 0
    while laps < 2:
        read = hub.hub.sweep(now=now)
        assert read is not None
        expired = hub.hub.expire(read, hub.backend.read_now(read))  # type: ignore[arg-type]
        hub.backend.write_now(hub.hub.take_writes())
        steps.append(expired)
        laps += expired.lap
    return steps


def stored_messages(backend: SyncBackend, room: str) -> list[RoomMessage]:
    messages = backend.read_now(ReadHistory(room=room, after_seq=0, limit=10**6))
    assert isinstance(messages, list)
    return messages  # type: ignore[return-value]


def joined(
    hub: Stored[RoomHub], session: str, room: str, now: float, **join: object
) -> list[RoomMessage]:
    events = hub.handle(Join(session=session, user="viewer", room=room, **join), now=now)  # type: ignore[arg-type]
    shown = [e.message for e in events if session in e.to]
    return [m for m in shown if m.kind is not Kind.JOIN or m.epoch]  # the echo, not presence


step = st.tuples(
    st.sampled_from(["post", "post", "post", "join", "leave", "sweep", "publish"]),
    st.sampled_from(ROOMS),
    st.floats(min_value=-5, max_value=40, allow_nan=False),  # the clock may step back
)


@example(  # the clock steps back between two posts: the second is stamped no earlier
    ttl=60,
    sweep_rooms=1,
    sweep_messages=100,
    history=5,
    script=[("join", "a", 0), ("post", "a", 0), ("post", "a", -3)],
    wait=0,
)
@example(  # some expire, some stay, in a room with a member and in one without
    ttl=10,
    sweep_rooms=1,
    sweep_messages=1,  # one message per step: rooms trimmed over several steps
    history=2,
    script=[
        ("join", "a", 0),
        ("post", "a", 0),
        ("publish", "b", 0),
        ("post", "a", 8),
        ("publish", "b", 0),
        ("sweep", "a", 5),
    ],
    wait=0,
)
@example(  # a room with no window reloaded: its clock resumes at its newest message
    ttl=1.0,
    sweep_rooms=1,
    sweep_messages=1,
    history=0,
    script=[("publish", "a", 0.0), ("publish", "a", -1.0)],
    wait=0,
)
@given(
    ttl=st.floats(min_value=1, max_value=60),
    sweep_rooms=st.integers(1, 3),
    sweep_messages=st.integers(1, 6),
    history=st.integers(0, 5),
    script=st.lists(step, max_size=60),
    wait=st.floats(min_value=0, max_value=100),
)
def test_after_a_sweep_every_kept_message_is_younger_than_the_ttl_and_seqs_stay_gapless(
    ttl: float,
    sweep_rooms: int,
    sweep_messages: int,
    history: int,
    script: list[tuple[str, str, float]],
    wait: float,
) -> None:
    backend = MemoryBackend()
    hub = Stored(
        RoomHub(
            history=history,
            retain=50,
            ttl=ttl,
            sweep_rooms=sweep_rooms,
            sweep_messages=sweep_messages,
        ),
        backend,
    )
    now, members = 1000.0, set()
    for action, room, dt in script:
        now += dt
        if action == "join" and room not in members:
            hub.handle(Join(session=room, user="u", room=room), now=now)
            members.add(room)
        elif action == "post" and room in members:
            hub.handle(Post(session=room, room=room, content="x"), now=now)
        elif action == "leave" and room in members:
            hub.handle(Leave(session=room, room=room), now=now)
            members.discard(room)
        elif action == "publish":
            command = Publish(room=room, sender="bot", content="p")
            while (read := hub.hub.needs(command)) is not None:
                hub.hub.provide(read, backend.read_now(read))
            hub.hub.publish(command, now=now)
            backend.write_now(hub.hub.take_writes())
        elif action == "sweep":
            read = hub.hub.sweep(now=now)
            assert read is not None
            hub.hub.expire(read, backend.read_now(read))  # type: ignore[arg-type]
            backend.write_now(hub.hub.take_writes())
    now += wait
    sweep_twice_round(hub, now)
    cutoff = int((now - ttl) * 1000)
    for room in ROOMS:
        loaded = backend.read_now(LoadRoom(room=room, recent=0))
        messages = stored_messages(backend, room)
        if loaded.record is None:  # type: ignore[union-attr]
            assert room not in members and not messages  # only empty rooms are forgotten
            continue
        assert room in members or messages  # an empty room with no one in it is forgotten
        head = loaded.record.head  # type: ignore[union-attr]
        assert all(m.timestamp >= cutoff for m in messages)
        seqs = [m.seq for m in messages]
        assert seqs == list(range(head - len(seqs) + 1, head + 1))  # gapless up to the head
        stamps = [m.timestamp for m in messages]
        assert stamps == sorted(stamps)  # time never goes backwards within a room
        seen = joined(hub, f"viewer-{room}", room, now)
        shown = [m for m in seen if m.kind is Kind.TEXT]
        assert all(m.timestamp >= cutoff for m in shown)
        assert [m.seq for m in shown] == seqs[len(seqs) - len(shown) :]  # the newest, in order
        resumed = joined(hub, f"resumer-{room}", room, now, resume_after_seq=0)
        texts = [m for m in resumed if m.kind is Kind.TEXT]
        notices = [m for m in resumed if m.kind is Kind.SYSTEM and m.seq == 0]
        if (seqs and seqs[0] > 1) or (not seqs and head):
            assert notices and notices[0].content.startswith(
                f"history starts at seq {head - len(seqs) + 1}"
            )
        else:
            assert not notices and [m.seq for m in texts if m.sender] == seqs


def test_a_joiner_never_receives_an_expired_message_even_before_the_sweep() -> None:
    hub = Stored(RoomHub(history=10, ttl=60), MemoryBackend())
    hub.handle(Join(session="s", user="ann", room="r"), now=0)
    hub.handle(Post(session="s", room="r", content="old"), now=0)
    hub.handle(Post(session="s", room="r", content="new"), now=50)
    seen = joined(hub, "v", "r", now=90)
    assert [m.content for m in seen if m.kind is Kind.TEXT] == ["new"]
    resumed = joined(hub, "w", "r", now=90, resume_after_seq=0)
    assert resumed[1].kind is Kind.SYSTEM and resumed[1].content.startswith(
        "history starts at seq 2"
    )


def test_a_step_trims_at_most_its_budget_and_the_next_goes_on_from_that_room() -> None:
    backend = MemoryBackend()
    hub = Stored(RoomHub(ttl=10, sweep_messages=4), backend)
    for room in ("a", "b"):
        hub.handle(Join(session=room, user="ann", room=room), now=0)
        for _ in range(6):
            hub.handle(Post(session=room, room=room, content="old"), now=0)
        hub.handle(Leave(session=room, room=room), now=0)
    steps = sweep_twice_round(hub, now=20)
    assert [(s.messages, s.rooms) for s in steps[:3]] == [(4, 0), (4, 1), (4, 1)]
    assert [s.lap for s in steps[:3]] == [False, False, True]
    assert stored_messages(backend, "a") == stored_messages(backend, "b") == []


def test_the_sweep_counts_and_forgets_empty_rooms_so_a_resume_is_told_of_the_reset() -> None:
    backend = MemoryBackend()
    hub = Stored(RoomHub(ttl=10, sweep_rooms=2), backend)
    for n in range(5):  # five rooms, posted to once each and left
        room = f"room{n}"
        hub.handle(Join(session=room, user="ann", room=room), now=0)
        hub.handle(Post(session=room, room=room, content="once"), now=0)
        hub.handle(Leave(session=room, room=room), now=0)
    epoch = backend.read_now(LoadRoom(room="room0", recent=0)).record.epoch  # type: ignore[union-attr]
    assert sum(s.messages for s in sweep_twice_round(hub, now=5)) == 0  # nothing expired yet
    steps = sweep_twice_round(hub, now=11)
    assert (sum(s.messages for s in steps), sum(s.rooms for s in steps)) == (5, 5)
    assert all(
        backend.read_now(LoadRoom(room=f"room{n}", recent=0)).record is None for n in range(5)
    )  # type: ignore[union-attr]
    resumed = joined(hub, "back", "room0", now=12, resume_after_seq=1, epoch=epoch)
    assert resumed[0].epoch != epoch
    assert resumed[1].kind is Kind.SYSTEM and resumed[1].content.startswith("history was reset")


def test_a_stale_load_of_a_room_forgotten_meanwhile_is_read_again() -> None:
    """A JOIN's read planned before the sweep forgot the room, answered after: the hub must not
    trust it (its head would clash with the room the store no longer has)."""
    backend = MemoryBackend()
    hub = Stored(RoomHub(ttl=10), backend)
    hub.handle(Join(session="s", user="ann", room="r"), now=0)
    hub.handle(Post(session="s", room="r", content="x"), now=0)
    hub.handle(Leave(session="s", room="r"), now=0)
    join = Join(session="t", user="bob", room="r")
    read = hub.hub.needs(join)
    stale = backend.read_now(read)  # type: ignore[arg-type]
    sweep_twice_round(hub, now=20)  # forgets "r"
    hub.hub.provide(read, stale)  # type: ignore[arg-type]
    assert hub.hub.needs(join) is not None  # not trusted: read again
    hub.handle(join, now=21)
    hub.handle(Post(session="t", room="r", content="y"), now=21)  # the backend accepts it
    assert [m.seq for m in stored_messages(backend, "r")] == [1]


def test_retention_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "interplay.db"
    before = Stored(RoomHub(), SQLiteBackend(path))  # no TTL yet
    before.handle(Join(session="s", user="ann", room="old"), now=0)
    before.handle(Post(session="s", room="old", content="gone"), now=0)
    before.handle(Join(session="s", user="ann", room="mixed"), now=0)
    before.handle(Post(session="s", room="mixed", content="gone"), now=0)
    before.handle(Post(session="s", room="mixed", content="kept"), now=100)
    old_epoch = before.hub.head("old")[0]  # type: ignore[index]
    before.handle(Leave(session="s", room="old"), now=100)
    before.handle(Leave(session="s", room="mixed"), now=100)
    before.backend.close()  # type: ignore[union-attr]

    after = Stored(RoomHub(ttl=50), SQLiteBackend(path))  # restarted, now with a TTL
    steps = sweep_twice_round(after, now=120)
    assert (sum(s.messages for s in steps), sum(s.rooms for s in steps)) == (2, 1)
    assert [m.content for m in stored_messages(after.backend, "mixed")] == ["kept"]
    resumed = joined(after, "v", "mixed", now=120, resume_after_seq=0)
    assert resumed[1].content.startswith("history starts at seq 2")
    assert [m.content for m in resumed if m.kind is Kind.TEXT] == ["kept"]
    reset = joined(after, "w", "old", now=120, resume_after_seq=1, epoch=old_epoch)
    assert reset[1].content.startswith("history was reset")
    after.backend.close()  # type: ignore[union-attr]
    again = Stored(RoomHub(ttl=50), SQLiteBackend(path))  # and once more: it stays that way
    assert [m.content for m in stored_messages(again.backend, "mixed")] == ["kept"]
    assert again.backend.read_now(LoadRoom(room="old", recent=0)).record is not None  # w's JOIN
    again.backend.close()  # type: ignore[union-attr]


def test_ttl_and_sweep_rooms_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^ttl: must be positive"):
        RoomHub(ttl=0)
    with pytest.raises(ValueError, match=r"^sweep_rooms: must be at least 1"):
        RoomHub(sweep_rooms=0)
    with pytest.raises(ValueError, match=r"^sweep_messages: must be at least 1, got 0"):
        RoomHub(sweep_messages=0)
    assert RoomHub().sweep(now=0) is None  # no TTL: no sweep
