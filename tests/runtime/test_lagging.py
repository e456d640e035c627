"""A receiver that falls behind reads from the log; no one waits for it (DESIGN §5).

Driven through ``Runtime.serve`` with the in-memory transport: a peer that never reads is a
``MemoryCall`` whose ``send`` is blocked.
"""

from __future__ import annotations

import anyio
import pytest
from memory_transport import MemoryCall, chat, finish, join, post, running, seeded, until

from interplay.core.documents import EditDocument, OpenDocument
from interplay.core.rooms import Join
from interplay.runtime import Service, Settings

pytestmark = pytest.mark.anyio


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


async def test_a_receiver_over_its_byte_budget_reads_from_the_log_and_holds_little() -> None:
    """Big messages: the byte budget, not high water, sends the receiver to the log; what is
    queued for it stays about one budget (it was every message, 64 KiB each)."""
    settings = Settings(high_water=10_000, low_water=8, session_budget=64 * 1024, rate=0)
    total, size = 60, 16 * 1024
    async with running(settings=settings) as (runtime, tasks):
        receiver, sender = chat(runtime, tasks), chat(runtime, tasks)
        await join(receiver, "rita")
        await join(sender, "sam")
        await receiver.wait_events(2)
        receiver.block()
        peak = 0

        def measure(frames: list[bytes]) -> None:
            nonlocal peak
            peak = max(peak, runtime.statistics().queued_bytes)

        sender.on_send = measure
        sender.put(*(post("x" * size, id=f"m{n}") for n in range(total)))
        await sender.wait_texts(total)  # never waited for rita
        assert runtime.counters.switches_to_log >= 1
        assert peak <= 2 * settings.session_budget + 2 * size  # hers, and sam's own echoes
        receiver.unblock()
        await receiver.wait_texts(total)
        assert [m.seq for m in receiver.texts()] == list(range(1, total + 1))
        await until(lambda: runtime.statistics().queued_bytes == 0)  # memory returns
        await finish(receiver, sender)


async def test_a_receiver_close_behind_is_given_the_latest_from_memory_not_the_store() -> None:
    """What was delivered live lately is kept (byte-bounded) as its encoded Broadcast: a
    laggard within it reads no store page; one further behind reads the store, and both
    get every TEXT once, in order."""
    settings = Settings(high_water=20, low_water=4, rate=0)
    async with running(settings=settings) as (runtime, tasks):
        near, far, sender = chat(runtime, tasks), chat(runtime, tasks), chat(runtime, tasks)
        for call, user in ((near, "near"), (far, "far"), (sender, "sam")):
            await join(call, user)
        await sender.wait_events(3)
        near.block()
        sender.put(*(post(f"m{n}", id=f"m{n}") for n in range(100)))
        await sender.wait_texts(100)
        assert runtime.counters.switches_to_log >= 1
        before = runtime.counters.log_reads
        near.unblock()
        await near.wait_texts(100)
        assert [m.seq for m in near.texts()] == list(range(1, 101))
        assert runtime.counters.log_reads == before  # no store read: all from memory
        assert runtime.counters.log_from_memory >= 100 - 2 * settings.high_water
        # Behind what memory keeps (its first seqs were let go): the store serves it.
        runtime._log._shared.clear()  # as if a flood of other rooms had pushed them out
        far.block()
        sender.put(*(post(f"n{n}", id=f"n{n}") for n in range(100)))
        await sender.wait_texts(200)
        runtime._log._shared.clear()
        far.unblock()
        await far.wait_texts(200)
        assert [m.seq for m in far.texts()] == list(range(1, 201))
        assert runtime.counters.log_reads > before
        await finish(near, far, sender)


async def test_over_the_connection_budget_its_fullest_session_reads_from_the_log() -> None:
    settings = Settings(high_water=10_000, connection_budget=32 * 1024, rate=0)
    async with running(settings=settings) as (runtime, tasks):
        sender = chat(runtime, tasks)
        shared = [MemoryCall(runtime, connection="conn-1").start(tasks) for _ in range(3)]
        await join(sender, "sam")
        for n, call in enumerate(shared):
            await join(call, f"reader{n}")
            call.block()
        sender.put(*(post("x" * 4096, id=f"m{n}") for n in range(40)))
        await sender.wait_texts(40)
        assert runtime.counters.switches_to_log >= 1
        assert runtime.statistics().queued_bytes < 3 * 32 * 1024
        for call in shared:
            call.unblock()
        for call in shared:
            await call.wait_texts(40)
            assert [m.seq for m in call.texts()] == list(range(1, 41))
        await finish(sender, *shared)


async def test_over_the_server_budget_the_fullest_go_to_the_log_then_readers_wait() -> None:
    """Chat receivers that stop reading go to the log; what no log holds (a document's
    snapshot, for editors that do not read) fills the server's budget, and then every reader
    waits until it drains."""
    settings = Settings(high_water=10_000, server_budget=64 * 1024, rate=0)
    async with running(settings=settings) as (runtime, tasks):
        sender, stuck = chat(runtime, tasks), chat(runtime, tasks)
        await join(sender, "sam")
        await join(stuck, "stuck")
        stuck.block()
        sender.put(*(post("x" * 4096, id=f"m{n}") for n in range(40)))
        await sender.wait_texts(40)
        assert runtime.counters.switches_to_log >= 1  # stuck went to the log
        assert runtime.counters.budget_waits == 0  # that was enough

        editor = MemoryCall(runtime, Service.EDIT).start(tasks)
        editor.put(OpenDocument(session="", document="d", user="e"))
        await editor.wait_events(1)
        for n in range(5):
            editor.put(
                EditDocument(
                    session="", document="d", base=n, position=0, inserted="y" * 8000, op_id=f"e{n}"
                )
            )
        await editor.wait_events(6)  # its snapshot and five acks: 40 000 characters
        watchers = [MemoryCall(runtime, Service.EDIT).start(tasks) for _ in range(2)]
        for watcher in watchers:
            watcher.block()
            watcher.put(OpenDocument(session="", document="d", user="w"))
        await until(lambda: runtime.counters.budget_waits == 1)
        sender.put(post("while full", id="full"))
        with anyio.move_on_after(0.3):  # bounded: what must not happen while it is full
            await sender.wait_texts(41)
        assert len(sender.texts()) == 40  # not read: every reader waits
        for watcher in watchers:
            watcher.unblock()
        await sender.wait_texts(41)  # the snapshots went out: readers go on
        stuck.unblock()
        await stuck.wait_texts(41)
        assert [m.seq for m in stuck.texts()] == list(range(1, 42))
        await until(lambda: runtime.statistics().queued_bytes == 0)
        await finish(sender, stuck, editor, *watchers)
