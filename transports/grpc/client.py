"""Async clients that survive their connection: reconnect with backoff, resume, re-send.

    async with ChatClient("127.0.0.1", 50051, user="ann") as chat:
        await chat.join("lobby")
        await chat.send("lobby", "hi")
        async for message in chat:          # core RoomMessage objects, no gap, no duplicate
            ...

``ChatClient``, ``EditClient`` and ``GameClient`` share one connection loop (``_Reconnecting``);
the rules live in the core (``ClientRooms``, ``ClientDocument``, ``GameMirror``: what to resume,
re-send, drop; ``Backoff``: how long to wait). When a call fails with a transient status
(UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED) or its connection breaks, the
client waits (gRPC's connection backoff: 1 s, times 1.6, ±20 %, cap 120 s), opens a new call and
sends what re-establishes it: rejoins from the last seq or revision, and re-sends what was not
acknowledged under its id (chat) or op id (editing), or sequence (games), which the server
recognises. Any other status is fatal: iteration and later calls raise it, and the client is
CLOSED.

Nothing is dropped: sends wait while the transport is full, and when the application reads
slower than messages arrive the reader stops reading, so HTTP/2 flow control (and, past the
server's drain timeout, a slow-consumer disconnect and resume) holds the rest back.
"""

from __future__ import annotations

import enum
import itertools
import random
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio
from anyio.abc import TaskGroup
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from interplay.core.backoff import Backoff, BackoffPolicy
from interplay.core.chat_client import ClientRooms
from interplay.core.game import GameMirror
from interplay.core.ot import ClientDocument, Send, TextOp
from interplay.core.rooms import RoomMessage

from . import codec
from .generated import chat_pb2 as pb

TRANSIENT = frozenset(
    {Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.DEADLINE_EXCEEDED}
)

