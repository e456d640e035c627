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


class _Connection:
    def __init__(self) -> None:
        self.write_ready = anyio.Event()
        self.write_ready.set()
        self.data_sent = 0
        self.sends = 0

    def data_send_process(self) -> None:
        self.sends += 1


class _Wire:
    """What ``_send_now`` uses of grpclib's stream and connection, over a real h2 connection
    whose client opened stream 1 (its headers received)."""

    def __init__(self, window: int) -> None:
        import h2.config
        import h2.connection

        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        client.send_headers(
            1, [(":method", "POST"), (":path", "/x"), (":scheme", "http"), (":authority", "a")]
        )
        server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        server.initiate_connection()
        server.receive_data(client.data_to_send())
        server.send_headers(1, [(":status", "200")])
        self._h2_connection = server
        self.id = 1
        self.connection = _Connection()
        self.data_sent = 0
        self.written: list[bytes] = []
        self._transport = self

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def windows(self) -> tuple[int, int]:
        h2 = self._h2_connection
        return h2.outbound_flow_control_window, h2.streams[1].outbound_flow_control_window


@pytest.mark.anyio
@given(st.lists(st.binary(max_size=2000), min_size=1, max_size=8), st.integers(0, 20_000))
async def test_a_frame_built_by_hand_is_the_bytes_h2_writes(
    payloads: list[bytes], window: int
) -> None:
    """Where ``_send_now`` writes, the bytes and the windows after are h2's own; where the
    frame does not fit, it writes nothing and leaves grpclib's path to wait."""
    from interplay.transports.grpc.framing import _send_now

    ours, theirs = _Wire(window), _Wire(window)
    for payload in payloads:
        if not _send_now(ours, payload):
            assert min(theirs.windows()) < len(payload)
            assert ours.windows() == theirs.windows()
            return
        h2 = theirs._h2_connection
        h2.send_data(1, payload)
        theirs.written.append(h2.data_to_send())
        assert ours.written[-1] == theirs.written[-1]
        assert ours.windows() == theirs.windows()
    assert ours.data_sent == ours.connection.data_sent == sum(map(len, payloads))
    assert ours.connection.sends == len(payloads)


def test_a_frame_on_an_ended_stream_fails_as_h2_does() -> None:
    import h2.exceptions

    from interplay.transports.grpc.framing import _send_now

    ours, theirs = _Wire(65_535), _Wire(65_535)
    for wire in (ours, theirs):
        wire._h2_connection.send_data(1, b"", end_stream=True)
        wire._h2_connection.data_to_send()
    with pytest.raises(h2.exceptions.ProtocolError) as h2_error:
        theirs._h2_connection.send_data(1, b"x")
    with pytest.raises(h2.exceptions.ProtocolError) as our_error:
        _send_now(ours, b"x")
    assert type(our_error.value) is type(h2_error.value)
    assert ours.written == []


@pytest.mark.anyio
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=30), st.integers(1, 4000))
async def test_received_bytes_are_acknowledged_in_bursts_never_held_while_waiting(
    chunks: list[int], read_size: int
) -> None:
    """Each read acknowledges at most ``ACK_EVERY`` behind what it took, and everything it
    took once nothing more is queued: a peer never waits on bytes already read."""
    from grpclib.protocol import Buffer

    from interplay.transports.grpc.framing import ACK_EVERY, _Acks

    acked: list[int] = []
    buffer = Buffer(acked.append)
    buffer._ack_callback = _Acks(buffer)
    for size in chunks:
        buffer.add(b"x" * size, size)
    total, taken = sum(chunks), 0
    while taken + read_size <= total:
        await buffer.read(read_size)
        taken += read_size
        taken_from_queue = total - sum(item.data_size for item in buffer._unacked._queue)
        assert taken_from_queue - ACK_EVERY < sum(acked) <= taken_from_queue
        if buffer._unacked.empty():
            assert sum(acked) == total
    assert len(acked) <= max(1, len(chunks))


@pytest.mark.anyio
@given(st.lists(st.tuples(st.binary(max_size=40), st.integers(0, 30)), max_size=8))
async def test_messages_are_read_whole_however_the_frames_cut_them(
    pieces: list[tuple[bytes, int]],
) -> None:
    """``recv_message`` takes a DATA frame that holds one whole message at once (the common
    case) and reads any other cut (several messages in a frame, one over several) through
    grpclib's buffer: in order, every message once, every byte acknowledged, None at the
    half-close."""
    from types import SimpleNamespace

    from grpclib.protocol import Buffer

    from interplay.transports.grpc.framing import _Acks, frame, recv_message

    acked: list[int] = []
    buffer = Buffer(acked.append)
    buffer._ack_callback = _Acks(buffer)
    # A message with cut 0 comes in a DATA frame of its own; the others' bytes run together,
    # cut every n bytes (n: the last one's cut), across messages.
    frames: list[bytes] = []
    pending, size = b"", 1
    for message, cut in pieces:
        if cut:
            pending, size = pending + frame([message]), cut
            continue
        frames += [pending[i : i + size] for i in range(0, len(pending), size)]
        frames.append(frame([message]))
        pending = b""
    frames += [pending[i : i + size] for i in range(0, len(pending), size)]
    for chunk in frames:
        buffer.add(chunk, len(chunk))

    async def dispatched(message: bytes) -> tuple[bytes]:
        return (message,)

    connection = SimpleNamespace(messages_received=0, last_message_received=0.0)
    stream: Any = SimpleNamespace(
        _stream=SimpleNamespace(buffer=buffer, connection=connection, recv_data=buffer.read),
        _codec=SimpleNamespace(decode=lambda data, _: bytes(data)),
        _recv_type=None,
        _dispatch=SimpleNamespace(recv_message=dispatched),
        _messages_received=0,
    )
    received = [await recv_message(stream, 1 << 20) for _ in pieces]
    assert received == [message for message, _ in pieces]
    total = sum(len(chunk) for chunk in frames)
    assert sum(acked) == total  # nothing is queued behind: all of it
    buffer.eof()  # the client's half-close
    assert await recv_message(stream, 1 << 20) is None
    assert await recv_message(stream, 1 << 20) is None  # and again, once ended
