"""Wiring a ``websockets`` server around the service, serving the browser app beside it.

One port serves both: ``/chat``, ``/edit`` and ``/game`` are WebSocket endpoints (one call per
socket); any other ``GET`` is plain HTTP for the static files of the browser app (``web/``,
installed as ``interplay.web``), so ``interplay serve`` needs nothing else for a browser.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from interplay.runtime.server import Runtime

from .codec import PATHS, SUBPROTOCOLS
from .service import WebSocketService

log = logging.getLogger("interplay.websocket")


class _ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """The library's log, its per-connection INFO lines ("connection open", "…closed") at
    DEBUG: a line per connection is debugging detail on a server with thousands of them."""

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)  # type: ignore[arg-type]


_library_log = _ConnectionLog(logging.getLogger("interplay.websocket.connections"))

# Bytes per received frame, checked on the frame header before its payload is buffered; as for
# gRPC, above the largest valid message (64 Ki code points of UTF-8; JSON adds escapes).
MAX_MESSAGE_BYTES = 1024 * 1024


def default_web_root() -> Path | None:
    """The installed browser app, if this installation has it."""
    try:
        import interplay.web
    except ImportError:
        return None
    root = Path(interplay.web.__file__).parent
    return root if (root / "index.html").is_file() else None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketSettings:
    """How the WebSocket server listens: the one place these defaults live (``interplay
    serve`` reads them)."""

    host: str = "127.0.0.1"
    port: int = 8080
    # Bytes per received frame (``websockets``' max_size): larger ones close the call with
    # 1009 before they are buffered.
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # Frames the library buffers per connection before it stops reading the socket (TCP flow
    # control then holds the client), and the write buffer's high-water mark in bytes: a
    # writer waits above it, which is how a slow reader's backpressure reaches the runtime.
    max_queue: int = 16
    write_limit: int = 64 * 1024
    # Pings: a peer that has not answered one within ping_timeout is closed (1011) and its
    # session ends as a disconnect once the closing handshake has had close_timeout seconds
    # (a vanished peer answers neither), so it leaves its rooms within the sum. None: no pings.
    ping_interval: float | None = 20.0
    ping_timeout: float = 10.0
    close_timeout: float = 5.0
    # Seconds a shutdown waits for calls to flush and end before closing what is left.
    grace: float = 10.0
    # permessage-deflate: less bandwidth for text-heavy traffic, at a zlib pass per frame per
    # connection (it cannot be shared: each connection has its own compression context), which
    # costs more server CPU than the whole fan-out. Off unless asked for.
    compression: bool = False
    # The browser app's files; None: no app (only the WebSocket endpoints).
    web_root: Path | None = None
    tls: ssl.SSLContext | None = None
    # SO_REUSEPORT: several processes on one port (``interplay serve --workers``)
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: must be 0 to 65535, got {self.port}")
        for name in ("max_message_bytes", "max_queue", "write_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.ping_interval is not None and not self.ping_interval > 0:
            raise ValueError(
                f"ping_interval: must be positive (None: no pings), got {self.ping_interval}"
            )
        for name in ("ping_timeout", "close_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if not self.grace >= 0:
            raise ValueError(f"grace: must be 0 or more seconds, got {self.grace}")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for WebSocket and the app's pages: the certificate chain and key
    (PEM files), TLS 1.2 or newer, ALPN HTTP/1.1 (WebSocket over HTTP/2 is another protocol)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class StaticFiles:
    """GET of the browser app's files: (status, headers, body), for any HTTP carrier."""

    def __init__(self, root: Path | None) -> None:
        self.root = root.resolve() if root is not None else None

    def get(self, path: str) -> tuple[HTTPStatus, list[tuple[str, str]], bytes]:
        if self.root is None:
            return _text(HTTPStatus.NOT_FOUND, "no browser app is installed with this server\n")
        relative = unquote(path).lstrip("/") or "index.html"
        file = (self.root / relative).resolve()
        if (
            not file.is_relative_to(self.root)
            or not file.is_file()
            or file.name.startswith(("_", "."))
        ):
            return _text(HTTPStatus.NOT_FOUND, f"not found: {path}\n")
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        headers = [
            ("Content-Type", kind),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        return HTTPStatus.OK, headers, file.read_bytes()


def _text(status: HTTPStatus, body: str) -> tuple[HTTPStatus, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "text/plain; charset=utf-8")], body.encode()


def _response(answer: tuple[HTTPStatus, list[tuple[str, str]], bytes]) -> Response:
    status, headers, body = answer
    return Response(status.value, status.phrase, Headers(headers), body)


def not_an_endpoint(path: str) -> tuple[HTTPStatus, list[tuple[str, str]], bytes]:
    return _text(
        HTTPStatus.NOT_FOUND, f"no endpoint {path}: the endpoints are {', '.join(PATHS)}\n"
    )


def select_subprotocol(offered: Sequence[str]) -> str:
    """The subprotocol of a call (ours, in our order of preference); ``ValueError`` naming
    the rule if the client offers none of them."""
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    wanted = " or ".join(SUBPROTOCOLS)
    if not offered:
        raise ValueError(f"missing subprotocol: ask for {wanted}")
    raise ValueError(f"unknown subprotocol {', '.join(offered)}: ask for {wanted}")


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    try:
        return Subprotocol(select_subprotocol(offered))
    except ValueError as error:
        raise NegotiationError(str(error)) from None


async def start(
    runtime: Runtime, settings: WebSocketSettings, *, sock: socket.socket | None = None
) -> tuple[Server, WebSocketService]:
    """Listen on ``settings.host``/``port``, or on a bound ``sock`` (the runtime must be
    running); the caller stops it with ``drain``."""
    service = WebSocketService(runtime)
    files = StaticFiles(settings.web_root)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path in PATHS:
            return None  # a call: the WebSocket handshake goes on
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return _response(not_an_endpoint(path))
        return _response(files.get(path))

    mimetypes.add_type("text/javascript", ".mjs")
    server = await serve(
        service.handle,
        None if sock else settings.host,
        None if sock else settings.port,
        sock=sock,
        process_request=process_request,
        select_subprotocol=_select_subprotocol,
        subprotocols=[Subprotocol(name) for name in SUBPROTOCOLS],
        max_size=settings.max_message_bytes,
        max_queue=settings.max_queue,
        write_limit=settings.write_limit,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        close_timeout=settings.close_timeout,
        ssl=settings.tls,
        server_header=None,
        logger=_library_log,
        compression="deflate" if settings.compression else None,
        reuse_port=settings.reuse_port or None,
    )
    return server, service


def bound(server: Server) -> str:
    return ", ".join(
        f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.server.sockets or ()
    )


async def drain(server: Server, service: WebSocketService, grace: float) -> None:
    """Stop accepting; every session flushes and closes with 1012 (reconnect and resume);
    after ``grace`` seconds what is left is closed (1001)."""
    service.shutdown()
    server.server.close()  # stop accepting; connections stay open to flush
    try:
        await asyncio.wait_for(service.wait_closed(), grace)
    except TimeoutError:
        log.warning(
            "shutdown: after %g s, %d WebSocket calls still open; closing them",
            grace,
            len(server.connections),
        )
    server.close()
    await server.wait_closed()
