"""The transport-neutral server: sessions, fan-out, flow control, storage, timers, drain.

A transport adapter accepts a call, authenticates it (``authenticate``), and hands the runtime
two coroutines: ``receive()`` (the next wire message, None at the client's end) and
``send(frames)`` (one write of encoded frames). ``serve`` runs the session:

* the adapter's task reads: message -> the codec's core command -> the hub -> events, each
  event a ``Broadcast`` pushed into every recipient's outbox, after the writes it depends on
  are durable (group commit: every write queued while the backend works goes in its next
  call, and deliveries keep the order in which commands were handled);
* what a delivery queues is written by the runtime's flusher (one task for every session, a
  round of writes per turn of the loop) when the transport can write it at once
  (``send_now``); else by the session's writer (the runtime's task, started when needed and
  ended once caught up, or by an idle sweep), many frames per write. An idle session holds
  no task of its own;
* on the client's end: the session ends in its hub, its outbox is flushed, ``serve`` returns;
  on a drain: the same, then ``ShuttingDown``; a cut session raises ``SlowConsumer`` or
  ``StorageFailed``; a message claiming another identity than the stream's ``WrongIdentity``:
  the adapter maps each with one table.

A message that breaks a rule of its own (``CoreError``, ``runtime/refusals.py``) is refused, not
the stream: its sender alone gets a ``Refusal`` event, in order after what it sent before, which
its codec encodes (a chat SYSTEM message with a rejection, an edit ``reject``, a game state
with a ``rejected`` event); nothing changed, nothing was stored, the session reads on.

Backpressure (DESIGN §5): a chat or editing receiver over high water or a byte budget (its
own, its connection's) reads from the log (a room's, a document's kept history) instead of
making its rooms or documents wait (``runtime/lagging.py``). Only the server's budget for
every queue together makes readers wait. A session that
holds queued messages and completes no write for the drain timeout is cut. Rate limits shape:
a sender faster than its rate waits. Game states are never queued: a GameSync outbox keeps
only the newest state.

Timers live in one task: slow-consumer deadlines, the matches' ticks, the idle-writer sweep and
retention: with a TTL (``RoomHub(ttl=...)``), every ``Settings.retention_every`` seconds it
starts one bounded step of the core's sweep (``RoomHub.sweep``/``expire``: a few rooms read,
what has expired trimmed), one at a time, off the sessions' paths; steps, messages expired and
rooms forgotten are counted.

``admin`` (``runtime/admin.py``) is what a server's own backend may do (publish, presence,
history, disconnect, delete history, snapshots, matches), for every transport alike.

(DESIGN §8 sketches ``open``/``submit``/``outbound``/``finish``; ``serve`` is that loop written
once, so a transport hands over its two wire coroutines instead of writing it again.)
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from interplay.core.documents import CloseSession, DocumentHub, EditDocument
from interplay.core.effects import AppendMessage, FindMessage, LoadDocument, Read, SaveEdit, Write
from interplay.core.errors import CoreError
from interplay.core.game import TickState
from interplay.core.histogram import Histogram
from interplay.core.log_cursor import LogCursor, RevisionCursor
from interplay.core.matches import Act, EndSession, JoinMatch, MatchHub
from interplay.core.rate import TokenBucket
from interplay.core.rooms import Command as ChatCommand
from interplay.core.rooms import (
    DeleteHistory,
    Disconnect,
    Publish,
    Replay,
    RoomHub,
    RoomMessage,
)

from .admin import Admin
from .auth import AdminAuthenticator, Authenticator, Identity
from .backend import Backend, ReadResult
from .errors import (
    PeerGone,
    SessionError,
    ShuttingDown,
    SlowConsumer,
    StorageFailed,
    Unauthenticated,
)
from .lagging import REVISIONED, LogReaders
from .node import Node
from .outbox import Broadcast, Codec, EncodedTick, Outbox, StateOutbox, Tally
from .refusals import Refusal, refuses_the_message
from .settings import Settings

log = logging.getLogger("interplay.runtime")

Deliveries = list[tuple[tuple[str, ...], Broadcast]]


class Service(enum.Enum):
    """What a session is: one of the three RPCs."""

    CHAT = "chat"
    EDIT = "edit"
    GAME = "game"


@dataclass(slots=True)
class Counters:
    """Monotonic counters (and two gauges), live; ``statistics()`` returns a frozen copy."""

    streams_opened: int = 0
    streams_open: int = 0
    streams_open_by_rpc: dict[str, int] = field(
        default_factory=lambda: {service.value: 0 for service in Service}
    )
    messages_in: int = 0
    deliveries: int = 0
    writes: int = 0  # transport writes by the session writers: deliveries / writes = batching
    slow_consumer_disconnects: int = 0
    switches_to_log: int = 0  # a session left live delivery to read from the log
    back_to_live: int = 0  # ... and came back, caught up
    log_reads: int = 0  # pages read from the store for sessions (history and laggards)
    log_messages: int = 0  # messages they were given from the log (store or memory)
    log_from_memory: int = 0  # ... of those, messages still in memory (no store read)
    typing_dropped: int = 0  # TYPING a session reading from the log missed (not in the log)
    carets_dropped: int = 0  # caret moves an editor reading from the history missed
    behind_retention: int = 0  # sessions cut: the log no longer held what they were to read
    budget_waits: int = 0  # times readers stopped reading: the server's byte budget was full
    shaped: int = 0  # messages that waited for their stream's rate
    refusals: int = 0  # messages refused by a rule of their own (the stream went on)
    commits: int = 0  # backend write calls: storage writes / commits = group commit
    storage_writes: int = 0
    storage_failures: int = 0
    ticks: int = 0
    states_superseded: int = 0  # game states a slow player never got: by design, counted
    retention_steps: int = 0  # bounded steps of the retention sweep (history_ttl)
    messages_expired: int = 0  # messages trimmed for being older than history_ttl
    rooms_forgotten: int = 0  # rooms with no member and no message left, forgotten
    admin_calls: int = 0  # admin API calls served (authorized)
    errors: dict[str, int] = field(default_factory=dict)  # by the transport's status name


@dataclass(frozen=True, slots=True, kw_only=True)
class Statistics:
    counters: Counters
    sessions: int
    writers: int  # sessions whose writer task runs (the others are idle: no task)
    pending_writes: int
    lagging_sessions: int  # chat and editing sessions reading from the log
    queued_bytes: int  # in every outbox (estimated: runtime/outbox.py)
    peak_queued_bytes: int


class Session:
    """One call of one client: its outbox, rate and identity."""

    __slots__ = (
        "active",
        "bucket",
        "carry",
        "codec",
        "connection",
        "deferred",
        "failure",
        "flushed",
        "gone",
        "id",
        "identity",
        "lag",
        "leaving",
        "outbox",
        "page",
        "queued",
        "reading",
        "revisions",
        "send",
        "send_now",
        "sending",
        "sent",
        "service",
        "until",
        "writer",
        "writing",
    )

    def __init__(
        self,
        id: str,
        service: Service,
        codec: Codec,
        identity: Identity | None,
        outbox: Outbox | StateOutbox,
        bucket: TokenBucket | None,
        send: Callable[[list[bytes]], Awaitable[None]],
        send_now: Callable[[list[bytes]], bool] | None = None,
    ) -> None:
        self.id = id
        self.service = service
        self.codec = codec
        self.identity = identity
        self.outbox = outbox
        self.bucket = bucket
        self.send = send
        # A write that need not wait (False: it would have to, and nothing was sent), which
        # lets the runtime's flusher write for the session instead of waking its writer.
        self.send_now = send_now
        self.queued = False  # in the flusher's list for its next round
        self.carry: list[bytes] | None = None  # frames the flusher took but could not write
        self.sent = 0  # writes completed: a slow-consumer deadline checks it moved
        self.sending = False  # a write is in flight (its frames are held)
        # Chat rooms this session reads from the log instead of live (DESIGN §5), in the
        # order the writer reads them (round robin); ``until``: where each read stops once
        # the session is ending (the room's head then).
        self.lag: dict[str, LogCursor] = {}
        # Documents an editing session reads from their history instead, likewise.
        self.revisions: dict[str, RevisionCursor] = {}
        self.until: dict[str, int] | None = None
        # Rooms it left while reading them from the log: where that read stops (the room's
        # head at its LEAVE) and the LEAVE's echo, queued once the read is done.
        self.leaving: dict[str, tuple[int, RoomMessage]] | None = None
        self.deferred: list[Broadcast] = []  # its refusals, until it is live everywhere again
        self.page = 8  # messages of the next log read: a few, then what fits half the budget
        self.connection: Tally | None = None
        self.reading: anyio.CancelScope | None = None
        self.failure: BaseException | None = None  # why the runtime cut it
        # The writer runs only while there is something to write, or was lately: an idle
        # session holds no task of its own beside its transport's reader.
        self.writing = False
        self.writer: anyio.CancelScope | None = None
        self.active = False  # written since the last idle sweep
        self.gone = False  # the transport lost the peer: nothing more can be written
        self.flushed: anyio.Event | None = None  # set once the writer ends with the outbox


class Runtime:
    """Every session of a server, over one backend (see the module docstring).

    ``async with Runtime(...) as runtime:`` runs its timer and commit tasks.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        rooms: RoomHub | None = None,
        documents: DocumentHub | None = None,
        games: MatchHub | None = None,
        settings: Settings | None = None,
        auth: Authenticator | None = None,
        admin: AdminAuthenticator | None = None,
        clock: Callable[[], float] = time.time,
        node: Node | None = None,
    ) -> None:
        self.backend = backend
        self.node = node  # one of many nodes sharing rooms (runtime/node.py); None: alone
        self.rooms = rooms if rooms is not None else RoomHub()
        self.documents = documents if documents is not None else DocumentHub()
        self.games = games if games is not None else MatchHub()
        self.settings = settings or Settings()
        self.auth = auth  # None: identity is whatever the first message claims (DESIGN §4)
        self.admin = Admin(self, admin)  # refuses every call without an admin secret
        self.counters = Counters()
        # Seconds, newest last: the tick driver's work per wake-up and how late it woke.
        self.tick_durations: deque[float] = deque(maxlen=100_000)
        self.tick_lags: deque[float] = deque(maxlen=100_000)
        self.tick_duration = Histogram()
        self.tick_lag = Histogram()
        self.write_latency = Histogram()  # seconds per backend write call
        self.shutting_down = False
        self._clock = clock
        self._ids = itertools.count(1)
        self._sessions: dict[str, Session] = {}
        self._codecs: dict[int, Codec] = {}
        self._deadlines: list[tuple[float, int, Session, int]] = []
        self._deadline_ids = itertools.count()
        self._timer_wakeup = anyio.Event()
        # Group commit: (writes, deliveries) waiting for the backend, in handling order.
        self._pending: deque[tuple[list[Write], Deliveries]] = deque()
        self._writing: list[Write] = []  # the batch being written (``_run_commits``)
        self._pending_writes = 0
        self._flushing = False
        self._queued = 0  # commits queued so far ...
        self._durable = 0  # ... and how many of them are written
        # anyio's Event of the running backend, made directly: ``anyio.Event()`` asks sniffio
        # which loop runs (3 µs here), and the commit task and the flusher make one or two a
        # round. Set once the runtime runs (``__aenter__``).
        self._event: Callable[[], anyio.Event] = anyio.Event
        self._flush_wakeup = anyio.Event()
        self._flushed = anyio.Event()
        self._idle = anyio.Event()
        # Sessions with something to write that the flusher writes for (``_run_flushes``).
        self._dirty: list[Session] = []
        self._dirty_edits = False  # an editing session among them: the round settles
        self._flush_wanted = anyio.Event()
        self._tasks: TaskGroup | None = None
        self._stops: list[anyio.CancelScope] = []
        self._expiring = False  # a retention step runs
        self._log = LogReaders(self)  # chat sessions that read from the log
        self._total = Tally()  # every outbox's bytes
        self._peak_bytes = 0
        self._budget = self.settings.server_bytes()
        self._connections: dict[object, Tally] = {}
        self._over_budget = False  # readers wait for ``_below_budget``
        self._below_budget = anyio.Event()

    async def __aenter__(self) -> Runtime:
        self._event = type(anyio.Event())
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._background, self._run_timers)
        self._tasks.start_soon(self._background, self._run_commits)
        self._tasks.start_soon(self._background, self._run_flushes)
        if self.node is not None:
            node = self.node
            self._tasks.start_soon(self._background, lambda: node.run(self))
        return self

    async def _background(self, run: Callable[[], Awaitable[None]]) -> None:
        # Each in a scope of its own, which ``__aexit__`` cancels: cancelling the task group's
        # scope would cancel the task that entered it too, and some clients (grpclib's) leave
        # that task with a swallowed cancellation that anyio would then raise.
        with anyio.CancelScope() as scope:
            self._stops.append(scope)
            await run()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        for scope in self._stops:
            scope.cancel()
        for session in self._sessions.values():
            if session.writer is not None:
                session.writer.cancel()
        self._stops.clear()
        await self._tasks.__aexit__(exc_type, exc, tb)
        self._tasks = None

    # -- a session -----------------------------------------------------------------------

    async def authenticate(self, header: str | None) -> Identity | None:
        """The identity an ``authorization`` header grants (``Unauthenticated`` if it grants
        none); None when the server has no auth configured. Async: an identity provider's
        key set may have to be fetched (``JwksKeys``)."""
        return None if self.auth is None else await self.auth.authenticate_header(header)

    async def serve(
        self,
        service: Service,
        codec: Codec,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[list[bytes]], Awaitable[None]],
        *,
        identity: Identity | None = None,
        connection: object = None,
        send_now: Callable[[list[bytes]], bool] | None = None,
    ) -> None:
        """Run one session until the client ends it (return), or raise why it ended:
        ``WrongIdentity`` (a message claimed another identity), ``ShuttingDown`` after a
        drain flushed it, the ``SlowConsumer``/``StorageFailed`` it was cut with, or what
        ``send`` raised (a refused message does not end it: ``_refuse``). The
        caller's task reads; the session's writer is the runtime's, and runs only while there
        is something to write. ``connection``: a key the sessions of one network connection
        share (their queued bytes have a budget together); None: a connection of its own.
        ``send_now``: a write the transport can make without waiting, or not at all (False);
        given, a chat or editing session's deliveries are written by the runtime's flusher, one
        write per session per round, without a writer task (``_run_flushes``)."""
        if self._tasks is None:
            raise RuntimeError("the runtime is not running: serve inside 'async with Runtime(...)'")
        if self.shutting_down:
            raise ShuttingDown()
        if self.auth is not None and identity is None:
            raise Unauthenticated("authorization: a 'Bearer <token>' header is required")
        session = self._open(service, codec, identity, send, connection, send_now)
        try:
            with anyio.CancelScope() as reading:  # shutdown() and a cut cancel it
                session.reading = reading
                drained = await self._read(session, receive)
            session.reading = None
            if session.failure is None:
                if self.node is not None:
                    await self.node.settled(session.id)  # its TEXTs are answered
                await self._wait_durable(self._queued)  # its own messages reach it too
                self._end(session)
                # What it reads from the log is flushed too, up to the rooms' heads now.
                lagging = (*session.lag, *session.revisions)
                session.until = {key: self._log.head_of(session, key) for key in lagging}
                session.outbox.close()
                session.flushed = anyio.Event()
                self._wake_writer(session)
                if not session.writing:  # its peer is gone: there is nothing to flush into
                    session.flushed.set()
                await session.flushed.wait()  # flushed, or the session was cut meanwhile
            if session.failure is not None:
                raise session.failure
            if reading.cancelled_caught or drained:
                raise ShuttingDown()
        finally:
            self._close(session)

    def _open(
        self,
        service: Service,
        codec: Codec,
        identity: Identity | None,
        send: Callable[[list[bytes]], Awaitable[None]],
        connection: object = None,
        send_now: Callable[[list[bytes]], bool] | None = None,
    ) -> Session:
        sid = str(next(self._ids))
        outbox: Outbox | StateOutbox
        tally = None
        if service is Service.GAME:
            outbox = StateOutbox()
        else:
            settings = self.settings
            if connection is not None:
                tally = self._connections.get(connection)
                if tally is None:
                    tally = self._connections[connection] = Tally(connection)
                tally.outboxes += 1
            outbox = Outbox(
                settings.high_water,
                settings.low_water,
                tallies=(self._total,) if tally is None else (self._total, tally),
                budget=settings.session_budget,
                batch_bytes=max(settings.session_budget // 4, 1),
            )
        bucket = None
        if service is Service.CHAT and self.settings.rate:
            bucket = TokenBucket(self.settings.rate, self.settings.burst, now=self._now())
        # Chat and editing sessions are flushed: a caught-up session holds no writer task (an
        # idle stream costs no task, no coroutine frames), and a round writes many sessions in
        # one turn of the loop. A newest-state slot has its writer (``_flush``).
        flushed = send_now if service is not Service.GAME else None
        session = Session(sid, service, codec, identity, outbox, bucket, send, flushed)
        session.connection = tally
        self._sessions[sid] = session
        self._codecs.setdefault(id(codec), codec)
        counters = self.counters
        counters.streams_opened += 1
        counters.streams_open += 1
        counters.streams_open_by_rpc[service.value] += 1
        return session

    def _close(self, session: Session) -> None:
        outbox = session.outbox
        outbox.close()
        session.gone = True  # the transport's call is over: nothing more goes out
        session.carry = None
        if session.writer is not None:
            session.writer.cancel()
        self._end(session)
        session.lag.clear()
        session.revisions.clear()
        if isinstance(outbox, Outbox):
            outbox.discard()  # what a cut session never got: its bytes are free again
            tally = session.connection
            if tally is not None:
                tally.outboxes -= 1
                if not tally.outboxes:
                    del self._connections[tally.key]
            self._check_budget()
        if self._sessions.pop(session.id, None) is not None:
            counters = self.counters
            counters.streams_open -= 1
            counters.streams_open_by_rpc[session.service.value] -= 1
        if self.shutting_down and not self._sessions:
            self._idle.set()

    async def _read(self, session: Session, receive: Callable[[], Awaitable[Any]]) -> bool:
        """Handle messages until the client ends (False) or the server drains (True)."""
        counters = self.counters
        while True:
            message = await receive()
            if message is None:
                return False
            if self._over_budget:  # (one message read: its bytes were the transport's already)
                await self._wait_below_budget()
            if self.shutting_down:
                # Not accepted, so not acknowledged: the client re-sends it elsewhere.
                # (shutdown() cancels a reader that waits; this one had a message ready.)
                return True
            counters.messages_in += 1
            try:
                command = session.codec.decode(message, session.id)
                if session.identity is not None:
                    command = session.identity.authorize(command)
                await self._submit(session, command, message)
            except CoreError as error:
                if not refuses_the_message(error):
                    raise  # another identity than the stream's: the stream ends
                if self.node is not None:
                    await self.node.settled(session.id)  # after the TEXTs it sent before
                self._refuse(session, message, error)
            if self._pending_writes > self.settings.max_pending_writes:
                await self._wait_durable(self._queued)

    def _refuse(self, session: Session, message: Any, error: CoreError) -> None:
        """Tell the sender alone that ``message`` was refused, after what it sent before it;
        nothing was changed or stored, and the stream goes on."""
        outbox = session.outbox
        if isinstance(outbox, StateOutbox) and len(outbox.notices) >= self.settings.high_water:
            self.cut_slow(session)  # it neither reads nor stops sending what is refused
            return
        self.counters.refusals += 1
        refusal = Broadcast(Refusal(message, error), int(self._clock() * 1000))
        self._commit([], [((session.id,), refusal)])

    async def _submit(self, session: Session, command: Any, message: Any = None) -> None:
        """One command of ``session``: shaped, read for, handled, committed."""
        service = session.service
        if service is Service.CHAT:
            await self._shape(session)
            node, rooms = self.node, self.rooms
            if node is not None and await node.before(session.id, command, message):
                return  # a TEXT: sequenced by the shared stream, delivered as it follows it
            try:
                await self.read_for_rooms(command, session.id)
                events = rooms.handle(command, now=self._clock())
                self._commit(rooms.take_writes(), [(e.to, Broadcast(e.message, 0)) for e in events])
            finally:
                if node is not None:
                    node.after(command)
        elif service is Service.EDIT:
            documents = self.documents
            read = documents.needs(command)
            # On many nodes a document is followed before it is loaded, and edits are committed
            # to its shared log (runtime/node_documents.py).
            replicas = self.node.documents if self.node is not None else None
            watched = (
                read.document if replicas is not None and isinstance(read, LoadDocument) else None
            )
            if watched is not None:
                assert replicas is not None
                await replicas.watch(watched)
            try:
                while read is not None:
                    await self._wait_durable(self._queued)
                    documents.provide(read, await self.backend.read(read))  # type: ignore[arg-type]
                    read = documents.needs(command)
                if replicas is not None and isinstance(command, EditDocument):
                    await replicas.edit(command)
                    return
                changes = documents.handle(command)
                stamp = int(self._clock() * 1000)
                self._commit(
                    documents.take_writes(), [(e.to, Broadcast(e.message, stamp)) for e in changes]
                )
            finally:
                if replicas is not None and watched is not None:
                    replicas.loaded(watched)
        elif self.node is not None:  # the match's owner may be another node
            await self.node.matches.handle(session.id, command, message)
        else:
            games = self.games
            if isinstance(command, Act):
                while (delay := games.action_delay(session.id, self._now())) > 0:
                    self.counters.shaped += 1
                    await anyio.sleep(delay)
            games.handle(command, now=self._now())
            if isinstance(command, JoinMatch):
                self._wake_timers()  # it may have started a match: its first tick is due soon

    async def read_for_rooms(
        self, command: ChatCommand | Publish | DeleteHistory, session: str = ""
    ) -> None:
        """Read what the room hub needs before it can handle ``command`` (core/effects.py),
        each read once every write before it is durable."""
        rooms = self.rooms
        read = rooms.needs(command)
        while read is not None:
            if isinstance(read, FindMessage):
                result: ReadResult = await self._find_message(read)
            else:
                await self._wait_durable(self._queued)
                result = await self.backend.read(read)
            rooms.provide(read, result, session=session)
            read = rooms.needs(command)

    async def _find_message(self, read: FindMessage) -> RoomMessage | None:
        """A "maybe" of a room's id filter (about one TEXT in a hundred), answered without
        waiting for the group commit where it can be: a wait per maybe cut the batch short
        (a transaction, and a write to every member, each time; bench/README.md, issue 13).
        The original, if any, is among the writes not yet durable (found there) or stored
        (read now). Only if those writes also trim, reset or forget the room does the read
        wait until they are durable, as every other read does."""
        found: RoomMessage | None = None
        room, changed = read.room, False
        for writes in (self._writing, *(entry[0] for entry in self._pending)):
            for write in writes:
                if isinstance(write, AppendMessage):
                    message = write.message
                    if message.id == read.id and message.sender == read.sender:
                        found = message if message.room == room else found
                elif not isinstance(write, SaveEdit) and write.room == room:
                    changed = True
        if changed:
            await self._wait_durable(self._queued)
        elif found is not None:
            return found
        stored = await self.backend.read(read)
        assert stored is None or isinstance(stored, RoomMessage)
        return stored

    async def read_durably(self, read: Read) -> ReadResult:
        """``read`` on the backend once every write queued before it is durable."""
        await self._wait_durable(self._queued)
        return await self.backend.read(read)

    def deliver(self, deliveries: Deliveries) -> None:
        """Hand ``deliveries`` to their sessions' outboxes, after what was handled before."""
        self._commit([], deliveries)

    def refuse(self, sid: str, message: Any, error: CoreError) -> None:
        """Refuse ``message`` of session ``sid`` later than it was read (a node learns that
        a TEXT's id was taken only from the engine's answer)."""
        session = self._sessions.get(sid)
        if session is not None:
            self._refuse(session, message, error)

    def fail_session(self, sid: str, error: BaseException) -> None:
        """End session ``sid`` with ``error`` (a node's engine could not take its TEXT)."""
        session = self._sessions.get(sid)
        if session is not None:
            self._cut(session, error)

    def start_soon(self, run: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        """Run ``run(*args)`` in the runtime's tasks (ended with it)."""
        if self._tasks is not None:
            self._tasks.start_soon(run, *args)

    async def commit_durably(self, writes: list[Write], deliveries: Deliveries) -> None:
        """Queue ``writes`` (then ``deliveries``) in the group commit; return once durable."""
        self._commit(writes, deliveries)
        await self._wait_durable(self._queued)

    def wall_clock(self) -> float:
        """The server's clock (Unix seconds): what the core is told ``now`` is."""
        return self._clock()

    def disconnect_user(self, user: str, error: SessionError) -> int:
        """Cut every session acting as ``user`` with ``error``; how many."""
        cut = 0
        for session in list(self._sessions.values()):
            if self._user_of(session) == user:
                self._cut(session, error)
                cut += 1
        return cut

    def _user_of(self, session: Session) -> str | None:
        if session.identity is not None:
            return session.identity.user
        sid = session.id
        if session.service is Service.CHAT:
            return self.rooms.user_of(sid)
        if session.service is Service.EDIT:
            return self.documents.user_of(sid)
        if self.node is not None:
            return self.node.matches.player_of(sid)
        return self.games.player_of(sid)

    async def _shape(self, session: Session) -> None:
        bucket = session.bucket
        if bucket is None:
            return
        now = self._now()
        delay = bucket.delay(now)
        if delay > 0:
            self.counters.shaped += 1
            await anyio.sleep(delay)
            now = self._now()
        bucket.take(now)

    def _end(self, session: Session) -> None:
        """The session leaves its rooms, documents or match (idempotent)."""
        sid = session.id
        if session.service is Service.CHAT:
            events = self.rooms.handle(Disconnect(session=sid), now=self._clock())
            self._commit(
                self.rooms.take_writes(), [(e.to, Broadcast(e.message, 0)) for e in events]
            )
            if self.node is not None:
                self.node.after(None)  # its users left: the other nodes are told
        elif session.service is Service.EDIT:
            self.documents.handle(CloseSession(session=sid))
        elif self.node is not None:
            self.node.matches.end(sid)
        else:
            self.games.handle(EndSession(session=sid), now=self._now())

    def _wake_writer(self, session: Session) -> None:
        """Start the session's writer unless it runs (or can no longer write)."""
        if not session.writing and not session.gone and self._tasks is not None:
            session.writing = True
            self._tasks.start_soon(self._write, session)

    async def _write(self, session: Session) -> None:
        """The only task that sends on the session (transports require one). It waits for more
        while the session is busy; the idle sweep (``_sweep_idle_writers``) ends it when not.
        A session that reads from the log gets its next page here, whenever what is queued
        has drained to low water."""
        outbox, codec, send, counters = session.outbox, session.codec, session.send, self.counters
        settle = self._settle if session.service is Service.EDIT else None
        low = self.settings.low_water
        with anyio.CancelScope() as scope:
            session.writer = scope
            try:
                while True:
                    frames: list[bytes] | None = session.carry
                    if frames is not None:  # the flusher's, first: it was taken first
                        session.carry = None
                    else:
                        if (session.lag or session.revisions) and len(outbox) <= low:
                            if session.revisions:
                                self._log.read_edits(session)
                            else:
                                await self._log.read_page(session)
                            continue
                        frames = await outbox.next(codec, settle)
                        if frames is None:
                            break
                        if not frames:
                            continue  # poked: there is the log to read
                        counters.writes += 1
                    session.active = True
                    session.sending = True
                    await send(frames)
                    session.sending = False
                    session.sent += 1
                    if self._over_budget:
                        self._check_budget()
                    if session.send_now is not None and not (
                        outbox or session.lag or session.revisions
                    ):
                        break  # caught up: the flusher writes its next rounds (``_flush``)
            except PeerGone:
                session.gone = True  # the transport lost the peer; its call is being ended
            except Exception as error:
                if error is not session.failure:  # a transport's error while sending
                    self._cut(session, error)
        session.writer = None
        session.writing = False
        session.sending = False
        if session.failure is not None or session.gone or outbox.done:
            if session.flushed is not None:
                session.flushed.set()
        elif outbox or session.lag or session.revisions:  # written to while the sweep ended it
            self._wake_writer(session)

    async def _settle(self) -> None:
        """Before an edit session's writer takes its batch: let the commands already read
        join it. Editors wait for each acknowledgement, so a document's deliveries come one
        small round at a time, each a write (a system call) per editor; this yields once, so
        the readers woken with this writer run first, then waits for the commits queued by
        then (those only: a busy server cannot hold a writer back longer than one round of
        the store), and their deliveries leave in the same write. Wire-neutral: it counts
        rounds, not bytes or frames."""
        await anyio.lowlevel.checkpoint()
        if self._pending or self._flushing:
            await self._wait_durable(self._queued)

    def _want_flush(self, session: Session) -> None:
        """Have the flusher write what is queued for ``session`` in its next round."""
        if not session.queued:
            session.queued = True
            self._dirty.append(session)
            if session.service is Service.EDIT:
                self._dirty_edits = True
            if len(self._dirty) == 1:
                self._flush_wanted.set()

    async def _run_flushes(self) -> None:
        """The chat and editing sessions' writes, in rounds: once something is queued,
        yield once (the readers woken meanwhile join the round) and, if an editor is in it,
        settle (``_settle``: their commits join it too), then write each session's queue with
        ``send_now``, one write per session. One task for every session: a round costs one
        wake-up, not one per member of the room (a hundred members: a hundred writer tasks,
        each woken and waiting again, and each kept, frames and all, while the stream idles).
        Chat rounds do not wait for commits: what they write is durable already."""
        while True:
            if not self._dirty:
                self._flush_wanted = self._event()
                await self._flush_wanted.wait()
                continue
            if self._dirty_edits:
                await self._settle()
            else:
                await anyio.lowlevel.checkpoint()
            self._dirty_edits = False
            dirty, self._dirty = self._dirty, []
            for session in dirty:
                session.queued = False
                self._flush(session)

    def _flush(self, session: Session) -> None:
        """Write what is queued for ``session`` now, if its writer is not the one to: a writer
        that runs sends it itself, and one is woken for what is not a plain write (a session
        reading from the history, ending, or whose transport cannot write at once: the
        frames taken are its ``carry``, written first)."""
        outbox = session.outbox
        send_now = session.send_now
        if session.writing or session.gone or session.failure is not None:
            return
        if not (outbox or session.lag or session.revisions):
            return
        if (
            send_now is None
            or session.lag
            or session.revisions
            or outbox.closed
            or not isinstance(outbox, Outbox)
        ):
            self._wake_writer(session)
            return
        frames = outbox.take(session.codec)
        self.counters.writes += 1
        session.active = True
        try:
            sent = send_now(frames)
        except PeerGone:
            session.gone = True  # the transport lost the peer; its call is being ended
            return
        except Exception as error:  # a transport's error while sending, as in ``_write``
            self._cut(session, error)
            return
        if not sent:
            session.carry = frames
            session.sending = True  # held: a slow-consumer deadline sees it
            self._wake_writer(session)
            return
        session.sent += 1
        if outbox:  # more than one write's worth
            self._want_flush(session)
        if self._over_budget:
            self._check_budget()

    def _sweep_idle_writers(self) -> None:
        """End the writers of sessions that wrote nothing since the last sweep."""
        for session in self._sessions.values():
            if session.active:
                session.active = False
            elif session.writer is not None and not (
                session.outbox or session.lag or session.revisions
            ):
                session.writer.cancel()

    def _now(self) -> float:
        return anyio.current_time()

    # -- storage: group commit, ordered delivery -------------------------------------------

    def _commit(self, writes: list[Write], deliveries: Deliveries) -> None:
        """Deliver ``deliveries`` once ``writes`` and every write before them are durable."""
        if not writes and not deliveries:
            return  # e.g. the second end of a session, or a TYPING with no one to tell
        if not writes and not self._pending and not self._flushing:
            self._deliver(deliveries)
            return
        self._pending.append((writes, deliveries))
        self._pending_writes += len(writes)
        self._queued += 1
        self._flush_wakeup.set()

    async def _wait_durable(self, queued: int) -> None:
        """Until the first ``queued`` commits are written (reads see every write before them)."""
        while self._durable < queued:
            await self._flushed.wait()

    async def _run_commits(self) -> None:
        backend, counters = self.backend, self.counters
        while True:
            if not self._pending:
                self._flush_wakeup = self._event()
                await self._flush_wakeup.wait()
                continue
            batch, self._pending = self._pending, deque()
            writes = [write for entry in batch for write in entry[0]]
            self._flushing = True
            self._writing = writes
            started = time.perf_counter()
            try:
                if writes:
                    await backend.write(writes)
            except Exception as error:
                # What queued meanwhile was handled on top of the failed writes: storing it
                # would leave a gap in a room or a document. Nothing of it is written either.
                behind, self._pending = self._pending, deque()
                batch.extend(behind)
                writes.extend(write for entry in behind for write in entry[0])
                self._storage_failed(error)
            else:
                self.write_latency.observe(time.perf_counter() - started)
                counters.commits += 1
                counters.storage_writes += len(writes)
                for _, deliveries in batch:
                    self._deliver(deliveries)
            finally:
                self._flushing = False
                self._writing = []
                self._pending_writes -= len(writes)
                self._durable += len(batch)
                self._flushed.set()
                self._flushed = self._event()

    def _storage_failed(self, error: Exception) -> None:
        """A write failed: nothing of its batch is delivered, and since the hubs' memory is now
        ahead of the backend, every chat and edit session is cut; clients resume, and rooms
        and documents reload from what was stored once their last session has gone."""
        self.counters.storage_failures += 1
        log.error("storage: a write failed (%s); cutting every chat and edit session", error)
        failure = StorageFailed(f"storage failed ({error}); reconnect and resume")
        for session in list(self._sessions.values()):
            if session.service is not Service.GAME:
                self._cut(session, failure)

    def _cut(self, session: Session, failure: BaseException) -> None:
        """End ``session`` now with ``failure``, even while its writer is stuck in a send."""
        if session.failure is None:
            session.failure = failure
            session.outbox.fail(failure)
            if session.writer is not None:
                session.writer.cancel()
            if session.reading is not None:
                session.reading.cancel()
            if session.flushed is not None:
                session.flushed.set()

    # -- fan-out and flow control --------------------------------------------------------

    def _deliver(self, deliveries: Deliveries) -> None:
        """Queue each item for its recipients (in order, after its writes are durable): the
        one path into sessions. A chat session reading a room from the log skips that room's
        live messages; one that goes over its limits switches to the log (or, editing,
        reads its documents' history). Every edit passes here once per editor of its
        document: what is done per recipient is kept to a few attribute reads."""
        sessions, log, delivered = self._sessions, self._log, 0
        connection_budget = self.settings.connection_budget
        dirty = self._dirty
        for to, item in deliveries:
            event = item.event
            message = event if type(event) is RoomMessage else None
            if message is not None:
                log.seen(message, item)
            elif type(event) is Replay:
                for sid in to:
                    session = sessions.get(sid)
                    if session is not None:
                        log.replay(session, event)
                        self._wake_writer(session)
                continue
            elif type(event) in REVISIONED:
                log.revised(event)  # type: ignore[arg-type]  # (one of them: checked)
            for sid in to:
                session = sessions.get(sid)
                if session is None:
                    continue  # its call is ending; its disconnect is being handled
                if session.lag and (
                    log.defers(session, item)
                    if message is None
                    else message.room in session.lag and log.skips(session, message)
                ):
                    continue
                if session.revisions and log.skips_edit(session, item):
                    continue
                delivered += 1
                if session.outbox.push(item):  # over its high water mark or byte budget
                    self._overflow(session)
                else:
                    connection = session.connection
                    if connection is not None and connection.bytes > connection_budget:
                        self._shed(connection)
                if not session.writing:
                    if session.send_now is None:
                        self._wake_writer(session)
                    elif not session.queued:  # ``_want_flush``, without the call
                        session.queued = True
                        dirty.append(session)
                        if session.service is Service.EDIT:
                            self._dirty_edits = True
                        if len(dirty) == 1:
                            self._flush_wanted.set()
        self.counters.deliveries += delivered
        total = self._total.bytes
        if total > self._peak_bytes:
            self._peak_bytes = total
        if total > self._budget and not self._over_budget:
            self._shed(self._total)

    def _overflow(self, session: Session) -> None:
        """``session`` went over high water or its byte budget: it reads from the log."""
        if session.service is Service.CHAT:
            self._log.to_log(session)
        else:
            self._log.edits_to_log(session)
        self._wake_writer(session)  # it reads the log: a writer's work, not the flusher's
        self._arm_deadline(session)

    def _shed(self, tally: Tally) -> None:
        """Over a connection's or the server's budget: the fullest chat sessions of it read
        from the log, until it is within three quarters of the budget; if that is not enough
        (what is queued is not chat), every reader waits (``_wait_below_budget``)."""
        whole = tally is self._total
        budget = self._budget if whole else self.settings.connection_budget
        target = budget * 3 // 4
        sessions = [
            s
            for s in self._sessions.values()
            if isinstance(s.outbox, Outbox) and s.outbox.bytes and (whole or s.connection is tally)
        ]
        sessions.sort(key=lambda s: s.outbox.bytes, reverse=True)
        for session in sessions:
            if tally.bytes <= target:
                break
            self._overflow(session)
        if whole and tally.bytes > budget and not self._over_budget:
            self._over_budget = True
            self.counters.budget_waits += 1

    def _check_budget(self) -> None:
        """Readers go on once the server's queues are within three quarters of its budget."""
        if self._over_budget and self._total.bytes <= self._budget * 3 // 4:
            self._over_budget = False
            self._below_budget.set()
            self._below_budget = anyio.Event()

    async def _wait_below_budget(self) -> None:
        while self._over_budget:
            await self._below_budget.wait()

    def _arm_deadline(self, session: Session) -> None:
        """Cut ``session`` if it completes no write within the drain timeout while it still
        holds memory (``_run_timers``)."""
        deadline = self._now() + self.settings.drain_timeout
        heapq.heappush(self._deadlines, (deadline, next(self._deadline_ids), session, session.sent))
        self._wake_timers()

    def _due(self, session: Session, sent: int) -> None:
        """A slow-consumer deadline of ``session``, armed when it had made ``sent`` writes:
        cut it if it wrote nothing since while it holds memory (a write in flight, or
        something queued); look again later while it holds any or reads from the log."""
        if session.id not in self._sessions or session.failure is not None:
            return
        holding = session.sending or bool(session.outbox)
        if session.sent == sent and holding:
            self.cut_slow(session)
        elif holding or session.lag or session.revisions:
            self._arm_deadline(session)

    # -- timers: slow consumers and ticks, in one task -------------------------------------

    def _wake_timers(self) -> None:
        self._timer_wakeup.set()

    async def _run_timers(self) -> None:
        every = self.settings.idle_writer_sweep
        sweep = self._now() + every
        retention = self.settings.retention_every if self.rooms.ttl is not None else None
        expire = self._now() if retention is not None else None  # the first step at once
        while True:
            wakeup = self._timer_wakeup = anyio.Event()
            now = self._now()
            if now >= sweep:
                self._sweep_idle_writers()
                sweep = now + every
            if expire is not None and retention is not None and now >= expire:
                if not self._expiring and self._tasks is not None:
                    self._expiring = True
                    self._tasks.start_soon(self._expire_step)
                expire = now + retention
            deadlines = self._deadlines
            while deadlines and deadlines[0][0] <= now:
                _, _, session, sent = heapq.heappop(deadlines)
                self._due(session, sent)
            tick = self.games.next_deadline()
            if tick is not None and tick <= now:
                self._run_ticks(tick)
                continue
            nearest = min(
                d
                for d in (tick, deadlines[0][0] if deadlines else None, sweep, expire)
                if d is not None
            )
            with anyio.move_on_after(nearest - now):
                await wakeup.wait()

    async def _expire_step(self) -> None:
        """Bounded retention steps (started by the timers, one run at a time): read a few
        rooms' ages, trim what has expired, forget what is empty, count it. A step that used
        its whole message budget is followed by another after ``retention_pause`` seconds
        (a backlog drains fast, and the event loop is free between steps)."""
        rooms, counters = self.rooms, self.counters
        try:
            while (read := rooms.sweep(now=self._clock())) is not None:
                ages = await self.read_durably(read)
                assert isinstance(ages, list)
                expired = rooms.expire(read, ages)  # type: ignore[arg-type]
                self._commit(rooms.take_writes(), [])
                counters.retention_steps += 1
                counters.messages_expired += expired.messages
                counters.rooms_forgotten += expired.rooms
                if not expired.more:
                    break
                await anyio.sleep(self.settings.retention_pause)
        except Exception as error:  # the next step tries again; sessions are not affected
            log.warning("retention: a step failed (%s); retrying at the next one", error)
        finally:
            self._expiring = False

    def cut_slow(self, session: Session, why: str = "") -> None:
        """Cut ``session`` as a slow consumer (resumable), saying ``why`` (default: it held
        what was queued for it, unread, past the drain timeout)."""
        self.counters.slow_consumer_disconnects += 1
        timeout = self.settings.drain_timeout
        why = why or (
            f"nothing written for over {timeout:g} s while over {self.settings.high_water} "
            "messages or its byte budget"
        )
        self._cut(
            session,
            SlowConsumer(
                f"slow consumer: {why}; reconnect and resume (JOIN with resume_after_seq, "
                "or join the document again)"
            ),
        )

    def _run_ticks(self, deadline: float) -> None:
        started = time.perf_counter()
        now = self._now()
        matches = self.node.matches if self.node is not None else None
        if matches is not None:
            matches.before_ticks(now)  # a match whose lease lapsed stops here
        ready = self.games.advance(now)
        stamp = int(self._clock() * 1000)
        if matches is not None:
            ready = matches.ticked(ready, stamp)  # published; the states of sessions here
        for tick in ready:
            self.offer_tick(tick.match, tick.state, tick.to, tick.restart, stamp)
        self.counters.ticks += len(ready)
        if ready:
            self._forget_closed_matches()
            duration = time.perf_counter() - started
            self.tick_durations.append(duration)
            self.tick_lags.append(now - deadline)
            self.tick_duration.observe(duration)
            self.tick_lag.observe(now - deadline)

    def offer_tick(
        self,
        match: str,
        state: TickState,
        to: tuple[str, ...],
        restart: tuple[str, ...],
        stamp: int,
    ) -> None:
        """One tick's state for the sessions ``to`` (``restart``: those whose next state
        must be full), in each one's newest-state slot, encoded once per codec."""
        counters, sessions = self.counters, self._sessions
        encoded = EncodedTick(match, state, stamp)
        for sid in restart:
            session = sessions.get(sid)
            if session is not None:
                session.outbox.slot.restart()  # type: ignore[union-attr]
        for sid in to:
            session = sessions.get(sid)
            if session is not None:
                if session.outbox.offer(encoded):  # type: ignore[union-attr]
                    counters.states_superseded += 1
                if not session.writing:
                    self._wake_writer(session)
                if restart:  # encode the full state now: the tick pays, not a writer
                    encoded.frame(session.codec, full=True)

    def _forget_closed_matches(self) -> None:
        for codec in self._codecs.values():
            forget = getattr(codec, "forget_matches", None)
            if forget is not None:
                forget(self.games.matches)

    # -- drain and statistics ------------------------------------------------------------

    def shutdown(self) -> None:
        """Start draining: refuse new sessions, and make every open one stop reading, flush
        its outbox and end with ``ShuttingDown``."""
        self.shutting_down = True
        for session in self._sessions.values():
            if session.reading is not None:
                session.reading.cancel()
        if not self._sessions:
            self._idle.set()

    async def wait_closed(self) -> None:
        """Return once every session has ended (after ``shutdown()``); bound it with a timeout."""
        await self._idle.wait()

    def count_error(self, name: str) -> None:
        """A transport counts each status it ended a call with, by name."""
        self.counters.errors[name] = self.counters.errors.get(name, 0) + 1

    def statistics(self) -> Statistics:
        c = self.counters
        return Statistics(
            counters=replace(
                c, streams_open_by_rpc=dict(c.streams_open_by_rpc), errors=dict(c.errors)
            ),
            sessions=len(self._sessions),
            writers=sum(1 for session in self._sessions.values() if session.writing),
            pending_writes=self._pending_writes,
            lagging_sessions=sum(
                1 for session in self._sessions.values() if session.lag or session.revisions
            ),
            queued_bytes=self._total.bytes,
            peak_queued_bytes=self._peak_bytes,
        )
