"""An async Chat client that survives its connection: reconnect with backoff, resume, re-send.

    async with ChatClient("127.0.0.1", 50051, user="ann") as chat:
        await chat.join("lobby")
        await chat.send("lobby", "hi")
        async for message in chat:          # core RoomMessage objects, no gap, no duplicate
            ...

The rules live in the core (``ClientRooms``: what to resume, re-send, drop; ``Backoff``: how
long to wait); this module only moves them over grpclib. When the call fails with a transient
status (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED) or the connection breaks,
the client waits (gRPC's connection backoff: 1 s, times 1.6, ±20 %, cap 120 s), opens a new call,
rejoins every room from its last seq and re-sends every TEXT not yet acknowledged under its id.
Any other status is fatal: iteration and later calls raise it, and the client is CLOSED.

Nothing is dropped: ``send`` waits while the transport is full, and when the application reads
slower than messages arrive the reader stops reading, so HTTP/2 flow control (and, past the
server's drain timeout, a slow-consumer disconnect and resume) holds the rest back.
"""

from __future__ import annotations

import enum
import random
import ssl
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from interplay.core.backoff import Backoff, BackoffPolicy
from interplay.core.chat_client import ClientRooms, Request
from interplay.core.rooms import RoomMessage

from . import codec
from .generated import chat_pb2 as pb

TRANSIENT = frozenset(
    {Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.ABORTED, Status.DEADLINE_EXCEEDED}
)


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class ChatClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str,
        token: str | None = None,
        ssl: ssl.SSLContext | bool | None = None,
        backoff: BackoffPolicy | None = None,
        random_source: Callable[[], float] = random.random,
        inbox_size: int = 1024,
        on_state: Callable[[ConnectionState], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.rooms = ClientRooms(user)
        self._metadata = {"authorization": f"Bearer {token}"} if token else None
        self._ssl = ssl
        self._backoff = Backoff(backoff or BackoffPolicy(), random_source)
        self._on_state = on_state
        self.state = ConnectionState.CONNECTING
        self.reconnect_delays: list[float] = []  # every wait before a reconnect, in order
        self.error: GRPCError | None = None  # the fatal status, once CLOSED by one
        self._stream: Stream[Any, Any] | None = None
        self._lock = anyio.Lock()  # one sender at a time; see _send
        self._inbox_in: MemoryObjectSendStream[RoomMessage]
        self._inbox: MemoryObjectReceiveStream[RoomMessage]
        self._inbox_in, self._inbox = anyio.create_memory_object_stream[RoomMessage](inbox_size)
        self._tasks: TaskGroup | None = None
        self._changed = anyio.Event()
        self._closing = False
        self._finished = anyio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> ChatClient:
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
            # Half-close: the server flushes what it queued for us, leaves our rooms and ends
            # the call with OK; wait (a little) for that, so nothing in flight is cut off.
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

    # -- what the application does --------------------------------------------------------

    async def join(self, room: str) -> None:
        await self._send(lambda: self.rooms.join(room))

    async def leave(self, room: str) -> None:
        await self._send(lambda: self.rooms.leave(room))

    async def send(self, room: str, content: str) -> str:
        """Send a TEXT; returns its id. It is re-sent until acknowledged."""
        requests = await self._send(lambda: self.rooms.text(room, content))
        return requests[0].id  # type: ignore[union-attr]

    async def typing(self, room: str) -> None:
        """A typing indicator: sent now if connected, never queued (it would be stale)."""
        if self.state is ConnectionState.CONNECTED:
            await self._send(lambda: self.rooms.typing(room))

    def members(self, room: str) -> frozenset[str]:
        return self.rooms.members(room)

    def __aiter__(self) -> AsyncIterator[RoomMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[RoomMessage]:
        async for message in self._inbox:
            yield message
        if self.error is not None:
            raise self.error

    # -- the connection -------------------------------------------------------------------

    async def _send(self, make: Callable[[], list[Request]]) -> list[Request]:
        """Ask the core for requests and write them, under the lock that makes "write now or
        with the next ``connected()``" exact: a request made while disconnected is sent by the
        reconnect, one made while connected now, never both."""
        if self.error is not None:
            raise self.error
        async with self._lock:
            requests = make()
            if self._stream is not None:
                await self._write(self._stream, requests)
            return requests

    async def _write(self, stream: Stream[Any, Any], requests: list[Request]) -> None:
        user = self.rooms.user
        for request in requests:
            await stream.send_message(codec.chat_request(request, user))

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
                "/chat.ChatService/Chat",
                Cardinality.STREAM_STREAM,
                pb.ChatMessage,
                pb.ChatMessage,
                metadata=self._metadata,
            ) as stream:
                await stream.send_request()
                async with self._lock:
                    await self._write(stream, self.rooms.connected())
                    self._stream = stream
                self._set_state(ConnectionState.CONNECTED)
                try:
                    await self._receive(stream)
                finally:
                    self._stream = None
        finally:
            channel.close()

    async def _receive(self, stream: Stream[Any, Any]) -> None:
        reset = False
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
            if not reset:
                self._backoff.reset()  # a message came through: the connection works
                reset = True
            shown, requests = self.rooms.receive(codec.room_message(message))
            if requests and self._tasks is not None:
                # A gap: resync without making the reader wait for the send lock. (If this
                # connection breaks first, the next one's connected() carries the resync.)
                self._tasks.start_soon(self._send, lambda requests=requests: requests)
            for event in shown:
                await self._inbox_in.send(event)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self.state:
            return
        self.state = state
        self._changed.set()
        self._changed = anyio.Event()
        if self._on_state is not None:
            self._on_state(state)
