"""Editors that read at random speeds, pause and stop, against the document's model (DESIGN §5).

As ``test_lagging_machine`` for chat: a ``RuleBasedStateMachine`` over a running ``Runtime``.
Writers edit and move carets, each edit waited for (its ack comes whatever the readers do: no
reader holds a writer up); readers pause, resume, change speed, stop for good, and edit too,
unread. Every editor's revisions are always a gapless prefix given once each (its snapshot,
then one event per revision, its own as acks); at the end every editor that still reads has
every revision, a reader that never edited holds the server's text, and each reader's acks are
exactly its own edits.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule
from memory_transport import SlowCall, replayed, until
from reader_rules import ReaderRules

from interplay.backends import MemoryBackend
from interplay.core.documents import Acked, EditDocument, MoveCursor, OpenDocument, Snapshot
from interplay.runtime import Runtime, Service, Settings

WRITERS = ("e0", "e1")
READERS = ("r0", "r1", "r2")
SETTINGS = Settings(high_water=4, low_water=1, session_budget=1500, drain_timeout=60, rate=0)


def acked(call: SlowCall, revision: int) -> bool:
    return any(isinstance(e, Acked) and e.revision == revision for e in call.events())


class LaggingEditors(ReaderRules):
    readers = READERS

    @initialize()
    def start(self) -> None:
        self.calls: dict[str, SlowCall] = {}
        self.paused: set[str] = set()
        self.stopped: set[str] = set()
        self.revision = 0  # the document's head: every edit made so far
        self.sent: dict[str, list[str]] = {user: [] for user in READERS}  # their op ids
        self.stack = ExitStack()
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal("asyncio"))
        runtime = self.portal.call(lambda: Runtime(MemoryBackend(), settings=SETTINGS))
        self.runtime = self.stack.enter_context(self.portal.wrap_async_context_manager(runtime))
        group = self.portal.call(anyio.create_task_group)
        self.tasks: Any = self.stack.enter_context(self.portal.wrap_async_context_manager(group))
        for user in WRITERS + READERS:
            self.portal.call(self._open, user)

    async def _open(self, user: str) -> None:
        call = SlowCall(self.runtime, Service.EDIT)
        call.start(self.tasks)
        call.put(OpenDocument(session="", document="d", user=user))
        await call.wait_for(lambda: any(isinstance(e, Snapshot) for e in call.events()))
        self.calls[user] = call

    def teardown(self) -> None:
        if not hasattr(self, "tasks"):
            return
        try:
            for user in READERS:
                if user not in self.stopped:
                    self.calls[user].delay = 0.0
                    self.portal.call(self.calls[user].unblock)
            self.portal.call(self._all_read)
            text = self.runtime.documents.text("d")
            for user, call in self.calls.items():
                held, revisions = replayed(call.events())
                if user in self.stopped:
                    assert revisions == list(range(len(revisions))), (user, revisions)
                else:
                    assert revisions == list(range(self.revision + 1)), (user, revisions)
                if user in READERS and user not in self.stopped:
                    acks = [e.op_id for e in call.events() if isinstance(e, Acked)]
                    assert acks == self.sent[user], (user, acks)
                    if not self.sent[user]:
                        assert held == text, user
        finally:
            self.portal.call(self._end_all)
            self.stack.close()

    async def _end_all(self) -> None:
        for call in self.calls.values():
            call.delay = 0.0
            call.unblock()
            call.end()
        for call in self.calls.values():
            await call.result(timeout=10)

    async def _all_read(self) -> None:
        for user, call in self.calls.items():
            if user not in self.stopped:
                head = self.revision
                await call.wait_for(lambda c=call, h=head: replayed(c.events())[1][-1] == h, 10)

    async def _applied(self) -> None:
        """Until the server has applied every edit sent (a reader's are not waited for)."""
        documents = self.runtime.documents
        await until(lambda: documents.snapshot("d").revision == self.revision)

    @rule(writer=st.sampled_from(WRITERS), count=st.integers(1, 10), size=st.sampled_from([1, 200]))
    def edit(self, writer: str, count: int, size: int) -> None:
        """Each edit is acknowledged whatever the readers do: none of them holds it."""
        call = self.calls[writer]
        for _ in range(count):
            self.portal.call(self._applied)
            base = self.revision
            self.revision += 1
            edit = EditDocument(
                session="", document="d", base=base, position=0, inserted="x" * size
            )
            caret = MoveCursor(session="", document="d", base=base + 1, position=size)
            self.portal.call(lambda e=edit, c=caret: call.put(e, c))
            self.portal.call(lambda h=self.revision: call.wait_for(lambda: acked(call, h)))

    @rule(reader=st.sampled_from(READERS))
    def reader_edits(self, reader: str) -> None:
        """A reader edits too, paused or not (its ack waits in its queue)."""
        self.portal.call(self._applied)
        op_id = f"{reader}-{len(self.sent[reader])}"
        self.sent[reader].append(op_id)
        edit = EditDocument(
            session="", document="d", base=self.revision, position=0, inserted="y", op_id=op_id
        )
        self.revision += 1
        self.portal.call(lambda: self.calls[reader].put(edit))
        self.portal.call(self._applied)

    @invariant()
    def each_reads_every_revision_once_in_order(self) -> None:
        if not hasattr(self, "calls"):
            return
        for call in self.calls.values():
            revisions = replayed(call.events())[1]
            assert revisions == list(range(len(revisions)))


TestLaggingEditors = LaggingEditors.TestCase
TestLaggingEditors.settings = settings(
    # Each step waits on a running runtime: a quarter of the profile's examples.
    max_examples=min(25, max(5, settings.default.max_examples // 4)),
    stateful_step_count=20,
    deadline=None,
)
