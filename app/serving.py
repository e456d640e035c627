"""One process, every transport: gRPC and WebSocket (with the browser app) over one runtime.

``serve`` starts what the settings ask for (a port it cannot listen on is ``CannotListen``,
before anything is announced), prints where each listens, runs until SIGINT or
SIGTERM, then drains every transport at once: no new connections, every session flushes and
ends (gRPC UNAVAILABLE, WebSocket 1012), each transport's leftovers are closed after its grace.
A gRPC client and a browser share rooms, documents and matches: the runtime is one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from interplay.runtime.server import Runtime
from interplay.transports import grpc
from interplay.transports.grpc.server import ServerSettings
from interplay.transports.websocket.server import WebSocketSettings

log = logging.getLogger("interplay.server")

T = TypeVar("T")


class CannotListen(Exception):
    """A transport could not listen where its settings say: ``setting`` names which (``port``,
    ``ws_port``, ``metrics_port``), ``reason`` says why in a few words. Raised before anything
    is announced, with whatever had started closed again."""

    def __init__(self, setting: str, host: str, port: int, error: OSError) -> None:
        self.setting = setting
        self.reason = (
            f"{host}:{port} is already in use (another server on it?)"
            if error.errno == errno.EADDRINUSE
            else f"cannot listen on {host}:{port} ({error.strerror or error})"
        )
        super().__init__(f"{setting}: {self.reason}")


async def _listen(setting: str, host: str, port: int, starting: Awaitable[T]) -> T:
    try:
        return await starting
    except OSError as error:
        raise CannotListen(setting, host, port, error) from None


def banner(runtime: Runtime, settings: ServerSettings, workers: int = 1) -> str:
    """What the ready line says beside the listeners: auth, where the data lives, metrics,
    and how many worker processes share the ports."""
    data = getattr(runtime.backend, "path", None) or "in memory (lost on exit)"
    metrics = f"metrics on port {settings.metrics_port}" if settings.metrics_port else "no metrics"
    if settings.metrics_port and workers > 1:
        last = settings.metrics_port + workers - 1
        metrics = f"metrics on ports {settings.metrics_port} to {last} (one per worker)"
    parts = [f"auth {'on (bearer tokens)' if runtime.auth is not None else 'off'}"]
    parts += [f"data {data}", metrics] + ([f"{workers} workers"] if workers > 1 else [])
    return "; ".join(parts)


async def serve(
    runtime: Runtime,
    settings: ServerSettings,
    websocket: WebSocketSettings | None = None,
    *,
    ready: Callable[[], Awaitable[None]] | None = None,
    announce: bool = True,
    workers: int = 1,
) -> None:
    """Serve until SIGINT or SIGTERM, then drain; ``websocket`` None: gRPC only. With
    ``settings.metrics_port``, export Prometheus metrics until the drain has ended.
    ``ready`` is awaited once everything listens, before the announcement (``--workers``: the
    first process waits for the others there; an exception from it closes the listeners);
    ``announce`` False: print nothing (a worker beside the first)."""
    server, chat = await _listen(
        "port", settings.host, settings.port, grpc.start(runtime, settings)
    )
    ws = None
    metrics = None
    try:
        if websocket is not None:
            from interplay.transports import websocket as ws_transport

            ws = await _listen(
                "ws_port", websocket.host, websocket.port, ws_transport.start(runtime, websocket)
            )
        if settings.metrics_port is not None:
            from interplay.runtime.metrics import metrics_registry, start_metrics_server

            try:
                metrics = start_metrics_server(
                    metrics_registry(runtime), settings.host, settings.metrics_port
                )
            except OSError as error:
                raise CannotListen(
                    "metrics_port", settings.host, settings.metrics_port, error
                ) from None
        if ready is not None:
            await ready()
    except BaseException:  # nothing was announced: close what did start
        if metrics is not None:
            await asyncio.to_thread(metrics.close)
        if ws is not None:
            ws[0].close()
            await ws[0].wait_closed()
        server.close()
        await server.wait_closed()
        raise
    security = "TLS" if settings.tls else "plaintext"
    if announce:
        print(f"interplay: serving chat.ChatService on {grpc.server.bound(server)} ({security})")
    if ws is not None and websocket is not None and announce:
        where = ws_transport.server.bound(ws[0])
        scheme = "https" if websocket.tls else "http"
        host, _, port = where.partition(", ")[0].rpartition(":")
        app = f"; the browser app: {scheme}://{host}:{port}/" if websocket.web_root else ""
        print(f"interplay: serving WebSocket on {where} (/chat, /edit, /game){app}")
    if metrics is not None:
        log.info("metrics: http://%s:%d/metrics", settings.host, metrics.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if announce:
        said = banner(runtime, settings, workers)
        print(f"interplay: ready: {said} (Ctrl-C or SIGTERM to stop)", flush=True)
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
