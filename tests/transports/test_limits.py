"""Connection limits over TCP: the message size limit holds before a byte of the body is read
(tested with a raw HTTP/2 client, as grpclib itself would buffer whatever the prefix announces),
and calls per connection are capped by HTTP/2 settings."""

from __future__ import annotations

import asyncio
import struct

import anyio
import h2.config
import h2.connection
import h2.events
import pytest
from grpclib.client import Channel

from helpers import chat_call, tcp_server
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.server import ServerSettings

pytestmark = pytest.mark.anyio

WINDOW = 64 * 1024  # the server's HTTP/2 stream window in these tests


async def raw_call(port: int, prefix: bytes, body: int) -> tuple[dict[str, str], int]:
    """One Chat call by hand over HTTP/2: send ``prefix`` then up to ``body`` bytes as flow
    control allows; return the trailers (or reset) and how many body bytes got sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/chat.ChatService/Chat"),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    conn.send_data(stream, prefix)
    sent = 0
    ended: dict[str, str] | None = None
    try:
        with anyio.fail_after(10):
            while ended is None:
                while sent < body and (window := conn.local_flow_control_window(stream)) > 0:
                    chunk = min(window, conn.max_outbound_frame_size, body - sent)
                    conn.send_data(stream, b"\0" * chunk)
                    sent += chunk
                writer.write(conn.data_to_send())
                await writer.drain()
                data = await reader.read(65536)
                assert data, "the server closed the connection without ending the call"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.TrailersReceived):
                        ended = dict(event.headers)  # type: ignore[arg-type]
                    elif isinstance(event, h2.events.ResponseReceived):
                        headers = dict(event.headers)  # type: ignore[arg-type]
                        if "grpc-status" in headers:  # trailers-only response
                            ended = headers
                    elif isinstance(event, h2.events.StreamReset) and ended is None:
                        ended = {"reset": str(event.error_code)}  # no status came first
    finally:
        writer.close()
    return ended, sent


async def test_an_oversized_message_is_refused_on_its_length_prefix() -> None:
    settings = ServerSettings(port=0, stream_window=WINDOW, max_message_bytes=1000)
    async with tcp_server(settings) as served:
        port, service = served.port, served.service
        # The prefix announces 64 MiB; the client then tries to push 4 MiB of it. grpclib alone
        # would read and acknowledge it all, waiting for the rest (its Buffer acks as it reads).
        trailers, sent = await raw_call(port, struct.pack(">?I", False, 64 << 20), 4 << 20)
        assert trailers.get("grpc-status") == "8", trailers  # RESOURCE_EXHAUSTED
        assert "message: 67108864 bytes is over the limit of 1000 bytes per message" in (
            trailers.get("grpc-message", "")
        )
        # Nothing past the first stream window was ever acknowledged, so at most that much of
        # the peer's bytes sat in the server's memory.
        assert sent <= WINDOW
        assert service.counters.errors == {"RESOURCE_EXHAUSTED": 1}
        # The server is fine: a normal call on a new connection works.
        channel = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as ann:
                await ann.join("ann")
                await ann.text("x" * 900, id="1")  # under the limit
                [_, text] = await ann.recv_n(2)
                assert text.seq == 1
                await ann.stream.end()
        finally:
            channel.close()


async def test_a_message_at_the_limit_is_read() -> None:
    settings = ServerSettings(port=0, max_message_bytes=1000)
    async with tcp_server(settings) as served:
        port = served.port
        # 1000 bytes exactly: read and decoded (zeros are not a valid ChatMessage, so the
        # decoder's INVALID_ARGUMENT proves the body was read, not refused on its size).
        trailers, sent = await raw_call(port, struct.pack(">?I", False, 1000), 1000)
        assert sent == 1000
        assert trailers.get("grpc-status") == "3", trailers


async def test_a_compressed_message_is_unimplemented_not_unknown() -> None:
    async with tcp_server(ServerSettings(port=0)) as served:
        port = served.port
        trailers, _ = await raw_call(port, struct.pack(">?I", True, 10), 10)
        assert trailers.get("grpc-status") == "12", trailers  # UNIMPLEMENTED
        assert "compressed messages are not supported" in trailers.get("grpc-message", "")


async def test_calls_per_connection_are_capped_and_the_next_one_waits_its_turn() -> None:
    async with tcp_server(ServerSettings(port=0, max_streams=2)) as served:
        port, service = served.port, served.service
        channel = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as ann, chat_call(channel) as bob:
                for client, user in ((ann, "ann"), (bob, "bob")):
                    await client.join(user)
                    await client.recv()
                # A third call on this connection is not let in while two are open ...
                with anyio.move_on_after(0.5) as waited:
                    async with chat_call(channel) as cat:
                        pytest.fail(f"a third call opened: {cat}")
                assert waited.cancelled_caught
                assert service.counters.streams_open == 2
                await ann.stream.end()
                await ann.recv_until(lambda m: m is None or m.sender_id == "bob")  # bob's JOIN
                assert await ann.recv() is None
                # ... and opens once one has ended.
                with anyio.fail_after(5):
                    async with chat_call(channel) as cat:
                        await cat.join("cat")
                        [joined, bob_present] = await cat.recv_n(2)
                        assert (joined.sender_id, bob_present.sender_id) == ("cat", "bob")
                        await cat.stream.end()
        finally:
            channel.close()