Event = TypeVar("Event")


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class _Reconnecting(Generic[Event]):
    """One bidi call kept alive. Subclasses say what to send on every (re)connect
    (``_hello``) and what a received message means (``_on_message``)."""

    _path: str
    _request: Any
    _reply: Any

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str | None = None,
        ssl: ssl.SSLContext | bool | None = None,
        backoff: BackoffPolicy | None = None,
        random_source: Callable[[], float] = random.random,
        inbox_size: int = 1024,
        on_state: Callable[[ConnectionState], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._metadata = {"authorization": f"Bearer {token}"} if token else None
        self._ssl = ssl
        self._backoff = Backoff(backoff or BackoffPolicy(), random_source)
        self._on_state = on_state
        self.state = ConnectionState.CONNECTING
        self.reconnect_delays: list[float] = []  # every wait before a reconnect, in order
        self.error: GRPCError | None = None  # the fatal status, once CLOSED by one
        self._stream: Stream[Any, Any] | None = None
        self._lock = anyio.Lock()  # one sender at a time; see _send
        self._generation = 0  # connections so far: tells _send whether a _hello sent its messages
        self._inbox_in, self._inbox = anyio.create_memory_object_stream[Event](inbox_size)
        self._tasks: TaskGroup | None = None
        self._changed = anyio.Event()
        self._closing = False
        self._finished = anyio.Event()

    # -- what subclasses define -------------------------------------------------------------

    def _hello(self) -> list[Any]:
        """The messages that (re)establish the call, sent first on every connection."""
        raise NotImplementedError

    def _on_message(self, message: Any) -> tuple[list[Event], list[Any]]:
        """What the application sees of a received message, and what to send in reply."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tasks is not None
        self._closing = True
        if self._stream is not None and exc is None:
            # Half-close: the server flushes what it queued for us, ends our session and the
            # call with OK; wait (a little) for that, so nothing in flight is cut off.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                async with self._lock:
                    if self._stream is not None:
                        await self._stream.end()
                await self._finished.wait()
        self._tasks.cancel_scope.cancel()
        self._set_state(ConnectionState.CLOSED)
        try:
            return await self._tasks.__aexit__(exc_type, exc, tb)
        finally:
            self._inbox.close()

    async def wait_for(self, state: ConnectionState) -> None:
        while self.state is not state:
            await self._changed.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for event in self._inbox:
            yield event
        if self.error is not None:
            raise self.error

    # -- the connection -------------------------------------------------------------------

    async def _send(self, make: Callable[[], list[Any]]) -> list[Any]:
        """Make messages from the core's state, at once (an edit applies to the text the
        caller saw, before any other message is handled), then write them unless a
        (re)connect's ``_hello`` has carried them since: what is made while disconnected, or
        before a reconnect, goes with the next ``_hello``; what is made while connected goes
        now; never both."""
        if self.error is not None:
            raise self.error
        messages = make()
        await self._write(messages, self._generation)
        return messages

    async def _write(self, messages: list[Any], generation: int) -> None:
        """Write ``messages``, made during connection ``generation``, if that connection is
        still the current one (else the next ``_hello`` carries what they carried)."""
        async with self._lock:
            if self._stream is not None and self._generation == generation:
                for message in messages:
                    await self._stream.send_message(message)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._connect_once()
                    if self._closing:
                        return
                except GRPCError as error:
                    if error.status not in TRANSIENT:
                        self.error = error
                        return
                except (StreamTerminatedError, ConnectionError, OSError):
                    pass  # the connection broke: transient
                self._set_state(ConnectionState.RECONNECTING)
                delay = self._backoff.next_delay()
                self.reconnect_delays.append(delay)
                await anyio.sleep(delay)
        finally:
            self._stream = None
            self._set_state(ConnectionState.CLOSED)
            self._inbox_in.close()
            self._finished.set()

    async def _connect_once(self) -> None:
        channel = Channel(self.host, self.port, ssl=self._ssl)
        try:
            async with channel.request(
                self._path,
                Cardinality.STREAM_STREAM,
                self._request,
                self._reply,
                metadata=self._metadata,
            ) as stream:
                await stream.send_request()
                async with self._lock:
                    self._generation += 1  # with _hello, in one step: see _send
                    for message in self._hello():
                        await stream.send_message(message)
                    self._stream = stream
                self._set_state(ConnectionState.CONNECTED)
                try:
                    await self._receive(stream)
                finally:
                    self._stream = None
        finally:
            channel.close()

    async def _receive(self, stream: Stream[Any, Any]) -> None:
        working = False
        while True:
            try:
                message = await stream.recv_message()
            except StreamTerminatedError:
                stream._maybe_raise()  # the status, when trailers came before the reset
                raise
            if message is None:
                stream._maybe_raise()
                if self._closing:
                    return  # our half-close, answered with OK
                raise StreamTerminatedError("the server ended the call")  # OK, unasked
            if not working:
                self._backoff.reset()  # a message came through: the connection works
                working = True
            events, replies = self._on_message(message)
            if replies and self._tasks is not None:
                # Without making the reader wait for the send lock. (If this connection breaks
                # first, the next one's _hello carries what they would have.)
                self._tasks.start_soon(self._write, replies, self._generation)
            for event in events:
                await self._inbox_in.send(event)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self.state:
            return
        self.state = state
        self._changed.set()
        self._changed = anyio.Event()
        if self._on_state is not None:
            self._on_state(state)


class ChatClient(_Reconnecting[RoomMessage]):
    """Chat: rooms, TEXTs re-sent until acknowledged; messages arrive as ``RoomMessage``."""

    _path = "/chat.ChatService/Chat"
    _request = _reply = pb.ChatMessage

    def __init__(self, host: str, port: int, *, user: str, **options: Any) -> None:
        super().__init__(host, port, **options)
        self.rooms = ClientRooms(user)

    async def join(self, room: str) -> None:
        await self._send(lambda: self._wire(self.rooms.join(room)))

    async def leave(self, room: str) -> None:
        await self._send(lambda: self._wire(self.rooms.leave(room)))

    async def send(self, room: str, content: str) -> str:
        """Send a TEXT; returns its id. It is re-sent until acknowledged."""
        [message] = await self._send(lambda: self._wire(self.rooms.text(room, content)))
        return str(message.id)

    async def typing(self, room: str) -> None:
        """A typing indicator: sent now if connected, never queued (it would be stale)."""
        if self.state is ConnectionState.CONNECTED:
            await self._send(lambda: self._wire(self.rooms.typing(room)))

    def members(self, room: str) -> frozenset[str]:
        return self.rooms.members(room)

    def _wire(self, requests: list[Any]) -> list[Any]:
        return [codec.chat_request(request, self.rooms.user) for request in requests]

    def _hello(self) -> list[Any]:
        return self._wire(self.rooms.connected())

    def _on_message(self, message: Any) -> tuple[list[RoomMessage], list[Any]]:
        shown, requests = self.rooms.receive(codec.room_message(message))
        return shown, self._wire(requests)


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentChange:
    """The document changed: ``kind`` is "snapshot", "edit" (someone else's), or "reset" (the
    server no longer had what we missed: the text is its snapshot and ``lost`` local edits,
    never acknowledged, are gone)."""

    kind: str
    user: str
    revision: int
    text: str
    lost: bool = False


class EditClient(_Reconnecting[DocumentChange]):
    """One document through the core's ``ClientDocument`` (ot.js client, undo and redo).

    A reconnect joins at the revision held, so the server sends only the edits missed (its
    own unacknowledged edit among them counts as its ack), then re-sends the edit still in
    flight under its op id, which the server applies at most once."""

    _path = "/chat.ChatService/CollaborativeEdit"
    _request = _reply = pb.EditOperation

    def __init__(self, host: str, port: int, *, user: str, document: str, **options: Any):
        super().__init__(host, port, **options)
        self.user, self.document = user, document
        self.doc = ClientDocument()
        self.synced = False  # a snapshot has arrived
        self._ids: list[str] = []  # op id of each in-flight op (one: the ot.js client)
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)
        self._skip: tuple[int, str] | None = None  # (revision, op id) of ours, acked by catch-up
        self._progress = anyio.Event()  # set (and replaced) whenever a message was handled

    @property
    def text(self) -> str:
        return self.doc.text

    async def insert(self, position: int, text: str) -> None:
        await self.edit(position, 0, text)

    async def delete(self, position: int, length: int) -> None:
        await self.edit(position, length, "")

    async def edit(self, position: int, deleted: int, inserted: str) -> None:
        """Replace ``deleted`` code points at ``position`` of the local text with
        ``inserted``; applied locally at once, sent when the protocol allows."""
        await self.wait_synced()

        def make() -> list[Any]:
            op = TextOp.splice(len(self.doc.text), position, deleted, inserted)
            return self._sent(self.doc.edit(op))

        await self._send(make)

    async def undo(self) -> None:
        await self._send(lambda: self._sent(self.doc.undo()))

    async def redo(self) -> None:
        await self._send(lambda: self._sent(self.doc.redo()))

    async def wait_synced(self) -> None:
        """Until the first snapshot has arrived."""
        while not self.synced:
            await self._progress.wait()

    async def wait_settled(self) -> None:
        """Until every local edit is acknowledged."""
        while not (self.synced and self.doc.outstanding is None and self.doc.buffer is None):
            await self._progress.wait()

    def _sent(self, send: Send | None) -> list[Any]:
        if send is None:
            return []
        op_id = f"{self._prefix}-{next(self._counter)}"
        self._ids.append(op_id)
        return [self._edit_message(send, op_id)]

    def _edit_message(self, send: Send, op_id: str) -> Any:
        [(position, deleted, inserted)] = send.op.splices()
        operation = "replace" if deleted and inserted else ("insert" if inserted else "delete")
        return pb.EditOperation(
            document_id=self.document,
            user_id=self.user,
            operation=operation,
            position=position,
            length=deleted,
            content=inserted,
            version=send.base,
            op_id=op_id,
        )

    def _hello(self) -> list[Any]:
        join = pb.EditOperation(
            document_id=self.document,
            user_id=self.user,
            operation="join",
            version=self.doc.revision if self.synced else 0,
        )
        resend = self.doc.resend() if self.synced else None
        return [join] + ([self._edit_message(resend, self._ids[0])] if resend else [])

    def _on_message(self, message: Any) -> tuple[list[DocumentChange], list[Any]]:
        kind, doc = message.operation, self.doc
        events: list[DocumentChange] = []
        replies: list[Any] = []
        if kind == "snapshot":
            unsent = bool(self._ids) or doc.buffer is not None
            lost = self.synced and doc.revision != message.version and unsent
            if not self.synced or doc.revision != message.version:
                self.doc = ClientDocument(message.content, revision=message.version)
                self._ids.clear()
                change = "reset" if self.synced else "snapshot"
                events.append(self._change(change, "", lost=lost))
            self.synced = True
        elif kind == "ack":
            if self._ids and message.op_id == self._ids[0]:
                replies = self._acked()
            # else: a second ack for an op the catch-up already acknowledged
        elif kind in ("insert", "delete", "replace", "noop"):
            ours = message.user_id == self.user
            if ours and self._ids and message.op_id == self._ids[0]:
                # Our in-flight op, applied before we reconnected: the catch-up is its ack.
                self._skip = (message.version, message.op_id)
                replies = self._acked()
            elif ours and self._skip == (message.version, message.op_id):
                pass  # a further piece of that op, already counted
            else:
                self._apply_remote(message)
                events.append(self._change("edit", message.user_id))
        self._progress.set()
        self._progress = anyio.Event()
        return events, replies

    def _acked(self) -> list[Any]:
        self._ids.pop(0)
        return self._sent(self.doc.ack())

    def _apply_remote(self, message: Any) -> None:
        doc = self.doc
        if message.operation == "noop":
            doc.receive(TextOp.identity(doc.server_length), revision=message.version)
            return
        deleted = 0 if message.operation == "insert" else message.length
        inserted = "" if message.operation == "delete" else message.content
        op = TextOp.splice(doc.server_length, message.position, deleted, inserted)
        doc.receive(op, revision=message.version)

    def _change(self, kind: str, user: str, *, lost: bool = False) -> DocumentChange:
        return DocumentChange(
            kind=kind, user=user, revision=self.doc.revision, text=self.doc.text, lost=lost
        )


class GameClient(_Reconnecting[GameMirror]):
    """One player in one match: actions get sequence numbers; the states received keep a
    ``GameMirror``. A reconnect joins again and re-sends the actions the server had not yet
    confirmed (a player's ``last_sequence``); the server ignores any it already applied."""

    _path = "/chat.ChatService/GameSync"
    _request = pb.GameAction
    _reply = pb.GameState

    def __init__(self, host: str, port: int, *, player: str, match: str = "", **options: Any):
        super().__init__(host, port, **options)
        self.player, self.match = player, match
        self.mirror = GameMirror()
        self._sequence = 0
        self._unconfirmed: dict[int, Any] = {}  # sequence -> action message

    async def act(self, action: str, **parameters: str) -> int:
        """Queue an action for the next tick; returns its sequence number."""

        def make() -> list[Any]:
            self._sequence += 1
            message = pb.GameAction(
                player_id=self.player,
                match_id=self.match,
                action_type=action,
                parameters=parameters,
                sequence=self._sequence,
            )
            self._unconfirmed[self._sequence] = message
            return [message]

        await self._send(make)
        return self._sequence

    def _hello(self) -> list[Any]:
        join = pb.GameAction(player_id=self.player, match_id=self.match, action_type="join")
        return [join, *self._unconfirmed.values()]

    def _on_message(self, message: Any) -> tuple[list[GameMirror], list[Any]]:
        self.mirror.apply(**codec.game_update(message))  # a join's first state is full
        me = self.mirror.players.get(self.player)
        if me is not None:
            for sequence in [s for s in self._unconfirmed if s <= me.last_sequence]:
                del self._unconfirmed[sequence]
        return [self.mirror], []
