"""The node's hot-path connections to Redis: pub/sub, and the scripts' pipelines, parsed with
hiredis a whole read at a time.

Every node reads every message of the rooms and documents it follows (its own TEXTs' copies
too), and sequences each TEXT with a script call, so these two paths carry every message.
Through redis-py, ``PubSub.get_message`` costs about 27 µs of CPU per message (a timeout, a
health check and a push-handler dispatch for each, with hiredis under it) and a pipeline
packs and parses each call on its own; reading what the socket holds and letting hiredis
parse all of it at once costs about 1 µs a message (measured with one process flooding a
channel another reads). So these connections speak the few commands they need themselves
(AUTH, SUBSCRIBE, UNSUBSCRIBE, PING; EVALSHA, SCRIPT LOAD) and hand back every reply parsed
from one read. Everything else the engine asks goes through redis-py.

A connection holds no state beyond its socket: what to subscribe after a reconnect is the
engine's to say. Failures are ``ConnectionError`` (an ``OSError``, as redis-py's are), after
which the connection is closed.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import hiredis
from anyio.abc import ByteStream
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

READ_SIZE = 1 << 16
_TCP_ESTABLISHED = 1  # (linux/tcp_states.h; a peer's FIN makes it CLOSE_WAIT, a reset CLOSE)
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class RespConnection:
    """One connection to the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``):
    send commands, read every reply one read completes."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0) -> None:
        options = parse_url(url)
        self._host = str(options.get("host", "localhost"))
        self._port = int(options.get("port", 6379))
        self._path = str(options["path"]) if "path" in options else None
        connection_class = options.get("connection_class")
        self._unix = connection_class is UnixDomainSocketConnection or self._path is not None
        self._tls = connection_class is SSLConnection
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        self._connect_timeout = connect_timeout
        self._stream: ByteStream | None = None
        self._reader = hiredis.Reader()
        self._sending = anyio.Lock()

    @property
    def connected(self) -> bool:
        return self._stream is not None

    def stale(self) -> bool:
        """Whether an idle connection is no good any more: Redis closed it (restarted, or a
        timeout) or reset it. One ``getsockopt`` (Linux's TCP_INFO: the socket's TCP state),
        so a pipeline never goes to a Redis that is gone when a live one is there; elsewhere,
        and on a Unix socket, it is found out by the pipeline itself."""
        stream = self._stream
        if stream is None:
            return True
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if raw is None or raw.family == socket.AF_UNIX or not hasattr(socket, "TCP_INFO"):
            return False
        try:
            state = raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        except OSError:
            return True
        return bool(state != _TCP_ESTABLISHED)

    async def connect(self) -> None:
        """Open the connection (and authenticate); ``OSError`` if Redis cannot be reached."""
        await self.close()
        try:
            with anyio.fail_after(self._connect_timeout):
                stream = await self._open()
        except OSError as error:  # (refused, unreachable, timed out)
            raise ConnectionError(f"cannot connect to redis ({error})") from None
        self._stream = stream
        self._reader = hiredis.Reader()
        if self._password is not None:
            auth = [self._username, self._password] if self._username else [self._password]
            await self.send([("AUTH", *auth)])
            with anyio.fail_after(self._connect_timeout):
                [reply] = await self.replies(1)
            if isinstance(reply, Exception):
                await self.close()
                raise ConnectionError(f"redis refused AUTH: {reply}")

    async def _open(self) -> ByteStream:
        if self._unix:
            assert self._path is not None
            return await anyio.connect_unix(self._path)
        if self._tls:
            context = ssl.create_default_context()
            return await anyio.connect_tcp(self._host, self._port, ssl_context=context)
        return await anyio.connect_tcp(self._host, self._port)

    async def send(self, commands: Sequence[Sequence[Any]]) -> None:
        """Write ``commands`` in one go (``str``, ``bytes``, ``int`` or ``float`` args)."""
        stream = self._stream
        if stream is None:
            raise ConnectionError("not connected")
        packed = b"".join(hiredis.pack_command(tuple(command)) for command in commands)
        try:
            async with self._sending:
                await stream.send(packed)
        except _GONE as error:
            await self.close()
            raise ConnectionError(f"cannot write to redis ({error!r})") from None

    async def receive(self) -> list[Any]:
        """Wait for data; every reply it completes (none if it completes none)."""
        stream = self._stream
        if stream is None:
            raise ConnectionError("not connected")
        try:
            data = await stream.receive(READ_SIZE)
        except _GONE:
            await self.close()
            raise ConnectionError("redis closed the connection") from None
        self._reader.feed(data)
        replies = []
        while (reply := self._reader.gets()) is not False:
            replies.append(reply)
        return replies

    async def replies(self, count: int) -> list[Any]:
        replies: list[Any] = []
        while len(replies) < count:
            replies += await self.receive()
        return replies

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()


class PubSubConnection(RespConnection):
    """The node's subscriptions. A connection that stays silent gets a PING after ``idle``
    seconds; one silent ``idle`` seconds more is treated as lost, as redis-py's health check
    would."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0, idle: float = 5.0) -> None:
        super().__init__(url, connect_timeout=connect_timeout)
        self._idle = idle

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Ask for ``channels`` (each confirmed later by a ``subscribe`` reply)."""
        if channels:
            await self.send([("SUBSCRIBE", *channels)])

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        if channels:
            await self.send([("UNSUBSCRIBE", *channels)])

    async def read(self) -> list[Any]:
        """Every reply the next data completes (``[b"message", channel, data]``,
        ``[b"subscribe", channel, count]``, ``[b"pong", b""]``...)."""
        pinged = False
        while True:
            with anyio.move_on_after(self._idle):
                replies = await self.receive()
                if replies:
                    return replies
                pinged = False
                continue
            if pinged:
                await self.close()
                raise ConnectionError(f"redis was silent for {2 * self._idle:g} s")
            pinged = True
            await self.send([("PING",)])


class ScriptConnection(RespConnection):
    """Pipelines of commands (the scripts' EVALSHA calls): written at once, their replies
    read in order, each an answer or the error Redis gave for that command alone."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0, timeout: float = 5.0) -> None:
        super().__init__(url, connect_timeout=connect_timeout)
        self._timeout = timeout

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The replies to ``commands``, in order; ``ConnectionError`` (and the connection
        closed) if they do not all come within ``timeout`` seconds, or the call is cancelled
        halfway: replies left unread must never answer the next pipeline."""
        if self.stale():
            await self.connect()
        try:
            await self.send(commands)
            with anyio.fail_after(self._timeout):
                return await self.replies(len(commands))
        except TimeoutError:
            await self.close()
            raise ConnectionError(f"redis did not answer within {self._timeout:g} s") from None
        except BaseException:
            await self.close()
            raise
