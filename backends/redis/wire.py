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

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Sequence
from typing import Any

import anyio
import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

READ_SIZE = 1 << 16
_OPEN = 1  # TCP_ESTABLISHED (linux/tcp_states.h): a peer's FIN makes it CLOSE_WAIT


class RespConnection:
    """One connection to the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``):
    send commands, read every reply one read completes. On asyncio streams, as redis-py's
    own asyncio client is: a write is buffered by the transport and returns at once (no trip
    through the event loop per pipeline), and waits only while the transport's buffer is over
    its high water mark."""

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
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._parser = hiredis.Reader()

    @property
    def connected(self) -> bool:
        return self._streams is not None

    def stale(self) -> bool:
        """Whether an idle connection is no good any more: Redis closed it (restarted, or
        timed it out) or reset it, as the transport saw or (TCP on Linux: one getsockopt of
        TCP_INFO, the socket's state) the kernel knows. So a pipeline never goes to a Redis
        that is gone when a live one is there."""
        if self._streams is None:
            return True
        reader, writer = self._streams
        if reader.at_eof() or reader.exception() is not None or writer.is_closing():
            return True
        sock = writer.get_extra_info("socket")
        if sock is None or sock.family == socket.AF_UNIX or not hasattr(socket, "TCP_INFO"):
            return False
        try:
            return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != _OPEN)
        except OSError:
            return True

    async def connect(self) -> None:
        """Open the connection (and authenticate); ``ConnectionError`` if Redis cannot be
        reached or refuses the password."""
        await self.close()
        try:
            with anyio.fail_after(self._connect_timeout):
                if self._unix:
                    assert self._path is not None
                    streams = await asyncio.open_unix_connection(self._path, limit=READ_SIZE)
                else:
                    context = ssl.create_default_context() if self._tls else None
                    streams = await asyncio.open_connection(
                        self._host, self._port, ssl=context, limit=READ_SIZE
                    )
        except OSError as error:  # (refused, unreachable, timed out)
            raise ConnectionError(f"cannot connect to redis ({error})") from None
        self._streams = streams
        self._parser = hiredis.Reader()
        if self._password is not None:
            auth = [self._username, self._password] if self._username else [self._password]
            await self.send([("AUTH", *auth)])
            with anyio.fail_after(self._connect_timeout):
                [reply] = await self.replies(1)
            if isinstance(reply, Exception):
                await self.close()
                raise ConnectionError(f"redis refused AUTH: {reply}")

    async def send(self, commands: Sequence[Sequence[Any]]) -> None:
        """Write ``commands`` in one go (``str``, ``bytes``, ``int`` or ``float`` args)."""
        if self._streams is None:
            raise ConnectionError("not connected")
        writer = self._streams[1]
        if writer.is_closing():
            await self.close()
            raise ConnectionError("redis closed the connection")
        writer.write(b"".join(hiredis.pack_command(tuple(command)) for command in commands))
        transport = writer.transport
        if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            try:
                await writer.drain()
            except OSError as error:
                await self.close()
                raise ConnectionError(f"cannot write to redis ({error!r})") from None

    async def receive(self) -> list[Any]:
        """Wait for data; every reply it completes (none if it completes none)."""
        if self._streams is None:
            raise ConnectionError("not connected")
        try:
            data = await self._streams[0].read(READ_SIZE)
        except OSError as error:
            await self.close()
            raise ConnectionError(f"redis connection lost ({error!r})") from None
        if not data:
            await self.close()
            raise ConnectionError("redis closed the connection")
        self._parser.feed(data)
        replies = []
        while (reply := self._parser.gets()) is not False:
            replies.append(reply)
        return replies

    async def replies(self, count: int) -> list[Any]:
        replies: list[Any] = []
        while len(replies) < count:
            replies += await self.receive()
        return replies

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            writer = streams[1]
            writer.close()
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await writer.wait_closed()


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
