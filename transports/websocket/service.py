"""``chat.ChatService`` over WebSocket: wire work only, around ``interplay.runtime``.

One WebSocket is one call, hence one runtime session: ``/chat``, ``/edit`` or ``/game``, in the
subprotocol the handshake chose (``codec.py``). This module takes the bearer token (the
``Authorization`` header, or the ``access_token`` query parameter browsers must use), reads
frames (``websockets`` checks their size against ``max_size`` before buffering them), writes
what the runtime hands it as one socket write per batch, respecting the connection's write
limit (that wait is the runtime's backpressure), and closes with the code ``errors.py`` maps the
session's end to. Everything else is the runtime's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from interplay.runtime.errors import PeerGone
from interplay.runtime.outbox import Codec
from interplay.runtime.server import Counters, Runtime, Service
from interplay.transports.grpc import codec as proto

from . import errors
from .codec import JSON, PATHS, PROTO, REPLY, REQUEST, Ended, JsonWire, parse

log = logging.getLogger("interplay.websocket")

_FIELDS: dict[Service, Mapping[str, str]] = {
    Service.CHAT: proto.CHAT_FIELDS,
    Service.EDIT: proto.EDIT_FIELDS,
    Service.GAME: {},
}

# How long the server waits for a frame after the end message before closing normally.
_AFTER_END = 0.0


class WebSocketService:
    """Serves the three RPCs to WebSocket connections (``handle`` is the connection handler
    of a ``websockets`` server; ``server.py`` builds it)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        protobuf = proto.wire_codecs(runtime)
        self._codecs: dict[tuple[Service, str], Codec] = {}
        for service in Service:
            self._codecs[service, PROTO] = protobuf[service]
            self._codecs[service, JSON] = JsonWire(protobuf[service], REPLY[service])

    @property
    def counters(self) -> Counters:
        return self.runtime.counters

    async def handle(self, ws: ServerConnection) -> None:
        path, _, query = ws.request.path.partition("?")
        service = PATHS[path]  # the handshake (server.py) refused any other path
        subprotocol = ws.subprotocol or PROTO
        request_type = REQUEST[service]
        text = subprotocol == JSON
        ended = False

        async def receive() -> Any:
            nonlocal ended
            try:
                return parse(await ws.recv(), subprotocol, request_type)
            except Ended:
                ended = True
                return None

        async def send(frames: list[bytes]) -> None:
            try:
                async with ws.send_context():  # one socket write, then wait out the write limit
                    write = ws.protocol.send_text if text else ws.protocol.send_binary
                    for frame in frames:
                        write(frame)
            except ConnectionClosed:
                raise PeerGone() from None

        runtime = self.runtime
        try:
            identity = runtime.authenticate(_authorization(ws, query))
            await runtime.serve(
                service, self._codecs[service, subprotocol], receive, send, identity=identity
            )
        except ConnectionClosed:
            return  # the client went away without its end message: nothing to tell it
        except Exception as error:
            mapped = errors.close_of(error, _FIELDS[service])
            if mapped is None:
                log.exception("internal error on %s", path)
                runtime.count_error("INTERNAL")
                await ws.close(1011, "internal error")
                return
            code, reason, status = mapped
            runtime.count_error(status)
            await ws.close(code, reason)
            return
        if ended and await _frame_after_end(ws):
            runtime.count_error("INVALID_ARGUMENT")
            await ws.close(errors.STATUS_BASE + 3, "frame: nothing may follow the end message")
            return
        await ws.close(errors.NORMAL)

    # -- drain: the server's part; the runtime does the rest -----------------------------

    def shutdown(self) -> None:
        """Every session stops reading, flushes and ends (close 1012)."""
        self.runtime.shutdown()

    async def wait_closed(self) -> None:
        await self.runtime.wait_closed()


def _authorization(ws: ServerConnection, query: str) -> str | None:
    """The ``Authorization`` header, or a bearer header made of ``?access_token=``."""
    header = ws.request.headers.get("Authorization")
    if header is not None:
        return header
    token = parse_qs(query).get("access_token")
    return f"Bearer {token[0]}" if token else None


async def _frame_after_end(ws: ServerConnection) -> bool:
    """Whether the client sent a frame after its end message (already received, or now)."""
    with contextlib.suppress(TimeoutError, ConnectionClosed):
        async with asyncio.timeout(_AFTER_END):
            await ws.recv()
            return True
    return False
