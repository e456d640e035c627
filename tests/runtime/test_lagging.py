"""A receiver that falls behind reads from the log; no one waits for it (DESIGN §5).

Driven through ``Runtime.serve`` with the in-memory transport: a peer that never reads is a
``MemoryCall`` whose ``send`` is blocked.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from memory_transport import MemoryCall, chat, finish, join, post, running, until

from interplay.backends import MemoryBackend
from interplay.core.effects import AppendMessage, CreateRoom
from interplay.core.rooms import Join, Kind, RoomMessage
from interplay.runtime import Settings

pytestmark = pytest.mark.anyio


def seeded(rooms: dict[str, int], size: int) -> MemoryBackend:
    """A backend whose rooms already hold ``rooms[name]`` TEXTs of ``size`` characters."""
    backend = MemoryBackend()
    for room, count in rooms.items():
        writes: list[Any] = [CreateRoom(room=room, epoch=f"e-{room}")]
        writes += [
            AppendMessage(
                message=RoomMessage(
                    kind=Kind.TEXT,
                    room=room,
                    sender="old",
                    id=f"old-{seq}",
                    content="x" * size,
                    timestamp=seq,
                    seq=seq,
                    epoch=f"e-{room}",
                )
            )
            for seq in range(1, count + 1)
        ]
        backend.write_now(writes)
    return backend


class Gaps:
    """The longest time between two writes a call received (from ``start``)."""

    def __init__(self, call: MemoryCall) -> None:
        self.last = anyio.current_time()
        self.longest = 0.0
        call.on_send = self._sent

    def _sent(self, frames: list[bytes]) -> None:
        now = anyio.current_time()
        self.longest = max(self.longest, now - self.last)
        self.last = now


async def test_six_joiners_that_never_read_do_not_freeze_the_room() -> None:
    """The issue's freeze: a room of thousands of TEXTs, a member posting 20/s, another
    reading; six callers JOIN with ``resume_after_seq=0`` and never read. The reader's longest
    gap stays under 200 ms (it was the drain timeout, restarted by each new caller)."""
    async with running(seeded({"lobby": 3000}, 1024), settings=Settings()) as (runtime, tasks):
        poster, reader = chat(runtime, tasks), chat(runtime, tasks)
        await join(poster, "poster")
        await join(reader, "reader")
        await reader.wait_texts(100)  # its own history window
        gaps = Gaps(reader)
        stop = anyio.Event()

        async def post_20_per_second() -> None:
            n = 0
            while not stop.is_set():
                poster.put(post(f"live {n}", id=f"live-{n}"))
                n += 1
                await anyio.sleep(0.05)

        tasks.start_soon(post_20_per_second)
        joiners = []
        for n in range(6):
            joiner = chat(runtime, tasks)
            joiner.block()  # it never reads
            joiner.put(Join(session="", user=f"joiner{n}", room="lobby", resume_after_seq=0))
            joiners.append(joiner)
            await anyio.sleep(0.25)
        await anyio.sleep(0.5)
        stop.set()
        await reader.wait_for(lambda: any(m.content.startswith("live") for m in reader.texts()))
        live = [m for m in reader.texts() if m.content.startswith("live")]
        assert len(live) >= 30, "the reader was starved of live TEXTs"
        assert gaps.longest < 0.2, f"the reader waited {gaps.longest:.2f} s for a laggard"
        assert [m.seq for m in reader.texts()] == list(range(2901, live[-1].seq + 1))
        for joiner in joiners:
            joiner.unblock()
        await until(lambda: all(len(j.texts()) >= live[-1].seq for j in joiners), timeout=10)
        for joiner in joiners:  # read at its own pace, from the log: each TEXT once, in order
            assert [m.seq for m in joiner.texts()][: live[-1].seq] == list(
                range(1, live[-1].seq + 1)
            )
        await finish(poster, reader, *joiners)
