"""The node's pub/sub connection to Redis, read in bulk with hiredis.

Every node reads every message of the rooms and documents it follows, its own TEXTs' copies
included, so this is the hottest path of many nodes. redis-py's ``PubSub.get_message`` costs
about 27 µs of CPU per message (a timeout, a health check and a push-handler dispatch for each,
with hiredis under it); reading what the socket holds and letting hiredis parse all of it at
once costs about 1 µs (measured with one process flooding a channel the other reads). So this
connection speaks the few commands pub/sub needs (AUTH, SUBSCRIBE, UNSUBSCRIBE, PING) itself
and hands the engine every reply parsed from one read.

It holds no state beyond the socket: which channels to subscribe after a reconnect is the
engine's to say. A connection that stays silent gets a PING after ``idle`` seconds; one that
stays silent ``idle`` seconds more is treated as lost (``ConnectionError``), as redis-py's
health check would.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

import anyio
import hiredis
from anyio.abc import ByteStream
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

READ_SIZE = 1 << 16


class PubSubConnection:
    """One pub/sub connection to the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``)."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0, idle: float = 5.0) -> None:
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
        self._idle = idle
        self._stream: ByteStream | None = None
        self._reader = hiredis.Reader()
        self._sending = anyio.Lock()
        self._pinged = False

    @property
    def connected(self) -> bool:
        return self._stream is not None

    async def connect(self) -> None:
        """Open the connection (and authenticate); ``OSError`` if Redis cannot be reached."""
        await self.close()
        with anyio.fail_after(self._connect_timeout):
            if self._unix:
                assert self._path is not None
                stream: ByteStream = await anyio.connect_unix(self._path)
            else:
                context = ssl.create_default_context() if self._tls else None
                stream = await anyio.connect_tcp(
                    self._host, self._port, tls=self._tls, ssl_context=context
                )
        self._stream = stream
        self._reader = hiredis.Reader()
        self._pinged = False
        if self._password is not None:
            auth = [self._username, self._password] if self._username else [self._password]
            await self._send("AUTH", *auth)
            with anyio.fail_after(self._connect_timeout):
                [reply] = await self._replies(1)
            if isinstance(reply, Exception):
                await self.close()
                raise ConnectionError(f"redis refused AUTH: {reply}")

    async def subscribe(self, channels: Sequence[str]) -> None:
        """Ask for ``channels`` (each confirmed later by a ``subscribe`` reply)."""
        if channels:
            await self._send("SUBSCRIBE", *channels)

    async def unsubscribe(self, channels: Sequence[str]) -> None:
        if channels:
            await self._send("UNSUBSCRIBE", *channels)

    async def read(self) -> list[Any]:
        """Wait for data; every reply it completes, parsed (``[b"message", channel, data]``,
        ``[b"subscribe", channel, count]``, ...). ``ConnectionError`` when the connection
        is gone or silent too long."""
        stream = self._stream
        if stream is None:
            raise ConnectionError("not connected")
        while True:
            with anyio.move_on_after(self._idle):
                try:
                    data = await stream.receive(READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await self.close()
                    raise ConnectionError("redis closed the pub/sub connection") from None
                self._pinged = False
                self._reader.feed(data)
                replies = []
                while (reply := self._reader.gets()) is not False:
                    replies.append(reply)
                if replies:
                    return replies
                continue
            if self._pinged:
                await self.close()
                raise ConnectionError(f"redis was silent for {2 * self._idle:g} s")
            self._pinged = True
            await self._send("PING")

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _replies(self, count: int) -> list[Any]:
        replies: list[Any] = []
        while len(replies) < count:
            replies += await self.read()
        return replies

    async def _send(self, *command: str) -> None:
        stream = self._stream
        if stream is None:
            raise ConnectionError("not connected")
        packed = hiredis.pack_command(command)
        try:
            async with self._sending:
                await stream.send(packed)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as error:
            await self.close()
            raise ConnectionError(f"cannot write to redis ({error})") from None
