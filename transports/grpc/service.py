"""``chat.ChatService`` over grpclib: the streams around the core's hubs.

Each call is one *session* of its hub (``RoomHub`` for Chat, ``DocumentHub`` for
CollaborativeEdit, ``MatchHub`` for GameSync) and runs under one anyio task group:

* the handler itself reads: message -> core command -> events, each encoded once and pushed as
  bytes into every recipient's outbox;
* a writer drains this stream's outbox into the stream (the only task that sends on it, as
  grpclib requires), everything queued at once in one HTTP/2 write (``framing.py``);
* Chat and CollaborativeEdit: a watchdog ends the call with RESOURCE_EXHAUSTED when the outbox
  stays above its high-water mark longer than the drain timeout (a slow consumer; it
  reconnects and resumes by seq or revision);
* GameSync: a tick driver; one of them at a time runs every match's ticks on schedule.

Shutdown (``shutdown()``, then ``wait_closed()``): the health check turns NOT_SERVING, new calls
get UNAVAILABLE, every call stops reading, ends its session, flushes what is queued for it and
ends with UNAVAILABLE "server shutting down" so its client reconnects elsewhere; grpclib's own
``Server.close()`` would cancel every handler at once and flush nothing.

Backpressure: when a receiver's outbox rises above high water, every room or document it is in
stops reading from its senders (the readers wait, grpclib stops acknowledging their DATA, and
HTTP/2 flow control slows the sending clients) until the outbox falls to low water. Nothing is
dropped, TYPING included: a receiver over high water blocks every sender that shares a room
with it, so there is nothing to coalesce. Game states are the exception by design: a GameSync
outbox keeps only the newest state (``core/latest.py``) and never blocks anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.check import ServiceStatus
from grpclib.server import Stream
from h2.exceptions import StreamClosedError

from interplay.core.buffer import BackpressureBuffer, Signal
from interplay.core.documents import CloseSession, DocumentHub
from interplay.core.errors import CoreError
from interplay.core.game import TickState
from interplay.core.histogram import Histogram
from interplay.core.latest import LatestState
from interplay.core.matches import EndSession, JoinMatch, MatchHub
from interplay.core.rooms import Disconnect, RoomHub

from . import codec, errors
from .auth import Authenticator, Identity
from .framing import end_without_reset, recv_message, send_many
from .generated import chat_pb2 as pb


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettings:
    """Per-stream flow settings. The marks count messages queued for one receiving stream."""

    high_water: int = 512
    low_water: int = 128
    drain_timeout: float = 5.0
    # Checked on the length prefix, before the body is read (framing.recv_message). Above the
    # largest valid message: 64 Ki inserted code points are up to 256 KiB of UTF-8.
    max_message_bytes: int = 1024 * 1024


@dataclass(slots=True)
class ChatCounters:
    """Monotonic counters; the metrics exporter reads them."""

    streams_opened: int = 0
    streams_open: int = 0
    # by RPC: "chat", "edit", "game"
    streams_open_by_rpc: dict[str, int] = field(
        default_factory=lambda: {"chat": 0, "edit": 0, "game": 0}
    )
    messages_in: int = 0
    deliveries: int = 0
    writes: int = 0  # HTTP/2 writes by the stream writers: deliveries / writes = batching
    pauses: int = 0
    resumes: int = 0
    slow_consumer_disconnects: int = 0
    ticks: int = 0
    states_superseded: int = 0  # game states a slow player never got: by design, counted
    errors: dict[str, int] = field(default_factory=dict)


SHUTTING_DOWN = "server shutting down: reconnect and resume"

# Messages one write may carry: what queued while the writer was busy goes out together.
BATCH = 64


class Outbox:
    """What is queued for one stream, and a way for its writer to wait for more."""

    __slots__ = ("_on_resume", "_paused", "_ready", "_resumed", "buffer", "closed")

    def __init__(self, high: int, low: int, on_resume: Callable[[], None]) -> None:
        self.buffer: BackpressureBuffer[bytes] = BackpressureBuffer(high=high, low=low)
        self.closed = False
        self._on_resume = on_resume
        self._ready = anyio.Event()
        self._paused = anyio.Event()
        self._resumed = anyio.Event()

    def push(self, data: bytes) -> Signal | None:
        signal = self.buffer.push(data)
        self._ready.set()
        if signal is Signal.PAUSE:
            self._resumed = anyio.Event()
            self._paused.set()
        return signal

    async def next(self) -> list[bytes] | None:
        """What to write next, oldest first (up to ``BATCH`` messages); None once closed and
        flushed."""
        if not self.buffer and not self.closed:
            self._ready = anyio.Event()
            await self._ready.wait()
        if not self.buffer:
            return None
        data, signal = self.buffer.pop_many(BATCH)
        if signal is Signal.RESUME:
            self._paused = anyio.Event()
            self._resumed.set()
            self._on_resume()
        return data

    def close(self) -> None:
        """No more pushes; the writer returns once the queue is empty."""
        self.closed = True
        self._ready.set()

    async def wait_paused(self) -> None:
        await self._paused.wait()

    async def wait_resumed(self) -> None:
        await self._resumed.wait()


class EncodedTick:
    """One tick's state, encoded at most once per form (delta, full) for all its receivers."""

    __slots__ = ("_delta", "_encoder", "_full", "state", "timestamp")

    def __init__(
        self,
        encoder: codec.GameStateEncoder,
        state: TickState,
        timestamp: int,
        *,
        eager_full: bool,
    ) -> None:
        self._encoder = encoder
        self.state = state
        self.timestamp = timestamp
        self._full: bytes | None = None
        self._delta: bytes | None = None
        # Encode now what receivers will surely want, so the cost is the tick's, not a writer's.
        if eager_full or state.periodic_full:
            self.full()
        else:
            self.delta()

    def full(self) -> bytes:
        if self._full is None:
            self._full = self._encoder.encode(self.state, full=True, timestamp=self.timestamp)
        return self._full

    def delta(self) -> bytes:
        if self.state.periodic_full:
            return self.full()
        if self._delta is None:
            self._delta = self._encoder.encode(self.state, full=False, timestamp=self.timestamp)
        return self._delta


