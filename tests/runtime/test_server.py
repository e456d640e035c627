"""The runtime with no transport at all: ``Runtime.serve`` driven by ``memory_transport``.

Each test waits on a condition (a call's writes, the runtime's counters), never on a guess of
how long something takes; an absence is checked after a positive marker.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import anyio
import pytest
from memory_transport import MemoryCall, RecordingCodec, chat, finish, join, post, running, until

from interplay.backends import MemoryBackend
from interplay.core import MatchHub
from interplay.core.documents import EditDocument, OpenDocument, Snapshot
from interplay.core.effects import AppendMessage, LoadDocument, Read, ReadHistory, Write
from interplay.core.errors import PermissionDenied, WrongIdentity
from interplay.core.matches import GameSettings, JoinMatch
from interplay.core.rooms import Join, Kind, Post, RoomMessage
from interplay.runtime import (
    Authenticator,
    Runtime,
    Service,
    Settings,
    ShuttingDown,
    SlowConsumer,
    StorageFailed,
    Unauthenticated,
)
from interplay.runtime.backend import ReadResult
from interplay.runtime.refusals import Refusal

pytestmark = pytest.mark.anyio

SECRET = "s" * 32


class GatedBackend:
    """A ``MemoryBackend`` whose ``write`` waits while the gate is closed; it records each call
    and, once a call returns, which messages it made durable."""

    def __init__(self) -> None:
        self.inner = MemoryBackend()
        self.calls: list[list[Write]] = []
        self.durable: set[tuple[str, int]] = set()
        self.entered = anyio.Event()  # set when a write call starts
        self.fail: Exception | None = None  # the next write raises this
        self._gate = anyio.Event()
        self._gate.set()

    def close_gate(self) -> None:
        self._gate = anyio.Event()

    def open_gate(self) -> None:
        self._gate.set()

    async def read(self, read: Read) -> ReadResult:
        return await self.inner.read(read)

    async def write(self, writes: Sequence[Write]) -> None:
        self.calls.append(list(writes))
        self.entered.set()
        self.entered = anyio.Event()
        await self._gate.wait()
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        await self.inner.write(writes)
        self.durable |= {
            (w.message.room, w.message.seq) for w in writes if isinstance(w, AppendMessage)
        }

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- fan-out -------------------------------------------------------------------------------


async def test_fan_out_every_member_gets_every_text_once_in_seq_order() -> None:
    per_sender, one, other = 15, RecordingCodec("one"), RecordingCodec("other")
    async with running() as (runtime, tasks):
        calls = [chat(runtime, tasks, one), chat(runtime, tasks, one), chat(runtime, tasks, other)]
        for n, call in enumerate(calls):
            await join(call, f"user{n}")
        for n, call in enumerate(calls):  # every sender's messages are in flight at once
            call.put(*(post(f"{n}:{k}", id=f"{n}-{k}") for k in range(per_sender)))
        total = per_sender * len(calls)
        for call in calls:
            await call.wait_texts(total)
        await finish(*calls)

        sent = {(f"user{n}", f"{n}-{k}") for n in range(len(calls)) for k in range(per_sender)}
        for call in calls:
            texts = call.texts()
            assert [m.seq for m in texts] == list(range(1, total + 1))  # in order, once each
            assert {(m.sender, m.id) for m in texts} == sent  # the sender's own copies too
        # Each sender's messages keep their order within the room's.
        for n in range(len(calls)):
            mine = [m.content for m in calls[0].texts() if m.sender == f"user{n}"]
            assert mine == [f"{n}:{k}" for k in range(per_sender)]
        # Three receivers, two codecs: each broadcast encoded once by each.
        texts = calls[0].texts()
        assert all(one.encoded[m] == 1 for m in texts)
        assert all(other.encoded[m] == 1 for m in texts)
        assert runtime.counters.deliveries >= total * len(calls)


async def test_an_idle_session_holds_no_writer_task_and_its_next_message_starts_one() -> None:
    async with running(settings=Settings(rate=0, idle_writer_sweep=0.05)) as (runtime, tasks):
        ann, bob = chat(runtime, tasks), chat(runtime, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        assert runtime.statistics().writers >= 1  # they just wrote
        await until(lambda: runtime.statistics().writers == 0)  # two sweeps with nothing
        ann.put(post("after the quiet", id="q"))
        await ann.wait_texts(1)
        await bob.wait_texts(1)
        assert [m.content for m in bob.texts()] == ["after the quiet"]
        await finish(ann, bob)


# -- backpressure --------------------------------------------------------------------------


async def test_a_receiver_over_high_water_reads_from_the_log_and_its_senders_go_on() -> None:
    settings = Settings(high_water=4, low_water=1, drain_timeout=60, rate=0)
    total = 30
    async with running(settings=settings) as (runtime, tasks):
        receiver, sender = chat(runtime, tasks), chat(runtime, tasks)
        await join(receiver, "rita")
        await join(sender, "sam")
        await receiver.wait_events(2)  # the echo and sam's arrival
        receiver.block()
        sender.put(*(post(f"m{n}") for n in range(total)))
        await sender.wait_texts(total)  # never paused for rita
        assert runtime.counters.switches_to_log >= 1
        assert runtime.statistics().lagging_sessions == 1
        assert len(receiver.texts()) < total

        receiver.unblock()
        await receiver.wait_texts(total)
        await until(lambda: runtime.statistics().lagging_sessions == 0)
        assert [m.seq for m in receiver.texts()] == list(range(1, total + 1))
        assert runtime.counters.back_to_live >= 1
        assert runtime.counters.log_messages >= 1
        await finish(receiver, sender)


async def test_a_slow_consumer_is_cut_after_the_drain_timeout_and_the_others_lose_nothing() -> None:
    settings = Settings(high_water=4, low_water=1, drain_timeout=0.2, rate=0)
    total = 30
    async with running(settings=settings) as (runtime, tasks):
        sender, other, slow = (chat(runtime, tasks) for _ in range(3))
        await join(sender, "sam")
        await join(other, "olga")
        await join(slow, "slow")
        await other.wait_events(3)  # echo, sam, then slow's arrival
        await sender.wait_events(3)
        slow.block()  # and it never reads again
        started = anyio.current_time()
        sender.put(*(post(f"m{n}") for n in range(total)))

        assert isinstance(await slow.result(), SlowConsumer)
        assert anyio.current_time() - started >= settings.drain_timeout
        await other.wait_texts(total)
        await sender.wait_texts(total)
        assert [m.seq for m in other.texts()] == list(range(1, total + 1))
        assert [m.seq for m in sender.texts()] == list(range(1, total + 1))
        assert runtime.counters.slow_consumer_disconnects == 1
        assert len(slow.texts()) < total
        await finish(sender, other)


async def test_a_fast_sender_is_shaped_not_refused() -> None:
    rate, burst, total = 100.0, 5, 25
    async with running(settings=Settings(rate=rate, burst=burst)) as (runtime, tasks):
        sender = chat(runtime, tasks)
        await join(sender, "sam")  # takes one token
        started = anyio.current_time()
        sender.put(*(post(f"m{n}") for n in range(total)))
        texts = await sender.wait_texts(total)
        elapsed = anyio.current_time() - started
        assert [m.content for m in texts] == [f"m{n}" for n in range(total)]
        assert 1 <= runtime.counters.shaped <= total + 1 - burst
        assert elapsed >= (total + 1 - burst - 1) / rate  # no faster than the rate
        sender.put(post("still open"))
        await sender.wait_texts(total + 1)
        assert not sender.done.is_set()
        await finish(sender)


# -- drain ---------------------------------------------------------------------------------


async def test_shutdown_stops_reading_flushes_and_ends_every_session_with_shutting_down() -> None:
    total = 10
    async with running() as (runtime, tasks):
        writer, reader = chat(runtime, tasks), chat(runtime, tasks)
        await join(writer, "wes")
        await join(reader, "rae")
        await writer.wait_events(2)
        reader.block()  # what is queued for it must still reach it after the drain began
        writer.put(*(post(f"m{n}") for n in range(total)))
        await writer.wait_texts(total)
        assert len(reader.texts()) < total
        decoded = writer.codec.decoded

        runtime.shutdown()
        writer.put(post("too late"))  # offered after the drain began
        assert isinstance(await writer.result(), ShuttingDown)
        assert not reader.done.is_set()  # still flushing
        reader.unblock()
        assert isinstance(await reader.result(), ShuttingDown)
        with anyio.fail_after(5):
            await runtime.wait_closed()

        assert [m.content for m in reader.texts()] == [f"m{n}" for n in range(total)]
        assert writer.codec.decoded == decoded  # "too late" was never taken
        assert "too late" not in {m.content for m in writer.texts() + reader.texts()}
        stored = await runtime.backend.read(ReadHistory(room="lobby", after_seq=0, limit=100))
        assert isinstance(stored, list)
        assert len(stored) == total
        with pytest.raises(ShuttingDown):  # and no new session is accepted
            await runtime.serve(Service.CHAT, RecordingCodec(), writer.receive, writer.send)


# -- timers --------------------------------------------------------------------------------


async def test_a_game_session_gets_states_on_schedule_full_first() -> None:
    games = MatchHub(settings=GameSettings(tick_hz=100))
    async with running(games=games) as (runtime, tasks):
        player = MemoryCall(runtime, Service.GAME).start(tasks)
        player.put(JoinMatch(session="", player="pia", match="m"))
        await player.wait_for(lambda: len(player.states()) >= 5)
        states = player.states()
        assert states[0].full
        assert all(s.match == "m" for s in states)
        ticks = [s.tick for s in states]
        assert all(a < b for a, b in itertools.pairwise(ticks)), ticks
        assert runtime.counters.ticks >= 5
        await finish(player)


# -- storage -------------------------------------------------------------------------------


async def test_no_one_receives_a_text_before_its_write_returns_and_writes_group_commit() -> None:
    backend = GatedBackend()
    early: list[tuple[str, int]] = []
    total = 10
    async with running(backend) as (runtime, tasks):
        sender, member = chat(runtime, tasks), chat(runtime, tasks)
        for call in (sender, member):

            def check(frames: list[bytes], call: MemoryCall = call) -> None:
                for event in call.codec.events(frames):
                    if not (isinstance(event, RoomMessage) and event.kind is Kind.TEXT):
                        continue
                    if (event.room, event.seq) not in backend.durable:
                        early.append((event.room, event.seq))

            call.on_send = check
        await join(sender, "sam")
        await join(member, "meg")
        calls_before = len(backend.calls)

        backend.close_gate()
        entered = backend.entered
        sender.put(post("m0"))
        with anyio.fail_after(5):
            await entered.wait()  # the first message's write is under way, and waits
        sender.put(*(post(f"m{n}") for n in range(1, total)))
        await until(lambda: runtime.statistics().pending_writes == total)
        assert runtime.counters.messages_in == 2 + total  # every message handled ...
        assert sender.texts() == member.texts() == []  # ... none delivered

        backend.open_gate()
        await sender.wait_texts(total)
        await member.wait_texts(total)
        assert early == []
        batches = backend.calls[calls_before:]
        assert [[w.message.seq for w in batch] for batch in batches] == [
            [1],
            list(range(2, total + 1)),
        ]
        assert runtime.counters.commits >= 2
        await finish(sender, member)


async def test_a_failed_write_cuts_chat_and_edit_sessions_and_the_runtime_goes_on() -> None:
    backend = GatedBackend()
    games = MatchHub(settings=GameSettings(tick_hz=100))
    async with running(backend, games=games) as (runtime, tasks):
        ann, bob = chat(runtime, tasks), chat(runtime, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        editor = MemoryCall(runtime, Service.EDIT).start(tasks)
        editor.put(OpenDocument(session="", document="doc", user="eve"))
        await editor.wait_for(lambda: any(isinstance(e, Snapshot) for e in editor.events()))
        player = MemoryCall(runtime, Service.GAME).start(tasks)
        player.put(JoinMatch(session="", player="pia", match="m"))
        await player.wait_for(lambda: len(player.states()) >= 1)

        backend.fail = OSError("disk full")
        ann.put(post("doomed"))
        for call in (ann, bob, editor):
            assert isinstance(await call.result(), StorageFailed)
        assert runtime.counters.storage_failures == 1
        assert "doomed" not in {m.content for m in ann.texts() + bob.texts()}
        assert not player.done.is_set()  # a game session holds nothing of storage
        ticks = len(player.states())
        await player.wait_for(lambda: len(player.states()) > ticks)

        # The same runtime serves new sessions, from what was stored.
        again = chat(runtime, tasks)
        await join(again, "cid")
        again.put(post("after"))
        [text] = await again.wait_texts(1)
        assert (text.seq, text.content) == (1, "after")
        writer = MemoryCall(runtime, Service.EDIT).start(tasks)
        writer.put(EditDocument(session="", document="doc", base=0, position=0, inserted="hi"))
        await writer.wait_for(lambda: len(writer.events()) >= 2)  # snapshot, then the ack
        assert runtime.counters.storage_failures == 1
        await finish(again, writer, player)


async def test_writes_queued_behind_a_failed_write_are_dropped_with_it() -> None:
    """They were handled on top of the failed ones: storing them would leave a gap (a room's
    seq 2 without seq 1: a second failure) or a document's edit without the one before it."""
    backend = GatedBackend()
    async with running(backend) as (runtime, tasks):
        ann = chat(runtime, tasks)
        await join(ann, "ann")
        editor = MemoryCall(runtime, Service.EDIT).start(tasks)
        editor.put(OpenDocument(session="", document="doc", user="eve"))
        await editor.wait_events(1)
        calls_before = len(backend.calls)

        backend.close_gate()
        entered = backend.entered
        ann.put(post("m0"))
        with anyio.fail_after(5):
            await entered.wait()  # this write will fail ...
        ann.put(*(post(f"m{n}") for n in range(1, 4)))  # ... and these queue behind it
        editor.put(EditDocument(session="", document="doc", base=0, position=0, inserted="ab"))
        await until(lambda: runtime.statistics().pending_writes == 5)
        backend.fail = OSError("disk full")
        backend.open_gate()
        for call in (ann, editor):
            assert isinstance(await call.result(), StorageFailed)
        await until(lambda: runtime.statistics().pending_writes == 0)

        assert len(backend.calls) == calls_before + 1  # only the failed call
        assert runtime.counters.storage_failures == 1
        assert await backend.read(LoadDocument(document="doc")) is None
        assert ann.texts() == []
        # What was stored is consistent: the room and the document open and go on.
        again = chat(runtime, tasks)
        await join(again, "cid")
        again.put(post("after"))
        [text] = await again.wait_texts(1)
        assert text.seq == 1
        writer = MemoryCall(runtime, Service.EDIT).start(tasks)
        writer.put(EditDocument(session="", document="doc", base=0, position=0, inserted="hi"))
        await writer.wait_events(2)
        assert runtime.documents.text("doc") == "hi"
        await finish(again, writer)


