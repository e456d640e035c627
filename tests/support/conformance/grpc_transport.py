"""The gRPC side of the suite: grpclib calls behind the neutral ``Wire``.

Calls share one in-memory connection (grpclib.testing.ChannelFor) unless the test asks for a
connection per call; then the server listens on a real socket and each call dials its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.config import Configuration
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.server import Server
from grpclib.testing import ChannelFor

from helpers import open_call
from interplay.testing.transport.calls import CallEnded, Ended
from interplay.testing.transport.server import Connect, Rpc, ServerUnderTest
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.generated.chat import (
    ChatMessage,
    EditOperation,
    GameAction,
    GameState,
)
from interplay.transports.grpc.service import ChatService

METHODS: dict[Rpc, tuple[str, type, type]] = {
    "chat": ("/chat.ChatService/Chat", ChatMessage, ChatMessage),
    "edit": ("/chat.ChatService/CollaborativeEdit", EditOperation, EditOperation),
    "game": ("/chat.ChatService/GameSync", GameAction, GameState),
}

# The smallest HTTP/2 windows: a call that does not read holds the server back at once.
SMALL_WINDOWS = Configuration(http2_stream_window_size=65_535, http2_connection_window_size=65_535)


class GrpcWire:
    """One grpclib stream; the status comes from the trailers (or a trailers-only response)."""

    def __init__(self, stream: Stream[Any, Any]) -> None:
        self.stream = stream

    async def send(self, message: Any) -> None:
        try:
            await self.stream.send_message(message)
        except StreamTerminatedError:
            ended = self._status()
            if ended is None:
                raise
            raise CallEnded(ended) from None

    async def recv(self) -> Any:
        try:
            message = await self.stream.recv_message()
            if message is not None:
                return message
            if self.stream._end_done:  # half-closed: read the trailers as grpclib means it
                await self.stream.recv_trailing_metadata()
                return Ended("OK")
        except GRPCError as error:  # the status, raised by grpclib
            return Ended(error.status.name, error.message or "")
        except StreamTerminatedError:
            # grpclib's client: the server's RST_STREAM after error trailers cancels a
            # pending read; the trailers themselves arrived first and carry the status.
            pass
        ended = self._status()
        if ended is None:
            raise AssertionError("the stream ended without a status")
        return ended

    async def end(self) -> None:
        await self.stream.end()

    def _status(self) -> Ended | None:
        """The status received so far, if any."""
        try:
            self.stream._maybe_raise()
        except GRPCError as error:
            return Ended(error.status.name, error.message or "")
        headers = dict(self.stream._stream.headers or ())
        if self.stream._stream.trailers is not None or "grpc-status" in headers:
            return Ended("OK")
        return None


@asynccontextmanager
async def grpc_call(channel: Channel, rpc: Rpc, **kwargs: Any) -> AsyncIterator[GrpcWire]:
    """One call on ``channel``; leaving without ``end()`` resets it (a vanishing client)."""
    path, request, reply = METHODS[rpc]
    async with open_call(channel, path, request, reply, **kwargs) as stream:
        yield GrpcWire(stream)


class GrpcTransport:
    """The suite's ``listen`` for gRPC: mix it into a conformance class."""

    @asynccontextmanager
    async def listen(
        self, server: ServerUnderTest, *, one_connection_per_call: bool
    ) -> AsyncIterator[Connect]:
        service = ChatService(server.runtime)
        if not one_connection_per_call:
            async with ChannelFor([service], codec=WireCodec()) as channel:

                def shared(
                    rpc: Rpc, *, small_buffers: bool = False
                ) -> AbstractAsyncContextManager[GrpcWire]:
                    assert not small_buffers, "small buffers need one_connection_per_call"
                    return grpc_call(channel, rpc)

                yield shared
            return

        listening = Server([service], codec=WireCodec())
        await listening.start("127.0.0.1", 0)
        assert listening._server is not None
        port = listening._server.sockets[0].getsockname()[1]

        @asynccontextmanager
        async def dial(rpc: Rpc, *, small_buffers: bool = False) -> AsyncIterator[GrpcWire]:
            config = SMALL_WINDOWS if small_buffers else None
            channel = Channel("127.0.0.1", port, codec=WireCodec(), config=config)
            try:
                async with grpc_call(channel, rpc) as wire:
                    yield wire
            finally:
                channel.close()

        try:
            yield dial
        finally:
            listening.close()
            await listening.wait_closed()
