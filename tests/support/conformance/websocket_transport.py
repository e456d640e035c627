"""The WebSocket side of the suite: one WebSocket per call, in either subprotocol.

The JSON wire writes every other message with the proto's original snake_case names (the
server must accept both spellings, as proto3 JSON parsers do) and the rest in camelCase.
``small_buffers``: the call reads its socket only when the test receives (``SlowWire``, the
library's sans-I/O protocol over a stream with a 1 KiB buffer; the ``websockets`` client reads
ahead into its own queue), its socket has a tiny receive buffer, and (for tests that ask for a
connection per call) the server's sockets a small send buffer and write limit, so a call that
does not read meets the server's backpressure at once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from google.protobuf import json_format
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from interplay.runtime.server import Service
from interplay.testing.transport.calls import CallEnded, Ended
from interplay.testing.transport.server import Connect, Rpc, ServerUnderTest
from interplay.transports.grpc.generated.chat import (
    ChatMessage,
    EditOperation,
    GameAction,
    GameState,
)
from interplay.transports.websocket import WebSocketSettings, start
from interplay.transports.websocket.codec import END, JSON, PROTO, REPLY, REQUEST, parse
from interplay.transports.websocket.errors import status_of_close

SERVICES: dict[Rpc, Service] = {"chat": Service.CHAT, "edit": Service.EDIT, "game": Service.GAME}
BETTERPROTO = {
    Service.CHAT: (ChatMessage, ChatMessage),
    Service.EDIT: (EditOperation, EditOperation),
    Service.GAME: (GameAction, GameState),
}
SMALL = 4096  # bytes: socket buffers of a call that will not read


class WebSocketWire:
    """One WebSocket carrying betterproto2 messages (converted through Google's runtime)."""

    def __init__(self, ws: ClientConnection, service: Service, subprotocol: str) -> None:
        self.ws, self.service, self.subprotocol = ws, service, subprotocol
        self._sent = 0
        self._reply = BETTERPROTO[service][1]

    def _frame(self, message: Any) -> str | bytes:
        data = bytes(message)
        if self.subprotocol == PROTO:
            return data
        self._sent += 1
        upb = REQUEST[self.service].FromString(data)
        return json_format.MessageToJson(
            upb, indent=None, preserving_proto_field_name=self._sent % 2 == 0
        )

    async def send(self, message: Any) -> None:
        try:
            await self.ws.send(self._frame(message))
        except ConnectionClosed as closed:
            raise CallEnded(_ended(closed)) from None

    async def recv(self) -> Any:
        try:
            frame = await self.ws.recv()
        except ConnectionClosed as closed:
            return _ended(closed)
        upb = parse(frame, self.subprotocol, REPLY[self.service])
        return self._reply.parse(upb.SerializeToString())

    async def end(self) -> None:
        await self.ws.send(END)


class SlowWire(WebSocketWire):
    """A call whose socket is read only while the test waits in ``recv``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ClientProtocol,
        service: Service,
        subprotocol: str,
    ) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self.service, self.subprotocol = service, subprotocol
        self._sent = 0
        self._reply = BETTERPROTO[service][1]
        self._frames: list[Any] = []

    @classmethod
    async def open(cls, port: int, service: Service, path: str, subprotocol: str) -> SlowWire:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}{path}"),
            subprotocols=[Subprotocol(subprotocol)],
            max_size=None,
        )
        protocol.send_request(protocol.connect())
        wire = cls(reader, writer, protocol, service, subprotocol)
        await wire._flush()
        while not any(isinstance(event, Response) for event in await wire._read()):
            pass
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        return wire

    async def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def _read(self) -> list[Any]:
        data = await self.reader.read(1024)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        await self._flush()  # pongs, the close reply
        events = self.protocol.events_received()
        self._frames += [e for e in events if getattr(e, "opcode", None) in _DATA]
        return events

    async def send(self, message: Any) -> None:
        frame = self._frame(message)
        if self.protocol.close_rcvd is not None:
            raise CallEnded(_ended_with(self.protocol))
        if isinstance(frame, str):
            self.protocol.send_text(frame.encode())
        else:
            self.protocol.send_binary(frame)
        await self._flush()

    async def recv(self) -> Any:
        while not self._frames:
            if self.protocol.close_rcvd is not None or self.reader.at_eof():
                return _ended_with(self.protocol)
            await self._read()
        frame = self._frames.pop(0)
        data = frame.data.decode() if frame.opcode is Opcode.TEXT else bytes(frame.data)
        upb = parse(data, self.subprotocol, REPLY[self.service])
        return self._reply.parse(upb.SerializeToString())

    async def end(self) -> None:
        self.protocol.send_text(END.encode())
        await self._flush()


_DATA = (Opcode.TEXT, Opcode.BINARY)


def _ended_with(protocol: ClientProtocol) -> Ended:
    closed = protocol.close_rcvd
    status, message = status_of_close(
        closed.code if closed else None, closed.reason if closed else ""
    )
    return Ended(status, message)


def _ended(closed: ConnectionClosed) -> Ended:
    code = closed.rcvd.code if closed.rcvd is not None else None
    reason = closed.rcvd.reason if closed.rcvd is not None else ""
    status, message = status_of_close(code, reason)
    return Ended(status, message)


class WebSocketTransport:
    """The suite's ``listen`` for WebSocket (binary frames): mix it into a conformance class."""

    subprotocol = PROTO

    @asynccontextmanager
    async def listen(
        self, server: ServerUnderTest, *, one_connection_per_call: bool
    ) -> AsyncIterator[Connect]:
        runtime = server.runtime
        settings = WebSocketSettings(port=0, ping_interval=None)
        if one_connection_per_call:
            # Accepted sockets inherit the listener's buffer sizes (Linux).
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            settings = WebSocketSettings(port=0, ping_interval=None, write_limit=SMALL)
            ws_server, _ = await start(runtime, settings, sock=listener)
        else:
            ws_server, _ = await start(runtime, settings)
        port = ws_server.server.sockets[0].getsockname()[1]
        subprotocol = self.subprotocol

        @asynccontextmanager
        async def dial(rpc: Rpc, *, small_buffers: bool = False) -> AsyncIterator[WebSocketWire]:
            service = SERVICES[rpc]
            if small_buffers:
                slow = await SlowWire.open(port, service, f"/{rpc}", subprotocol)
                try:
                    yield slow
                finally:
                    slow.writer.transport.abort()
                return
            ws = await connect(
                f"ws://127.0.0.1:{port}/{rpc}",
                subprotocols=[Subprotocol(subprotocol)],
                max_size=None,
                ping_interval=None,
            )
            wire = WebSocketWire(ws, service, subprotocol)
            try:
                yield wire
            finally:
                ws.transport.abort()  # leaving without end(): a client that vanishes
                await ws.wait_closed()

        def connect_call(
            rpc: Rpc, *, small_buffers: bool = False
        ) -> AbstractAsyncContextManager[WebSocketWire]:
            return dial(rpc, small_buffers=small_buffers)

        try:
            yield connect_call
        finally:
            ws_server.close()
            await ws_server.wait_closed()


class JsonWebSocketTransport(WebSocketTransport):
    """The same, in the JSON subprotocol (text frames)."""

    subprotocol = JSON