# -- auth ----------------------------------------------------------------------------------


async def test_with_auth_a_session_needs_an_identity() -> None:
    async with running(auth=Authenticator(SECRET)) as (runtime, tasks):
        call = MemoryCall(runtime, Service.CHAT)
        with pytest.raises(Unauthenticated):
            await runtime.serve(Service.CHAT, call.codec, call.receive, call.send, identity=None)
        call.close()
        assert call.reads == 0  # refused before anything is read
        assert runtime.counters.streams_opened == 0
        del tasks


async def test_a_join_outside_the_identitys_rooms_is_refused_naming_the_field() -> None:
    auth = Authenticator(SECRET)
    identity = await auth.authenticate(auth.mint("ann", rooms=["lobby"]))
    async with running(auth=auth) as (runtime, tasks):
        call = MemoryCall(runtime, Service.CHAT, identity=identity).start(tasks)
        echo = await join(call, "", as_="ann")  # the user is the token's
        assert echo.sender == "ann"
        bad = Join(session="", user="", room="secret")
        call.put(bad)
        await call.wait_for(lambda: any(isinstance(e, Refusal) for e in call.events()))
        [refusal] = [e for e in call.events() if isinstance(e, Refusal)]
        assert refusal.request is bad  # the message as received: the codec names it back
        assert isinstance(refusal.error, PermissionDenied) and refusal.error.field == "room"
        assert runtime.rooms.members("secret") == []
        call.put(post("still here"))  # the session goes on
        [text] = await call.wait_texts(1)
        assert text.content == "still here"
        assert runtime.counters.refusals == 1
        await finish(call)


