"""A TEXT whose id a room's filter calls "maybe" (core/id_filter.py: about one in a hundred
new ids, and every re-send older than the window) is looked up without cutting the group
commit short (``Runtime._find_message``).

The regression this pins (issue 13, bench/README.md): the lookup waited until every queued
write was durable, so each "maybe" ended the batch being gathered: ~100 extra transactions,
and a write to every member each, per 50 000 TEXTs of bench/chat_load.py 1 x 2 (and ~450 with
a filter of 1 % false positives). Counted here as transactions, not timed.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from memory_transport import MemoryCall, finish, join, post, running

from interplay.core.effects import ReadHistory
from interplay.core.id_filter import IdFilter
from interplay.core.rooms import RoomHub
from interplay.runtime import Service

pytestmark = pytest.mark.anyio

BURST = 200


class BurstCall(MemoryCall):
    """A call whose ``burst`` is read without a checkpoint between its messages, as grpclib's
    reader takes the frames of one socket read: a group commit can gather all of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.burst: deque[object] = deque()

    async def receive(self) -> Any:
        if self.burst:
            return self.burst.popleft()
        return await super().receive()


async def burst_commits(*, every_id_maybe: bool, monkeypatch: pytest.MonkeyPatch) -> int:
    """Transactions the backend commits while a member's burst of TEXTs is stored."""
    if every_id_maybe:
        monkeypatch.setattr(IdFilter, "__contains__", lambda self, key: True)
    async with running(rooms=RoomHub(history=10)) as (runtime, tasks):
        poster = BurstCall(runtime, Service.CHAT)
        poster.start(tasks)
        await join(poster, "ann")
        before = runtime.counters.commits
        first, *rest = (post(f"m{n}", id=f"id-{n}") for n in range(BURST))
        poster.burst.extend(rest)
        poster.put(first)  # (wakes the waiting reader; the rest follow it at once)
        await poster.wait_texts(BURST)
        assert [m.content for m in poster.texts()] == [f"m{n}" for n in range(BURST)]
        commits = runtime.counters.commits - before
        await finish(poster)
    return commits


async def test_maybe_ids_do_not_cut_the_group_commit_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = await burst_commits(every_id_maybe=False, monkeypatch=monkeypatch)
    maybe = await burst_commits(every_id_maybe=True, monkeypatch=monkeypatch)
    assert maybe <= plain + 2, f"{maybe} transactions for {BURST} maybes, {plain} without"


async def test_a_resend_of_a_text_not_yet_durable_is_recognised() -> None:
    """Beyond the window (history 1) but still queued for the store: found among the writes
    not yet durable, stored once, the original back to its sender."""
    async with running(rooms=RoomHub(history=1)) as (runtime, tasks):
        poster = BurstCall(runtime, Service.CHAT)
        poster.start(tasks)
        await join(poster, "ann")
        poster.burst.extend([post("second", id="b"), post("first", id="a")])
        poster.put(post("first", id="a"))
        await poster.wait_texts(3)
        assert [(m.content, m.seq) for m in poster.texts()] == [
            ("first", 1),
            ("second", 2),
            ("first", 1),
        ]
        await finish(poster)
        stored = runtime.backend.read_now  # type: ignore[attr-defined]
        assert [m.id for m in stored(ReadHistory(room="lobby", after_seq=0, limit=10))] == [
            "a",
            "b",
        ]
