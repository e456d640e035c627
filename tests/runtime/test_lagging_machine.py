"""Receivers that read at random speeds, pause and stop, against the room's model (DESIGN §5).

A ``RuleBasedStateMachine`` over a running ``Runtime`` (in a blocking portal: each rule is one
async step, waited for): senders post; receivers pause (their peer stops reading), resume,
change speed, or stop for good. After every post each sender has its own echoes (no single
receiver ever holds a sender up); at the end every receiver that still reads has every TEXT
exactly once, in seq order, and one that stopped has a gapless prefix of them.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule
from memory_transport import SlowCall, join, post
from reader_rules import ReaderRules

from interplay.backends import MemoryBackend
from interplay.runtime import Runtime, Service, Settings

SENDERS = ("s0", "s1")
RECEIVERS = ("r0", "r1", "r2")
SETTINGS = Settings(high_water=4, low_water=1, session_budget=1500, drain_timeout=60, rate=0)


class LaggingReceivers(ReaderRules):
    readers = RECEIVERS

    @initialize()
    def start(self) -> None:
        self.calls: dict[str, SlowCall] = {}
        self.paused: set[str] = set()
        self.stopped: set[str] = set()
        self.posted = 0  # the room's head: every TEXT posted so far
        self.own: dict[str, int] = dict.fromkeys(SENDERS, 0)
        self.stack = ExitStack()
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal("asyncio"))
        runtime = self.portal.call(lambda: Runtime(MemoryBackend(), settings=SETTINGS))
        self.runtime = self.stack.enter_context(self.portal.wrap_async_context_manager(runtime))
        group = self.portal.call(anyio.create_task_group)
        self.tasks: Any = self.stack.enter_context(self.portal.wrap_async_context_manager(group))
        for user in SENDERS + RECEIVERS:
            self.portal.call(self._join, user)

    async def _join(self, user: str) -> None:
        call = SlowCall(self.runtime, Service.CHAT)
        call.start(self.tasks)
        await join(call, user)
        self.calls[user] = call

    def teardown(self) -> None:
        if not hasattr(self, "tasks"):
            return
        try:
            for user in RECEIVERS:
                if user not in self.stopped:
                    self.calls[user].delay = 0.0
                    self.portal.call(self.calls[user].unblock)
            self.portal.call(self._all_read)
            for user, call in self.calls.items():
                seqs = [m.seq for m in call.texts()]
                if user in self.stopped:
                    assert seqs == list(range(1, len(seqs) + 1)), (user, seqs)
                else:
                    assert seqs == list(range(1, self.posted + 1)), (user, seqs)
        finally:
            self.portal.call(self._end_all)
            self.stack.close()

    async def _end_all(self) -> None:
        """Every client ends its call (the stopped ones read again, to be flushed)."""
        for call in self.calls.values():
            call.delay = 0.0
            call.unblock()
            call.end()
        for call in self.calls.values():
            await call.result(timeout=10)

    async def _all_read(self) -> None:
        for user, call in self.calls.items():
            if user not in self.stopped:
                await call.wait_texts(self.posted, timeout=10)

    @rule(sender=st.sampled_from(SENDERS), count=st.integers(1, 12), size=st.sampled_from([1, 300]))
    def post(self, sender: str, count: int, size: int) -> None:
        """The sender gets its own echoes whatever the receivers do: none of them holds it."""
        call = self.calls[sender]
        first = self.own[sender]
        messages = [post("x" * size, id=f"{sender}-{first + n}") for n in range(count)]
        self.portal.call(lambda: call.put(*messages))
        self.own[sender] += count
        self.posted += count
        mine = self.own[sender]
        self.portal.call(
            lambda: call.wait_for(
                lambda: sum(m.sender == sender for m in call.texts()) >= mine, timeout=5
            )
        )

    @invariant()
    def each_reads_in_order_once(self) -> None:
        if not hasattr(self, "calls"):
            return
        for call in self.calls.values():
            seqs = [m.seq for m in call.texts()]
            assert seqs == list(range(1, len(seqs) + 1))


TestLaggingReceivers = LaggingReceivers.TestCase
TestLaggingReceivers.settings = settings(
    # Each step waits on a running runtime: a quarter of the profile's examples.
    max_examples=min(25, max(5, settings.default.max_examples // 4)),
    stateful_step_count=20,
    deadline=None,
)