async def test_a_refusal_reaches_its_sender_alone_after_what_it_sent_before() -> None:
    backend = GatedBackend()
    async with running(backend) as (runtime, tasks):
        ann, bob = chat(runtime, tasks), chat(runtime, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        backend.close_gate()  # the TEXT waits for its write: the refusal must wait behind it
        ann.put(post("first"), post("x", room="elsewhere"))
        await until(lambda: runtime.counters.refusals == 1)
        assert not [e for e in ann.events() if isinstance(e, Refusal)]
        backend.open_gate()
        await ann.wait_for(lambda: any(isinstance(e, Refusal) for e in ann.events()))
        after_join = ann.events()[1:]
        assert [type(e) for e in after_join[-2:]] == [RoomMessage, Refusal]
        [text] = await bob.wait_texts(1)
        assert text.content == "first"
        assert not [e for e in bob.events() if isinstance(e, Refusal)]
        await finish(ann, bob)


async def test_a_message_claiming_another_identity_ends_the_session() -> None:
    async with running() as (runtime, tasks):
        call = chat(runtime, tasks)
        await join(call, "ann")
        call.put(Post(session="", room="lobby", content="x", user="eve"))
        ended = await call.result()
        assert isinstance(ended, WrongIdentity) and ended.field == "user"
        assert runtime.counters.refusals == 0


async def test_refusals_a_game_session_never_reads_are_bounded_by_a_slow_consumer_cut() -> None:
    settings = Settings(high_water=4, low_water=1)
    async with running(settings=settings) as (runtime, tasks):
        call = MemoryCall(runtime, Service.GAME).start(tasks)
        call.block()  # it never reads
        for _ in range(6):
            call.put(JoinMatch(session="", player="", match="m"))  # no player: refused
        ended = await call.result()
        assert isinstance(ended, SlowConsumer)
        assert runtime.counters.refusals == 5


async def test_serving_needs_a_running_runtime() -> None:
    runtime = Runtime(MemoryBackend())  # never entered: it has no tasks to write or tick with

    async def nothing() -> None:
        return None

    async def send(frames: list[bytes]) -> None:
        raise AssertionError("nothing is sent")

    with pytest.raises(RuntimeError, match="async with Runtime"):
        await runtime.serve(Service.CHAT, RecordingCodec(), nothing, send)
    assert runtime.counters.streams_opened == 0


async def test_editing_rounds_are_written_by_the_flusher_one_write_per_editor() -> None:
    """With a transport that can write at once (``send_now``), an editing session's
    deliveries need no writer task: the flusher settles (the edits read meanwhile join the
    round) and writes each editor's queue in one write."""
    backend = GatedBackend()
    async with running(backend) as (runtime, tasks):
        calls = [MemoryCall(runtime, Service.EDIT, at_once=True).start(tasks) for _ in range(3)]
        watcher, ann, bob = calls
        for call, user in zip(calls, ("wes", "ann", "bob"), strict=True):
            call.put(OpenDocument(session="", document="d", user=user))
            await call.wait_events(1)
        before = watcher.writes
        backend.close_gate()
        entered = backend.entered
        ann.put(
            EditDocument(session="", document="d", base=0, position=0, inserted="a", op_id="a1")
        )
        await entered.wait()  # ann's edit is being written
        backend.open_gate()
        bob.put(
            EditDocument(session="", document="d", base=0, position=0, inserted="b", op_id="b1")
        )
        events = await watcher.wait_events(3)
        assert [type(e).__name__ for e in events] == ["Snapshot", "Remote", "Remote"]
        assert watcher.writes == before + 1
        await ann.wait_events(3)  # its snapshot, its ack, bob's edit
        await bob.wait_events(3)
        assert all(call.written_at_once == call.writes for call in calls)
        assert runtime.statistics().writers == 0  # no session needed a task of its own
        await finish(*calls)


async def test_idle_chat_sessions_hold_no_writer_task() -> None:
    """A chat session whose transport can write at once is written by the flusher: presence
    and TEXTs reach everyone with no writer task started, so an idle stream costs its
    transport's reader and nothing more (``bench/chat_idle.py``: ~2 KiB of task and frames
    each, kept until the idle sweep, before)."""
    async with running(MemoryBackend()) as (runtime, tasks):
        calls = [MemoryCall(runtime, Service.CHAT, at_once=True).start(tasks) for _ in range(3)]
        for call, user in zip(calls, ("ann", "bob", "cy"), strict=True):
            await join(call, user)
        calls[0].put(post("hi", id="m1"))
        for call in calls:
            await call.wait_for(
                lambda call=call: any(
                    isinstance(e, RoomMessage) and e.kind is Kind.TEXT for e in call.events()
                )
            )
        assert all(call.writes and call.written_at_once == call.writes for call in calls)
        assert runtime.statistics().writers == 0
        await finish(*calls)


async def test_a_chat_session_over_high_water_reads_the_log_with_a_writer() -> None:
    """A flushed chat session that goes over high water switches to the log: reading it is
    its writer's work (the flusher writes only what is queued), so it gets one at once and
    misses nothing, in order; caught up, the writer ends again."""
    settings = Settings(high_water=4, low_water=1, rate=0)
    async with running(MemoryBackend(), settings=settings) as (runtime, tasks):
        ann, bob = (MemoryCall(runtime, Service.CHAT, at_once=True).start(tasks) for _ in "ab")
        await join(ann, "ann")
        await join(bob, "bob")
        bob.block()
        for n in range(20):
            ann.put(post(f"m{n}", id=f"m{n}"))
        await until(lambda: runtime.counters.switches_to_log >= 1)
        bob.unblock()

        def texts() -> list[str]:
            return [
                e.content
                for e in bob.events()
                if isinstance(e, RoomMessage) and e.kind is Kind.TEXT
            ]

        await bob.wait_for(lambda: len(texts()) >= 20)
        assert texts() == [f"m{n}" for n in range(20)]
        await until(lambda: runtime.statistics().writers == 0)
        await finish(ann, bob)


async def test_what_cannot_be_written_at_once_goes_through_the_writer_in_order() -> None:
    """A peer that stops reading: the flusher's write is refused, the frames it took are the
    writer's, sent first, then the rest in order once the peer reads again; caught up, the
    writer ends and the flusher writes again."""
    async with running(MemoryBackend()) as (runtime, tasks):
        watcher, ann = (MemoryCall(runtime, Service.EDIT, at_once=True).start(tasks) for _ in "ab")
        for call, user in ((watcher, "wes"), (ann, "ann")):
            call.put(OpenDocument(session="", document="d", user=user))
            await call.wait_events(1)
        watcher.block()
        for n in range(5):
            ann.put(
                EditDocument(
                    session="", document="d", base=n, position=n, inserted="x", op_id=f"a{n}"
                )
            )
            await ann.wait_events(2 + n)  # acked before the next (one in flight)
        assert watcher.refused_at_once == 1
        assert runtime.statistics().writers == 1  # waits in send for the blocked peer
        assert len(watcher.frames) == 1  # its snapshot only
        watcher.unblock()
        events = await watcher.wait_events(6)
        assert [e.revision for e in events[1:]] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
        await until(lambda: runtime.statistics().writers == 0)
        at_once = watcher.written_at_once
        ann.put(
            EditDocument(session="", document="d", base=5, position=0, inserted="y", op_id="a5")
        )
        events = await watcher.wait_events(7)
        assert events[6].revision == 6  # type: ignore[attr-defined]
        assert watcher.written_at_once == at_once + 1
        await finish(watcher, ann)


async def test_an_editors_deliveries_of_consecutive_commits_leave_in_one_write() -> None:
    """Editors wait for each ack, so a document's edits come in small rounds; an edit session's
    writer lets the commands read with its wake-up join the write (``Runtime._settle``)."""
    backend = GatedBackend()
    async with running(backend) as (runtime, tasks):
        watcher, ann, bob = (MemoryCall(runtime, Service.EDIT).start(tasks) for _ in range(3))
        for call, user in ((watcher, "wes"), (ann, "ann"), (bob, "bob")):
            call.put(OpenDocument(session="", document="d", user=user))
            await call.wait_events(1)
        before = watcher.writes
        backend.close_gate()
        entered = backend.entered
        ann.put(
            EditDocument(session="", document="d", base=0, position=0, inserted="a", op_id="a1")
        )
        await entered.wait()  # ann's edit is being written
        backend.open_gate()  # its delivery wakes the watcher's writer, and bob's edit arrives
        bob.put(
            EditDocument(session="", document="d", base=0, position=0, inserted="b", op_id="b1")
        )
        events = await watcher.wait_events(3)
        assert [type(e).__name__ for e in events] == ["Snapshot", "Remote", "Remote"]
        assert watcher.writes == before + 1
        await finish(watcher, ann, bob)
