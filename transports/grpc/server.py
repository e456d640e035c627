"""Wiring a grpclib ``Server`` around the services, and running it until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from asyncio import BaseTransport
from dataclasses import dataclass, field
from typing import Any

from grpclib.config import Configuration
from grpclib.health.service import Health
from grpclib.protocol import H2Protocol
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server
from h2.settings import SettingCodes

from interplay.core.documents import DocumentHub
from interplay.core.matches import MatchHub
from interplay.core.rooms import RoomHub

from .auth import Authenticator
from .codec import WireCodec
from .service import ChatService, ChatSettings

log = logging.getLogger("interplay.server")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 50051
    chat: ChatSettings = field(default_factory=ChatSettings)
    # HTTP/2 receive windows: how much a client may send before we read it. Small enough that
    # a sender paused by backpressure holds little memory here; big enough not to throttle a
    # busy stream (see bench/chat_load.py).
    stream_window: int = 256 * 1024
    connection_window: int = 1024 * 1024
    # Concurrent calls per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS; grpclib leaves
    # h2's 100). Well-behaved clients queue calls above it; h2 ends a connection that ignores it.
    max_streams: int = 100
    # Bearer tokens required on every call (auth.py); None: no authentication.
    auth: Authenticator | None = None
    # Seconds a shutdown waits for calls to flush and end before cancelling what is left.
    grace: float = 10.0


class _Server(Server):
    """grpclib's server, announcing ``max_streams`` in its HTTP/2 settings."""

    def __init__(self, *args: Any, max_streams: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_streams = max_streams

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        made = protocol.connection_made

        def connection_made(transport: BaseTransport) -> None:
            made(transport)
            settings = {SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams}
            protocol.connection._connection.update_settings(settings)
            protocol.connection.flush()

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol


def build_server(
    hub: RoomHub, documents: DocumentHub, games: MatchHub | None, settings: ServerSettings
) -> tuple[Server, ChatService]:
    chat = ChatService(hub, documents, games, settings=settings.chat, auth=settings.auth)
    config = Configuration(
        http2_stream_window_size=settings.stream_window,
        http2_connection_window_size=settings.connection_window,
    )
    # The standard health service and server reflection, so grpcurl, grpc_cli and Postman find
    # chat.ChatService with no proto file at hand (its descriptor: the committed chat_pb2).
    # Its check follows ``chat.serving``: NOT_SERVING while the server drains.
    services = ServerReflection.extend([chat, Health({chat: [chat.serving]})])
    server = _Server(services, codec=WireCodec(), config=config, max_streams=settings.max_streams)
    return server, chat


async def drain(server: Server, chat: ChatService, grace: float) -> None:
    """Stop the way a real-time server should: NOT_SERVING and no new connections at once;
    every call flushes what it was sent and ends with UNAVAILABLE (its client reconnects
    elsewhere); after ``grace`` seconds, what has not ended is cancelled."""
    chat.shutdown()
    if server._server is not None:
        server._server.close()  # stop accepting; grpclib's close() would also cancel every call
    open_calls = chat.counters.streams_open
    try:
        await asyncio.wait_for(chat.wait_closed(), grace)
    except TimeoutError:
        log.warning(
            "shutdown: %d of %d calls still open after %g s; cancelling them",
            chat.counters.streams_open,
            open_calls,
            grace,
        )
    server.close()
    await server.wait_closed()


async def serve(
    hub: RoomHub, documents: DocumentHub, games: MatchHub, settings: ServerSettings
) -> None:
    """Serve until SIGINT or SIGTERM, then drain: see ``drain``."""
    server, chat = build_server(hub, documents, games, settings)
    await server.start(settings.host, settings.port)
    sockets = server._server.sockets if server._server else ()
    bound = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in sockets)
    print(f"interplay: serving chat.ChatService on {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info(
            "shutting down: %d open calls, grace %g s", chat.counters.streams_open, settings.grace
        )
        await drain(server, chat, settings.grace)
