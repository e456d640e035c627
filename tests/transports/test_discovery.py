"""The standard gRPC health service and server reflection, over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.reflection.v1.reflection_grpc import ServerReflectionStub
from grpclib.reflection.v1.reflection_pb2 import ServerReflectionRequest

from helpers import runtime_for
from interplay.transports.grpc.server import ServerSettings, build_server

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def channel_to_server() -> AsyncIterator[Channel]:
    async with runtime_for() as runtime:
        server, _ = build_server(runtime, ServerSettings(port=0))
        await server.start("127.0.0.1", 0)
        assert server._server is not None
        channel = Channel("127.0.0.1", server._server.sockets[0].getsockname()[1])
        try:
            yield channel
        finally:
            channel.close()
            server.close()
            await server.wait_closed()


async def test_health_says_serving() -> None:
    async with channel_to_server() as channel:
        reply = await HealthStub(channel).Check(HealthCheckRequest())
        assert reply.status == HealthCheckResponse.SERVING


async def test_reflection_lists_and_describes_the_chat_service() -> None:
    async with (
        channel_to_server() as channel,
        ServerReflectionStub(channel).ServerReflectionInfo.open() as stream,
    ):
        await stream.send_message(ServerReflectionRequest(list_services=""))
        listed = await stream.recv_message()
        symbol = ServerReflectionRequest(file_containing_symbol="chat.ChatService")
        await stream.send_message(symbol)
        described = await stream.recv_message()
        await stream.end()
    assert listed is not None and described is not None
    names = {s.name for s in listed.list_services_response.service}
    assert {"chat.ChatService", "grpc.health.v1.Health"} <= names
    [proto] = described.file_descriptor_response.file_descriptor_proto
    assert b"GameSync" in proto and b"resume_after_seq" in proto
