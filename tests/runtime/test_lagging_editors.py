"""An editor that falls behind reads its documents' kept history; no editor waits for it.

Driven through ``Runtime.serve`` with the in-memory transport (a peer that never reads is a
``MemoryCall`` whose ``send`` is blocked). What a lagging editor finally receives is checked
the way a client uses it: every revision once, in order (the others' edits as ``Remote``, its
own as ``Acked``), and the pieces applied to its snapshot give the server's text.
"""

from __future__ import annotations

import pytest
from memory_transport import MemoryCall, finish, replayed, running, until

from interplay.core.documents import (
    Acked,
    CursorMoved,
    DocumentHub,
    EditDocument,
    MoveCursor,
    OpenDocument,
    Remote,
    Snapshot,
)
from interplay.runtime import Service, Settings, SlowConsumer
from interplay.runtime.refusals import Refusal

pytestmark = pytest.mark.anyio

SETTINGS = Settings(high_water=8, low_water=2, drain_timeout=60, rate=0)


async def editors(runtime: object, tasks: object, *users: str) -> list[MemoryCall]:
    calls = []
    for user in users:
        call = MemoryCall(runtime, Service.EDIT).start(tasks)  # type: ignore[arg-type]
        call.put(OpenDocument(session="", document="d", user=user))
        await call.wait_for(lambda c=call: any(isinstance(e, Snapshot) for e in c.events()))
        calls.append(call)
    return calls


def acked(call: MemoryCall, revision: int) -> bool:
    return any(isinstance(e, Acked) and e.revision == revision for e in call.events())


async def test_an_editor_that_stops_reading_reads_the_history_and_no_one_waits() -> None:
    async with running(settings=SETTINGS) as (runtime, tasks):
        ann, bob, wes = await editors(runtime, tasks, "ann", "bob", "wes")
        wes.block()
        for n in range(60):  # each waits for its ack: an editor paused for wes would stop here
            call = (ann, bob)[n % 2]
            call.put(
                EditDocument(session="", document="d", base=n, position=0, inserted=f"{n},"),
                MoveCursor(session="", document="d", base=n + 1, position=1),
            )
            await call.wait_for(lambda c=call, r=n + 1: acked(c, r))
        assert runtime.counters.switches_to_log >= 1
        assert runtime.statistics().lagging_sessions == 1
        assert runtime.counters.carets_dropped >= 1  # not in the history: dropped, counted

        wes.unblock()
        await wes.wait_for(lambda: replayed(wes.events())[1][-1:] == [60])
        await until(lambda: runtime.statistics().lagging_sessions == 0)
        text, revisions = replayed(wes.events())
        assert revisions == list(range(61))  # its snapshot at 0, then each revision once
        assert text == runtime.documents.text("d")
        assert runtime.counters.back_to_live >= 1 and runtime.counters.log_messages >= 1
        # Live again: the next edit and caret come as they happen.
        ann.put(EditDocument(session="", document="d", base=60, position=0, inserted="!"))
        ann.put(MoveCursor(session="", document="d", base=61, position=0))
        await wes.wait_for(lambda: isinstance(wes.events()[-1], CursorMoved))
        assert replayed(wes.events())[1][-1] == 61
        await finish(ann, bob, wes)


async def test_a_lagging_editors_own_acks_and_refusals_come_in_their_place() -> None:
    async with running(settings=SETTINGS) as (runtime, tasks):
        ann, wes = await editors(runtime, tasks, "ann", "wes")
        wes.block()
        for n in range(30):
            ann.put(EditDocument(session="", document="d", base=n, position=0, inserted="a"))
            await ann.wait_for(lambda r=n + 1: acked(ann, r))
        # wes edits too, while nothing reaches it, then sends one edit that is refused.
        wes.put(
            EditDocument(session="", document="d", base=30, position=0, inserted="w", op_id="w1")
        )
        await ann.wait_for(lambda: replayed(ann.events())[1][-1:] == [31])
        wes.put(EditDocument(session="", document="d", base=31, position=-1, inserted="x"))
        await until(lambda: runtime.counters.refusals == 1)
        wes.unblock()
        await wes.wait_for(lambda: any(isinstance(e, Refusal) for e in wes.events()))
        events = wes.events()
        text, revisions = replayed(events)
        assert revisions == list(range(32))
        assert "w" + text == runtime.documents.text("d")  # its own edit it applied itself
        [own] = [e for e in events if isinstance(e, Acked)]
        assert (own.revision, own.op_id) == (31, "w1")  # its ack, not its edit as a Remote
        assert not any(isinstance(e, Remote) and e.revision == 31 for e in events)
        assert isinstance(events[-1], Refusal)  # after the ack of what it sent before
        await finish(ann, wes)


async def test_an_editor_behind_the_kept_history_is_cut_and_its_reconnect_gets_a_snapshot() -> None:
    async with running(settings=SETTINGS, documents=DocumentHub(keep=20)) as (runtime, tasks):
        ann, wes = await editors(runtime, tasks, "ann", "wes")
        wes.block()
        for n in range(40):  # twice what the document keeps
            ann.put(EditDocument(session="", document="d", base=n, position=0, inserted="a"))
            await ann.wait_for(lambda r=n + 1: acked(ann, r))
        wes.unblock()
        failure = await wes.result()
        assert isinstance(failure, SlowConsumer) and "no longer kept" in str(failure)
        assert runtime.counters.behind_retention == 1
        [again] = await editors(runtime, tasks, "wes")
        snapshot = next(e for e in again.events() if isinstance(e, Snapshot))
        assert (snapshot.revision, snapshot.text) == (40, "a" * 40)
        await finish(ann, again)
