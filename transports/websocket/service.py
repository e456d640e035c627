"""``chat.ChatService`` over WebSocket: wire work only, around ``interplay.runtime``.

One WebSocket is one call, hence one runtime session: ``/chat``, ``/edit`` or ``/game``, in the
subprotocol the handshake chose (``codec.py``). ``WebSocketService.run`` is the call, whatever
carries the socket: it takes the bearer token (the ``Authorization`` header, or the
``access_token`` query parameter browsers must use), reads frames, hands the runtime what to
write as one batch, and closes with the code ``errors.py`` maps the session's end to. Two
carriers give it their socket: ``handle`` for the ``websockets`` server (``server.py``: frames
size-checked before they are buffered, one socket write per batch, the write limit as
backpressure, and the write the editing flusher makes without waiting) and the ASGI app
(``interplay.transports.asgi``). Everything else is the runtime's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

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


class Disconnected(Exception):
    """The socket is gone (the client left without its end message, or the network did)."""


class WebSocketService:
    """Serves the three RPCs to WebSocket connections."""

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

    async def run(
        self,
        service: Service,
        subprotocol: str,
        authorization: str | None,
        recv: Callable[[], Awaitable[str | bytes]],
        send: Callable[[list[bytes], bool], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        send_now: Callable[[list[bytes], bool], bool] | None = None,
    ) -> None:
        """One call. ``recv`` gives the next frame (``Disconnected`` when the socket is gone);
        ``send(frames, text)`` writes a batch (``Disconnected`` too); ``close(code, reason)``
        ends the socket; ``send_now(frames, text)``, if given, writes a batch only if it can
        without waiting (False: nothing written), for the runtime's editing flusher."""
        request_type = REQUEST[service]
        ended = False

        async def receive() -> Any:
            nonlocal ended
            try:
                return parse(await recv(), subprotocol, request_type)
            except Ended:
                ended = True
                return None

        text = subprotocol == JSON

        async def write(frames: list[bytes]) -> None:
            try:
                await send(frames, text)
            except Disconnected:
                raise PeerGone() from None

        write_now: Callable[[list[bytes]], bool] | None = None
        if send_now is not None:
            at_once = send_now

            def write_now(frames: list[bytes]) -> bool:
                return at_once(frames, text)

        runtime = self.runtime
        try:
            identity = await runtime.authenticate(authorization)
            await runtime.serve(
                service,
                self._codecs[service, subprotocol],
                receive,
                write,
                identity=identity,
                send_now=write_now,
            )
        except Disconnected:
            return  # nothing to tell a client that is gone
        except Exception as error:
            mapped = errors.close_of(error, _FIELDS[service])
            if mapped is None:
                log.exception("internal error on a %s call", service.value)
                runtime.count_error("INTERNAL")
                await close(1011, "internal error")
                return
            code, reason, status = mapped
            runtime.count_error(status)
            await close(code, reason)
            return
        if ended and await _frame_after_end(recv):
            runtime.count_error("INVALID_ARGUMENT")
            await close(errors.STATUS_BASE + 3, "frame: nothing may follow the end message")
            return
        await close(errors.NORMAL, "")

    async def handle(self, ws: ServerConnection) -> None:
        """The connection handler of the ``websockets`` server (``server.py``)."""
        path, _, query = ws.request.path.partition("?")

        async def recv() -> str | bytes:
            try:
                return await ws.recv()
            except ConnectionClosed:
                raise Disconnected() from None

        plain = not ws.protocol.extensions  # no compression: frames are header + payload

        async def send(frames: list[bytes], text: bool) -> None:
            try:
                async with ws.send_context():  # one socket write, then wait out the write limit
                    if plain:
                        ws.transport.write(framed(frames, OP_TEXT if text else OP_BINARY))
                    else:
                        write = ws.protocol.send_text if text else ws.protocol.send_binary
                        for frame in frames:
                            write(frame)
            except ConnectionClosed:
                raise Disconnected() from None

        def send_at_once(frames: list[bytes], text: bool) -> bool:
            # What ``send`` does when it need not wait: the connection open, its transport
            # not paused (``send_context`` would wait in ``drain``), no extension to apply.
            if not plain or ws.paused or ws.protocol.state is not State.OPEN:
                return False
            ws.transport.write(framed(frames, OP_TEXT if text else OP_BINARY))
            return True

        async def close(code: int, reason: str) -> None:
            await ws.close(code, reason)

        header = ws.request.headers.get("Authorization")
        await self.run(
            PATHS[path],  # the handshake (server.py) refused any other path
            ws.subprotocol or PROTO,
            authorization(header, query),
            recv,
            send,
            close,
            send_at_once,
        )

    # -- drain: the server's part; the runtime does the rest -----------------------------

    def shutdown(self) -> None:
        """Every session stops reading, flushes and ends (close 1012)."""
        self.runtime.shutdown()

    async def wait_closed(self) -> None:
        await self.runtime.wait_closed()


OP_TEXT, OP_BINARY = 0x81, 0x82  # FIN + opcode: a whole text or binary message


def framed(payloads: list[bytes], first_byte: int) -> bytes:
    """Server-to-client frames (unmasked, RFC 6455 §5.2) for ``payloads``, one write: what
    the library's ``send_binary`` builds per frame, at a tenth of its cost."""
    out = bytearray()
    for payload in payloads:
        size = len(payload)
        if size < 126:
            out += bytes((first_byte, size))
        elif size < 65536:
            out += _SHORT.pack(first_byte, 126, size)
        else:
            out += _LONG.pack(first_byte, 127, size)
        out += payload
    return bytes(out)


_SHORT, _LONG = struct.Struct("!BBH"), struct.Struct("!BBQ")


def authorization(header: str | None, query: str) -> str | None:
    """The ``Authorization`` header, or a bearer header made of ``?access_token=``."""
    if header is not None:
        return header
    token = parse_qs(query).get("access_token")
    return f"Bearer {token[0]}" if token else None


async def _frame_after_end(recv: Callable[[], Awaitable[str | bytes]]) -> bool:
    """Whether the client sent a frame after its end message (one already received)."""
    with contextlib.suppress(TimeoutError, Disconnected):
        async with asyncio.timeout(0):
            await recv()
            return True
    return False
