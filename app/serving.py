"""One process, every transport: gRPC and WebSocket (with the browser app) over one runtime.

``serve`` starts what the settings ask for, prints where each listens, runs until SIGINT or
SIGTERM, then drains every transport at once: no new connections, every session flushes and
ends (gRPC UNAVAILABLE, WebSocket 1012), each transport's leftovers are closed after its grace.
A gRPC client and a browser share rooms, documents and matches: the runtime is one.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from interplay.runtime.server import Runtime
from interplay.transports import grpc
from interplay.transports.grpc.server import ServerSettings
from interplay.transports.websocket.server import WebSocketSettings

log = logging.getLogger("interplay.server")


async def serve(
    runtime: Runtime, settings: ServerSettings, websocket: WebSocketSettings | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, then drain; ``websocket`` None: gRPC only. With
    ``settings.metrics_port``, export Prometheus metrics until the drain has ended."""
    server, chat = await grpc.start(runtime, settings)
    security = "TLS" if settings.tls else "plaintext"
    print(f"interplay: serving chat.ChatService on {grpc.server.bound(server)} ({security})")
    ws = None
    if websocket is not None:
        from interplay.transports import websocket as ws_transport

        try:
            ws = await ws_transport.start(runtime, websocket)
        except BaseException:
            server.close()
            await server.wait_closed()
            raise
        where = ws_transport.server.bound(ws[0])
        scheme = "https" if websocket.tls else "http"
        host, _, port = where.partition(", ")[0].rpartition(":")
        app = f"; the browser app: {scheme}://{host}:{port}/" if websocket.web_root else ""
        print(f"interplay: serving WebSocket on {where} (/chat, /edit, /game){app}")
    metrics = None
    if settings.metrics_port is not None:
        from interplay.runtime.metrics import metrics_registry, start_metrics_server

        metrics = start_metrics_server(
            metrics_registry(runtime), settings.host, settings.metrics_port
        )
        log.info("metrics: http://%s:%d/metrics", settings.host, metrics.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("interplay: ready (Ctrl-C or SIGTERM to stop)", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info(
            "shutting down: %d open calls, grace %g s",
            runtime.counters.streams_open,
            settings.grace,
        )
        try:
            drains = [grpc.drain(server, chat, settings.grace)]
            if ws is not None:
                from interplay.transports.websocket import drain as ws_drain

                drains.append(ws_drain(*ws, websocket.grace if websocket else settings.grace))
            await asyncio.gather(*drains)
        finally:
            if metrics is not None:  # scraped until the end: the drain shows in them
                await asyncio.to_thread(metrics.close)
