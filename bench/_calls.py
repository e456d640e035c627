"""One Chat call as the benchmarks' clients use it, over gRPC or WebSocket.

Both have grpclib's ``Stream`` method names (``send_message``, ``recv_message``, ``end``), so a
client is written once: ``async with chat_call(transport, host, port, channel) as stream``.
WebSocket calls use the ``interplay.v1.proto`` subprotocol (binary frames, the same upb
messages), one connection per call; gRPC calls share ``channel`` (or get one each).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from _pb import chat_pb2
from grpclib.const import Cardinality
from grpclib.encoding.proto import ProtoCodec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, InvalidHandshake

from interplay.transports.grpc.data_frames import Channel

pb = chat_pb2()
TRANSPORTS = ("grpc", "websocket")
END = '{"end":true}'
HANDSHAKE_ATTEMPTS = 5


class WebSocketChat:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send_message(self, message: Any) -> None:
        await self.ws.send(message.SerializeToString())

    async def recv_message(self) -> Any:
        try:
            return pb.ChatMessage.FromString(await self.ws.recv())
        except ConnectionClosedOK:
            return None

    async def end(self) -> None:
        """Half-close, then read what the server flushes until it closes (a client that stops
        reading holds the flush back, and its own close, for the close timeout)."""
        await self.ws.send(END)
        async for _ in self.ws:
            pass


@asynccontextmanager
async def chat_call(
    transport: str, host: str, port: int, channel: Channel | None = None
) -> AsyncIterator[Any]:
    if transport == "websocket":
        for attempt in range(HANDSHAKE_ATTEMPTS):
            try:
                ws = await connect(
                    f"ws://{host}:{port}/chat",
                    subprotocols=["interplay.v1.proto"],  # type: ignore[list-item]
                    max_size=None,
                    ping_interval=None,
                    open_timeout=120,
                )
                break
            except (OSError, InvalidHandshake, TimeoutError):
                # A server busy past its handshake timeout closes the connection: as a real
                # client would, come back a moment later.
                if attempt == HANDSHAKE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        async with ws:
            yield WebSocketChat(ws)
        return
    own = channel is None
    channel = channel or Channel(host, port, codec=ProtoCodec())
    try:
        async with channel.request(
            "/chat.ChatService/Chat", Cardinality.STREAM_STREAM, pb.ChatMessage, pb.ChatMessage
        ) as stream:
            await stream.send_request()
            yield stream
    finally:
        if own:
            channel.close()
