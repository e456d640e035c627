"""Wiring a grpclib ``Server`` around the services, and running it until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from asyncio import BaseTransport
from dataclasses import dataclass
from typing import Any

from grpclib.config import Configuration
from grpclib.health.check import ServiceCheck
from grpclib.health.service import Health
from grpclib.protocol import Connection, H2Protocol
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server
from h2.settings import SettingCodes

from interplay.runtime.server import Runtime

from . import data_frames
from .admin import AdminService
from .codec import WireCodec
from .service import MAX_MESSAGE_BYTES, ChatService

log = logging.getLogger("interplay.server")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """How the gRPC server listens: the one place these defaults live (``interplay serve``
    reads them)."""

    host: str = "127.0.0.1"
    port: int = 50051
    # Bytes per received message, checked on the length prefix before the body is read.
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # HTTP/2 receive windows: how much a client may send before we read it. Small enough that
    # a sender paused by backpressure holds little memory here; big enough not to throttle a
    # busy stream (see bench/chat_load.py).
    stream_window: int = 256 * 1024
    connection_window: int = 1024 * 1024
    # Concurrent calls per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS; grpclib leaves
    # h2's 100). Well-behaved clients queue calls above it; h2 ends a connection that ignores it.
    max_streams: int = 100
    # Seconds a shutdown waits for calls to flush and end before cancelling what is left.
    grace: float = 10.0
    # TLS for every connection (``tls_context``); None: plaintext HTTP/2 (h2c).
    tls: ssl.SSLContext | None = None
    # HTTP/2 keepalive: every ``keepalive_time`` seconds the server pings each connection, idle
    # or not; one whose ack has not come ``keepalive_timeout`` seconds later is dropped and its
    # calls end, so a member whose network vanished leaves its rooms within time + timeout.
    # None: no pings (a dead peer then lingers until TCP itself gives up, which can take hours).
    keepalive_time: float | None = 20.0
    keepalive_timeout: float = 10.0
    # Prometheus metrics at http://host:metrics_port/metrics (metrics.py); None: no exporter.
    metrics_port: int | None = None
    # Several processes on one port (``interplay serve --workers N``): the kernel spreads
    # connections over them (SO_REUSEPORT).
    reuse_port: bool = False

    def __post_init__(self) -> None:
        for name in ("port", "metrics_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name}: must be 0 to 65535, got {port}")
        for name in ("max_message_bytes", "stream_window", "connection_window", "max_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.grace >= 0:  # NaN fails too
            raise ValueError(f"grace: must be 0 or more seconds, got {self.grace}")
        if self.keepalive_time is not None and not self.keepalive_time > 0:
            raise ValueError(
                f"keepalive_time: must be positive (None: no pings), got {self.keepalive_time}"
            )
        if not self.keepalive_timeout > 0:
            raise ValueError(f"keepalive_timeout: must be positive, got {self.keepalive_timeout}")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for gRPC: the certificate chain and key (PEM files), TLS 1.2 or newer
    (HTTP/2 requires it), and ALPN ``h2``, which gRPC clients insist on."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    return context


class _KeepaliveConnection(Connection):
    """grpclib's connection, dropping a peer that misses a keepalive ping at once.

    grpclib (protocol.py, ``Connection._ping``) ends such a connection with ``close()``, that is
    ``transport.close()``, which flushes first: over TLS it waits for the peer's close_notify,
    up to asyncio's ``ssl_shutdown_timeout`` (30 s), and over TCP for a full send buffer to
    drain. A peer that answers no ping answers neither, so we abort the transport instead.
    """

    def _ping(self) -> None:
        waiting = self._close_by_ping_handler is not None
        super()._ping()
        timer = self._close_by_ping_handler
        if timer is not None and not waiting:  # a ping went out just now: arm our own timer
            timer.cancel()
            self._close_by_ping_handler = asyncio.get_running_loop().call_later(
                self._config._keepalive_timeout, self._ping_timed_out
            )

    def _ping_timed_out(self) -> None:
        transport = getattr(self, "_transport", None)  # close() deletes it
        if transport is not None:
            log.info(
                "keepalive: no ping ack from %s in %g s; dropping the connection",
                transport.get_extra_info("peername"),
                self._config._keepalive_timeout,
            )
            transport.abort()  # connection_lost follows: grpclib cancels every call on it
        self.close()


class _Server(Server):
    """grpclib's server, announcing ``max_streams`` in its HTTP/2 settings, dropping peers that
    miss a keepalive ping at once, taking plain DATA frames without h2's frame objects
    (``data_frames``), and knowing its open connections (for ``drain``)."""

    def __init__(self, *args: Any, max_streams: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_streams = max_streams
        self.connections: set[H2Protocol] = set()
        self._all_closed = asyncio.Event()

    async def wait_disconnected(self) -> None:
        """Until every connection has closed: the client closes it, or, once the client has
        ended every stream on it (it has read all it was sent; an idle, reusable channel at
        once), we do."""
        closed: set[H2Protocol] = set()
        while self.connections:
            for protocol in self.connections - closed:
                if not protocol.connection._connection.open_inbound_streams:
                    closed.add(protocol)
                    protocol.processor.close("drained")  # connection_lost follows
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), 0.02)

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        data_frames.install(protocol)  # before the transport exists: uvloop binds the method
        made = protocol.connection_made
        lost = protocol.connection_lost

        def connection_lost(exc: BaseException | None) -> None:
            try:
                lost(exc)
            finally:
                self.connections.discard(protocol)
                if not self.connections:
                    self._all_closed.set()

        def connection_made(transport: BaseTransport) -> None:
            made(transport)
            self.connections.add(protocol)
            connection = protocol.connection
            settings = {SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams}
            connection._connection.update_settings(settings)
            connection.flush()
            connection.__class__ = _KeepaliveConnection
            if connection._ping_handle is not None:  # scheduled grpclib's own _ping: redo it
                connection._ping_handle.cancel()
                connection.initialize()

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol


def build_server(runtime: Runtime, settings: ServerSettings) -> tuple[Server, ChatService]:
    chat = ChatService(runtime, max_message_bytes=settings.max_message_bytes)
    keepalive = settings.keepalive_time
    config = Configuration(
        http2_stream_window_size=settings.stream_window,
        http2_connection_window_size=settings.connection_window,
        # grpclib's keepalive (private fields; protocol.py, Connection._ping): a ping every
        # _keepalive_time while a stream is open, or always with _permit_without_calls (dead
        # idle connections go too). Its "without data" limits must be lifted, or a member who
        # only listens in a quiet room is pinged twice and then never again: the count resets
        # only when *we* send headers or data (_max_pings_without_data; 0 = no limit), and the
        # minimum interval (default 300 s) applies to every ping; half the period absorbs timer
        # jitter.
        _keepalive_time=keepalive,
        _keepalive_timeout=settings.keepalive_timeout,
        _keepalive_permit_without_calls=True,
        _http2_max_pings_without_data=0,
        _http2_min_sent_ping_interval_without_data=keepalive / 2 if keepalive else 300,
    )
    # The standard health service and server reflection, so grpcurl, grpc_cli and Postman find
    # chat.ChatService with no proto file at hand (its descriptor: the committed chat_pb2).
    # Its check follows ``chat.serving``: NOT_SERVING while the server drains.
    # With an admin secret, interplay.admin.v1.AdminService too (admin.py), on the same port.
    served: list[Any] = [chat]
    if runtime.admin.enabled:
        served.append(AdminService(runtime))
    # A node of many is NOT_SERVING while it cannot reach the engine (runtime/node.py).
    checks: list[Any] = [chat.serving]
    node = runtime.node
    if node is not None:

        async def engine_reachable() -> bool:
            return node.healthy

        checks.append(ServiceCheck(engine_reachable, check_ttl=0.5))
    services = ServerReflection.extend([*served, Health({chat: checks})])
    server = _Server(services, codec=WireCodec(), config=config, max_streams=settings.max_streams)
    return server, chat


async def drain(server: Server, chat: ChatService, grace: float) -> None:
    """Stop the way a real-time server should: NOT_SERVING and no new connections at once;
    every call flushes what it was sent and ends with UNAVAILABLE (its client reconnects
    elsewhere); then the clients close their connections. After ``grace`` seconds, what has
    not ended is cancelled and closed.

    A connection is closed once its client has ended every stream on it, not before: the
    client may still be sending (its reconnect has not begun), and closing a socket with
    unread data makes the kernel send a reset, which can destroy the end of what the client
    had not read yet. No GOAWAY first either: grpclib's client fails every stream on one,
    read or not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    chat.shutdown()
    if server._server is not None:
        server._server.close()  # stop accepting; grpclib's close() would also cancel every call
    open_calls = chat.counters.streams_open
    try:
        await asyncio.wait_for(chat.wait_closed(), grace)
        if isinstance(server, _Server):
            await asyncio.wait_for(server.wait_disconnected(), deadline - loop.time())
    except TimeoutError:
        log.warning(
            "shutdown: after %g s, %d of %d calls still open, %d connections; closing them",
            grace,
            chat.counters.streams_open,
            open_calls,
            len(server.connections) if isinstance(server, _Server) else -1,
        )
    server.close()
    await server.wait_closed()


async def start(runtime: Runtime, settings: ServerSettings) -> tuple[Server, ChatService]:
    """Listen (the runtime must be running); the caller stops it with ``drain``."""
    server, chat = build_server(runtime, settings)
    await server.start(
        settings.host, settings.port, ssl=settings.tls, reuse_port=settings.reuse_port or None
    )
    return server, chat


def bound(server: Server) -> str:
    """Where it listens, as ``host:port, ...``."""
    sockets = server._server.sockets if server._server else ()
    return ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in sockets)
