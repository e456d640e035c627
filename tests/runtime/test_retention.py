"""Retention in the runtime: the timer task runs bounded steps, off the sessions' paths, and
counts them; the data file stops growing with rooms posted to once and left."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import eventually
from interplay.backends import SQLiteBackend
from interplay.core import RoomHub
from interplay.core.effects import LoadRoom
from interplay.runtime import Runtime, Settings

pytestmark = pytest.mark.anyio


class Clock:
    """The server's wall clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_timer_trims_and_forgets_in_counted_steps(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    backend = SQLiteBackend(tmp_path / "interplay.db")
    rooms = RoomHub(ttl=3600, sweep_rooms=7)
    settings = Settings(rate=0, retention_every=0.01)
    async with Runtime(backend, rooms=rooms, settings=settings, clock=clock) as runtime:
        for n in range(50):  # rooms posted to once, no one in them
            await runtime.admin.publish(f"room{n:02}", "once", sender="bot")
        await runtime.admin.publish("lively", "old", sender="bot")
        clock.now += 1800
        await runtime.admin.publish("lively", "recent", sender="bot")
        await eventually(lambda: runtime.counters.retention_steps >= 10)
        assert runtime.counters.messages_expired == 0  # nothing is an hour old yet

        clock.now += 1801  # the first posts are now older than the TTL
        await eventually(lambda: runtime.counters.rooms_forgotten == 50)
        await eventually(lambda: runtime.counters.messages_expired == 51)
        assert runtime.statistics().counters.rooms_forgotten == 50
        for n in range(50):
            assert backend.read_now(LoadRoom(room=f"room{n:02}", recent=0)).record is None  # type: ignore[union-attr]
        page = await runtime.admin.history("lively")
        assert [(m.seq, m.content) for m in page.messages] == [(2, "recent")]
        rows = backend._db.execute("SELECT count(*) FROM rooms").fetchone()[0]
        assert rows == 1  # only "lively" is left
    backend.close()


async def test_a_backlog_is_trimmed_step_after_step_without_waiting_a_period() -> None:
    from interplay.backends import MemoryBackend

    clock = Clock(1_000_000.0)
    backend = MemoryBackend()
    async with Runtime(backend, rooms=RoomHub(), clock=clock) as before:  # no TTL yet
        for n in range(10):
            await before.admin.publish("log", f"old {n}", sender="bot")
    clock.now += 7200
    rooms = RoomHub(ttl=3600, sweep_messages=2)  # two messages a step at most
    settings = Settings(rate=0, retention_every=3600, retention_pause=0.001)  # one period: 1 h
    async with Runtime(backend, rooms=rooms, settings=settings, clock=clock) as runtime:
        await eventually(lambda: runtime.counters.rooms_forgotten == 1)
        assert runtime.counters.messages_expired == 10
        assert runtime.counters.retention_steps == 5  # at start, then one after another