class StateOutbox:
    """The newest game state waiting for one GameSync stream: ``LatestState`` plus a wake-up
    for its writer. A slow player holds one state, never a queue, and blocks nobody."""

    __slots__ = ("_ready", "closed", "slot")

    def __init__(self) -> None:
        self.slot: LatestState[EncodedTick] = LatestState()
        self.closed = False
        self._ready = anyio.Event()

    def offer(self, tick: EncodedTick) -> bool:
        """True when it superseded a state this stream never got."""
        superseded = self.slot.offer(tick)
        self._ready.set()
        return superseded

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self) -> list[bytes] | None:
        """The state to write now (full if the stream missed one); None once closed."""
        while not self.slot:
            if self.closed:
                return None
            self._ready = anyio.Event()
            await self._ready.wait()
        tick, full = self.slot.take()
        return [tick.full() if full else tick.delta()]


Deliveries = list[tuple[tuple[str, ...], bytes]]  # (recipient sessions, encoded message)


class ChatService:
    """Serves ``chat.ChatService``; ``__mapping__`` is grpclib's IServable protocol.

    Chat and CollaborativeEdit calls share the per-stream machinery (outbox, writer, drain
    watchdog, flow control); only what a message means differs.
    """

    def __init__(
        self,
        hub: RoomHub,
        documents: DocumentHub,
        games: MatchHub | None = None,
        *,
        settings: ChatSettings | None = None,
        auth: Authenticator | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.documents = documents
        self.games = games if games is not None else MatchHub()
        # Seconds, newest last: the driver's work per wake-up (advance, encode, hand out) and
        # how late it woke after the deadline. For metrics and bench/game_tick.py.
        self.tick_durations: deque[float] = deque(maxlen=100_000)
        self.tick_lags: deque[float] = deque(maxlen=100_000)
        # The same, cumulative since start, for the Prometheus exporter (metrics.py).
        self.tick_duration = Histogram()
        self.tick_lag = Histogram()
        self._state_outboxes: dict[str, StateOutbox] = {}
        self._encoders: dict[str, codec.GameStateEncoder] = {}
        self._driver = anyio.Lock()
        self._tick_wakeup = anyio.Event()
        self.settings = settings or ChatSettings()
        self.auth = auth  # None: identity is whatever the first message claims (DESIGN §4)
        self.counters = ChatCounters()
        self._clock = clock
        self._ids = itertools.count(1)
        self._outboxes: dict[str, Outbox] = {}
        self._blocking: dict[str, set[str]] = {}  # room or document -> paused receivers in it
        self._blocked_channels: dict[str, frozenset[str]] = {}  # paused receiver -> channels
        self._unblocked = anyio.Event()
        # The health check of chat.ChatService (server.py serves it): NOT_SERVING once draining.
        self.serving = ServiceStatus()
        self.serving.set(True)
        self.shutting_down = False
        self._readers: dict[str, anyio.CancelScope] = {}
        self._idle = anyio.Event()

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/chat.ChatService/Chat": Handler(
                self._chat, Cardinality.STREAM_STREAM, pb.ChatMessage, pb.ChatMessage
            ),
            "/chat.ChatService/CollaborativeEdit": Handler(
                self._edit, Cardinality.STREAM_STREAM, pb.EditOperation, pb.EditOperation
            ),
            "/chat.ChatService/GameSync": Handler(
                self._game, Cardinality.STREAM_STREAM, pb.GameAction, pb.GameState
            ),
        }

    # -- what messages mean ----------------------------------------------------------------

    async def _chat(self, stream: Stream[Any, Any]) -> None:
        await self._serve_queued(
            stream, "chat", self._chat_message, self._chat_end, codec.CHAT_FIELDS
        )

    def _chat_message(self, message: Any, session: str) -> Deliveries:
        events = self.hub.handle(codec.chat_command(message, session), now=self._clock())
        return [(event.to, codec.encode_chat(event.message)) for event in events]

    def _chat_end(self, session: str) -> Deliveries:
        events = self.hub.handle(Disconnect(session=session), now=self._clock())
        return [(event.to, codec.encode_chat(event.message)) for event in events]

    async def _edit(self, stream: Stream[Any, Any]) -> None:
        await self._serve_queued(
            stream, "edit", self._edit_message, self._edit_end, codec.EDIT_FIELDS
        )

    def _edit_message(self, message: Any, session: str) -> Deliveries:
        events = self.documents.handle(codec.edit_command(message, session))
        stamp = int(self._clock() * 1000)
        return [
            (event.to, data) for event in events for data in codec.encode_edit(event.message, stamp)
        ]

    def _edit_end(self, session: str) -> Deliveries:
        self.documents.handle(CloseSession(session=session))
        return []

    async def _game(self, stream: Stream[Any, Any]) -> None:
        session = f"game-{next(self._ids)}"
        outbox = StateOutbox()
        self._state_outboxes[session] = outbox
        try:
            await self._serve(
                stream, session, self._game_message, self._game_end, {}, outbox, self._drive_ticks
            )
        finally:
            del self._state_outboxes[session]

    def _game_message(self, message: Any, session: str) -> Deliveries:
        command = codec.game_command(message, session)
        self.games.handle(command, now=anyio.current_time())
        if isinstance(command, JoinMatch):
            self._tick_wakeup.set()  # it may have started a match: its first tick is due soon
        return []

    def _game_end(self, session: str) -> Deliveries:
        self.games.handle(EndSession(session=session), now=anyio.current_time())
        return []

    # -- one call ------------------------------------------------------------------------

    async def _serve_queued(
        self,
        stream: Stream[Any, Any],
        kind: str,
        handle: Callable[[Any, str], Deliveries],
        end: Callable[[str], Deliveries],
        fields: Mapping[str, str],
    ) -> None:
        """A call whose messages are never dropped: a queue with water marks, and a watchdog."""
        session = f"{kind}-{next(self._ids)}"
        outbox = Outbox(
            self.settings.high_water, self.settings.low_water, lambda: self._resume(session)
        )
        self._outboxes[session] = outbox
        try:
            await self._serve(
                stream, session, handle, end, fields, outbox, lambda: self._watch(outbox)
            )
        finally:
            del self._outboxes[session]
            self._unpause(session)

    async def _serve(
        self,
        stream: Stream[Any, Any],
        session: str,
        handle: Callable[[Any, str], Deliveries],
        end: Callable[[str], Deliveries],
        fields: Mapping[str, str],
        outbox: Outbox | StateOutbox,
        background: Callable[[], Awaitable[None]],
    ) -> None:
        """Read (this task), write and ``background`` under one task group; on half-close,
        end the session, flush what is queued and finish with OK."""
        if self.shutting_down:
            self._count_error(Status.UNAVAILABLE)
            raise GRPCError(Status.UNAVAILABLE, SHUTTING_DOWN)
        rpc = session.partition("-")[0]
        identity = None
        if self.auth is not None:
            try:
                identity = self.auth.authenticate(stream.metadata or {})
            except GRPCError as error:
                self._count_error(error.status)
                raise
        by_rpc = self.counters.streams_open_by_rpc
        self.counters.streams_opened += 1
        self.counters.streams_open += 1
        by_rpc[rpc] += 1
        try:
            async with anyio.create_task_group() as tasks:
                writer_done = anyio.Event()
                tasks.start_soon(self._write, stream, outbox, writer_done)
                tasks.start_soon(background)
                drained = False
                with anyio.CancelScope() as reading:  # shutdown() cancels it
                    self._readers[session] = reading
                    try:
                        drained = await self._read(stream, session, rpc, handle, fields, identity)
                    finally:
                        del self._readers[session]
                self._deliver(end(session))
                outbox.close()
                await writer_done.wait()
                tasks.cancel_scope.cancel()
            if reading.cancelled_caught or drained:  # flushed; now send the client elsewhere
                self._count_error(Status.UNAVAILABLE)
                with contextlib.suppress(StreamTerminatedError):
                    await end_without_reset(stream, Status.UNAVAILABLE, SHUTTING_DOWN)
        except BaseExceptionGroup as group:
            cancelled = anyio.get_cancelled_exc_class()
            task = asyncio.current_task()  # grpclib is asyncio-only
            if group.subgroup(cancelled) is not None or (task and task.cancelling()):
                # grpclib cancelled the call (the client reset it, or a deadline), perhaps
                # while a task was raising a status: the cancellation wins, as grpclib
                # expects; no one is left to receive the status.
                raise cancelled() from None
            error = _grpc_error(group)
            if error is None:
                raise
            self._count_error(error.status)
            raise error from None
        finally:
            self.counters.streams_open -= 1
            by_rpc[rpc] -= 1
            outbox.close()
            self._deliver(end(session))
            if self.shutting_down and not self.counters.streams_open:
                self._idle.set()

    async def _read(
        self,
        stream: Stream[Any, Any],
        session: str,
        rpc: str,
        handle: Callable[[Any, str], Deliveries],
        fields: Mapping[str, str],
        identity: Identity | None,
    ) -> bool:
        """Handle messages until the client half-closes (False) or the server drains (True)."""
        counters = self.counters
        max_bytes = self.settings.max_message_bytes
        while True:
            if self._blocking:
                await self._wait_unblocked(session)
            message = await recv_message(stream, max_bytes)
            if message is None:
                return False
            if self.shutting_down:
                # Not accepted, so not acknowledged: the client re-sends it elsewhere. (shutdown()
                # cancels a reader that waits; this one had a message ready.)
                return True
            counters.messages_in += 1
            if identity is not None:
                identity.authorize(rpc, message)
            try:
                deliveries = handle(message, session)
            except CoreError as error:
                raise errors.to_grpc(error, fields) from None
            self._deliver(deliveries)

    async def _write(
        self, stream: Stream[Any, Any], outbox: Outbox | StateOutbox, done: anyio.Event
    ) -> None:
        """The only task that sends on ``stream`` (grpclib requires one)."""
        try:
            while (batch := await outbox.next()) is not None:
                self.counters.writes += 1
                await send_many(stream, batch)
        except (StreamTerminatedError, StreamClosedError):
            pass  # the peer is gone or reset the call; the handler is being cancelled
        finally:
            done.set()

    # -- shutdown ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Start draining: NOT_SERVING, refuse new calls, and make every open call stop
        reading, flush its queue and end with UNAVAILABLE."""
        self.shutting_down = True
        self.serving.set(False)
        for reading in self._readers.values():
            reading.cancel()
        if not self.counters.streams_open:
            self._idle.set()

    async def wait_closed(self) -> None:
        """Return once every call has ended (after ``shutdown()``); bound it with a timeout."""
        await self._idle.wait()

    def _resume(self, session: str) -> None:
        self.counters.resumes += 1
        self._unpause(session)

    async def _watch(self, outbox: Outbox) -> None:
        timeout = self.settings.drain_timeout
        while True:
            await outbox.wait_paused()
            with anyio.move_on_after(timeout) as scope:
                await outbox.wait_resumed()
            if scope.cancelled_caught:
                self.counters.slow_consumer_disconnects += 1
                raise GRPCError(
                    Status.RESOURCE_EXHAUSTED,
                    f"slow consumer: more than {self.settings.high_water} messages queued for "
                    f"over {timeout:g} s; reconnect and resume (JOIN with resume_after_seq, "
                    "or join the document again)",
                )

    # -- game ticks ----------------------------------------------------------------------

    async def _drive_ticks(self) -> None:
        """Run the matches' ticks on time. Every GameSync call starts one of these; one at a
        time holds the lock and drives, so ticks run while any call is open and stop with the
        last (an idle match then closes lazily, on the next join)."""
        async with self._driver:
            while True:
                wakeup = self._tick_wakeup = anyio.Event()
                deadline = self.games.next_deadline()
                if deadline is None:
                    await wakeup.wait()
                    continue
                delay = deadline - anyio.current_time()
                if delay > 0:
                    with anyio.move_on_after(delay):
                        await wakeup.wait()
                    continue  # on time, or woken by a join: look again
                self._run_ticks(deadline)

    def _run_ticks(self, deadline: float) -> None:
        started = time.perf_counter()
        now = anyio.current_time()
        ready = self.games.advance(now)
        stamp = int(self._clock() * 1000)
        counters = self.counters
        outboxes = self._state_outboxes
        for tick in ready:
            encoder = self._encoders.get(tick.match)
            if encoder is None:
                encoder = self._encoders[tick.match] = codec.GameStateEncoder(tick.match)
            encoded = EncodedTick(encoder, tick.state, stamp, eager_full=bool(tick.restart))
            for session in tick.restart:
                if session in outboxes:
                    outboxes[session].slot.restart()
            for session in tick.to:
                outbox = outboxes.get(session)
                if outbox is not None and outbox.offer(encoded):
                    counters.states_superseded += 1
            counters.ticks += 1
        if len(self._encoders) > len(self.games.matches):
            for name in [name for name in self._encoders if name not in self.games.matches]:
                del self._encoders[name]
        if ready:
            duration = time.perf_counter() - started
            self.tick_durations.append(duration)
            self.tick_lags.append(now - deadline)
            self.tick_duration.observe(duration)
            self.tick_lag.observe(now - deadline)

    # -- fan-out and flow control --------------------------------------------------------

    def _deliver(self, deliveries: Deliveries) -> None:
        outboxes = self._outboxes
        counters = self.counters
        for to, data in deliveries:
            for session in to:
                outbox = outboxes.get(session)
                if outbox is None:
                    continue  # its call is ending; its disconnect is being handled
                counters.deliveries += 1
                if outbox.push(data) is Signal.PAUSE:
                    counters.pauses += 1
                    self._pause(session)

    def _channels_of(self, session: str) -> frozenset[str]:
        """The rooms and documents whose senders wait while ``session`` is congested."""
        if session.startswith("game-"):
            return frozenset()  # a game stream's outbox never blocks anyone: it supersedes
        if session.startswith("chat-"):
            return frozenset(f"room:{room}" for room in self.hub.rooms_of(session))
        return frozenset(f"doc:{doc}" for doc in self.documents.documents_of(session))

    def _pause(self, session: str) -> None:
        channels = self._channels_of(session)
        self._blocked_channels[session] = channels
        for channel in channels:
            self._blocking.setdefault(channel, set()).add(session)

    def _unpause(self, session: str) -> None:
        channels = self._blocked_channels.pop(session, None)
        if channels is None:
            return
        for channel in channels:
            waiting = self._blocking[channel]
            waiting.discard(session)
            if not waiting:
                del self._blocking[channel]
        self._unblocked.set()
        self._unblocked = anyio.Event()

    async def _wait_unblocked(self, session: str) -> None:
        """Wait while any room or document of this session has a receiver over high water."""
        while any(channel in self._blocking for channel in self._channels_of(session)):
            await self._unblocked.wait()

    def _count_error(self, status: Status) -> None:
        self.counters.errors[status.name] = self.counters.errors.get(status.name, 0) + 1


def _grpc_error(group: BaseExceptionGroup[BaseException]) -> GRPCError | None:
    """The status a task of the call ended it with, if any (the task group wraps it)."""
    matched, _ = group.split(GRPCError)
    while matched is not None:
        first = matched.exceptions[0]
        if isinstance(first, GRPCError):
            return first
        matched = first if isinstance(first, BaseExceptionGroup) else None
    return None
