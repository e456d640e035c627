"""Wiring a grpclib ``Server`` around the services, and running it until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

from grpclib.config import Configuration
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server

from interplay.core.documents import DocumentHub
from interplay.core.matches import MatchHub
from interplay.core.rooms import RoomHub

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


def build_server(
    hub: RoomHub, documents: DocumentHub, games: MatchHub | None, settings: ServerSettings
) -> tuple[Server, ChatService]:
    chat = ChatService(hub, documents, games, settings=settings.chat)
    config = Configuration(
        http2_stream_window_size=settings.stream_window,
        http2_connection_window_size=settings.connection_window,
    )
    # The standard health service and server reflection, so grpcurl, grpc_cli and Postman find
    # chat.ChatService with no proto file at hand (its descriptor: the committed chat_pb2).
    services = ServerReflection.extend([chat, Health()])
    return Server(services, codec=WireCodec(), config=config), chat


async def serve(
    hub: RoomHub, documents: DocumentHub, games: MatchHub, settings: ServerSettings
) -> None:
    """Serve until SIGINT or SIGTERM, then stop accepting and end every call."""
    server, _ = build_server(hub, documents, games, settings)
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
        log.info("stopping")
        server.close()
        await server.wait_closed()
