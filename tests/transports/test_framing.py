"""Several messages per HTTP/2 write: the framing, and Google's grpcio client reading it."""

from __future__ import annotations

import struct
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import generate_grpcio_stubs, runtime_for
from interplay.runtime import Settings
from interplay.transports.grpc.framing import frame
from interplay.transports.grpc.server import ServerSettings, build_server


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_framing_is_the_grpc_length_prefixed_format(messages: list[bytes]) -> None:
    data, parsed = frame(messages), []
    while data:
        compressed, length = struct.unpack(">?I", data[:5])
        assert not compressed
        parsed.append(data[5 : 5 + length])
        data = data[5 + length :]
    assert parsed == messages


@pytest.fixture(scope="module")
def grpcio_stubs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """Google's generated classes and stubs for protos/chat.proto (grpcio-tools)."""
    return generate_grpcio_stubs(tmp_path_factory.mktemp("grpcio"))


def grpcio_chat_burst(pb: Any, pb_grpc: Any, port: int, count: int) -> list[tuple[int, str]]:
    """A grpcio client joins, sends ``count`` TEXTs without waiting, reads its echoes."""
    import grpc

    def requests() -> Any:
        yield pb.ChatMessage(type=pb.ChatMessage.JOIN, room_id="r", sender_id="g")
        for i in range(count):
            yield pb.ChatMessage(type=pb.ChatMessage.TEXT, room_id="r", content=f"m{i}", id=f"{i}")

    got = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        calls = pb_grpc.ChatServiceStub(channel).Chat(requests(), timeout=30)
        for message in calls:
            if message.type == pb.ChatMessage.TEXT:
                got.append((message.seq, message.content))
                if len(got) == count:
                    calls.cancel()
                    break
    return got


@pytest.mark.anyio
async def test_grpcio_reads_batched_writes_in_order(grpcio_stubs: tuple[Any, Any]) -> None:
    async with runtime_for(settings=Settings()) as runtime:
        server, service = build_server(runtime, ServerSettings(port=0))
        await server.start("127.0.0.1", 0)
        try:
            assert server._server is not None
            port = server._server.sockets[0].getsockname()[1]
            count = 1500  # within the default burst of 2000
            got = await anyio.to_thread.run_sync(grpcio_chat_burst, *grpcio_stubs, port, count)
        finally:
            server.close()
            await server.wait_closed()
        assert got == [(i + 1, f"m{i}") for i in range(count)]
        # The burst queued faster than one message per write: batches were really sent.
        assert service.counters.writes < service.counters.deliveries
