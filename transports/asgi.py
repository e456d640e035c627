"""The WebSocket endpoints as an ASGI application, to mount in a Starlette or FastAPI app.

    service = InterplayASGI(lambda: Runtime(SQLiteBackend("interplay.db")))
    app = Starlette(routes=[Mount("/rt", app=service)], lifespan=service.lifespan)
    # ws://HOST/rt/chat, /rt/edit, /rt/game; the browser app at http://HOST/rt/

The calls are the WebSocket transport's (``transports/websocket``: same paths, subprotocols,
end message, close codes, tokens), run by the same ``WebSocketService.run`` over ASGI's
messages; a broadcast is encoded once for these and any gRPC or ``websockets`` members of the
same runtime. ``lifespan`` starts the runtime with the host app and drains it on shutdown
(Starlette does not run a mounted app's own lifespan); served alone (``uvicorn
module:service``), the app answers ASGI's lifespan messages itself.

Differences from ``interplay serve``'s WebSocket server, which are the ASGI server's: frame
size is its limit (uvicorn: ``--ws-max-size``, 16 MiB by default) before ours
(``max_message_bytes``, checked on each frame received, close 1009); pings are its setting
(uvicorn: ``--ws-ping-interval``); each frame is one ``send``, written with its flow control.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio

from interplay.runtime.server import Runtime
from interplay.transports.websocket.codec import PATHS
from interplay.transports.websocket.server import (
    MAX_MESSAGE_BYTES,
    StaticFiles,
    not_an_endpoint,
    select_subprotocol,
)
from interplay.transports.websocket.service import Disconnected, WebSocketService, authorization

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class InterplayASGI:
    """An ASGI app over one runtime: given running (``runtime``) or started and drained by
    ``lifespan`` (``make_runtime``, a callable returning a ``Runtime`` to enter)."""

    def __init__(
        self,
        make_runtime: Callable[[], Runtime] | None = None,
        *,
        runtime: Runtime | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        web_root: Path | None = None,
        drain_grace: float = 10.0,
    ) -> None:
        if (make_runtime is None) == (runtime is None):
            raise ValueError("make_runtime or runtime: give exactly one")
        self._make_runtime = make_runtime
        self._service = WebSocketService(runtime) if runtime is not None else None
        self.max_message_bytes = max_message_bytes
        self.drain_grace = drain_grace
        self._files = StaticFiles(web_root)

    @property
    def runtime(self) -> Runtime:
        if self._service is None:
            raise RuntimeError(
                "the runtime starts with the app's lifespan (InterplayASGI.lifespan)"
            )
        return self._service.runtime

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Run the runtime while the host app runs: Starlette's ``lifespan=``."""
        if self._make_runtime is None:  # the caller runs the runtime
            yield
            return
        async with self._make_runtime() as runtime:
            self._service = WebSocketService(runtime)
            try:
                yield
            finally:
                runtime.shutdown()  # every session flushes and closes with 1012
                with anyio.move_on_after(self.drain_grace):
                    await runtime.wait_closed()
                self._service = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, send)

    # -- ASGI ----------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.lifespan())
            except Exception as error:
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _relative(scope)
        service = PATHS.get(path)
        if (await receive())["type"] != "websocket.connect":
            return
        if service is None or self._service is None:
            await send({"type": "websocket.close", "code": 1008})  # refused: HTTP 403
            return
        try:
            subprotocol = select_subprotocol(scope.get("subprotocols") or ())
        except ValueError as refused:
            await send({"type": "websocket.close", "code": 1002, "reason": str(refused)})
            return
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        limit = self.max_message_bytes
        closed = False

        async def recv() -> str | bytes:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                raise Disconnected()
            frame: str | bytes = (
                message["text"] if message.get("text") is not None else message["bytes"]
            )
            size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
            if size > limit:
                await close(1009, f"frame with {size} bytes exceeds limit of {limit} bytes")
                raise Disconnected()
            return frame

        async def send_frames(frames: list[bytes], text: bool) -> None:
            try:
                for frame in frames:
                    if text:
                        await send({"type": "websocket.send", "text": frame.decode()})
                    else:
                        await send({"type": "websocket.send", "bytes": frame})
            except OSError:  # the ASGI server says the socket is gone (ASGI 2.4)
                raise Disconnected() from None

        async def close(code: int, reason: str) -> None:
            nonlocal closed
            if not closed:
                closed = True
                with contextlib.suppress(OSError):
                    await send({"type": "websocket.close", "code": code, "reason": reason})

        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope.get("headers", ())
        }
        query = scope.get("query_string", b"").decode("latin-1")
        header = authorization(headers.get("authorization"), query)
        await self._service.run(service, subprotocol, header, recv, send_frames, close)

    async def _http(self, scope: Scope, send: Send) -> None:
        path = _relative(scope)
        if path in PATHS:
            status, headers, body = not_an_endpoint(path)
        else:
            status, headers, body = self._files.get(path)
        await send(
            {
                "type": "http.response.start",
                "status": status.value,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _relative(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path and sets root_path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"
