"""The DATA-frame receive path beside h2's (``data_frames``): the same bytes, cut every way,
leave a server protocol with it exactly as they leave one without it."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.protocol import AbstractHandler, H2Protocol
from h2.config import H2Configuration
from h2.connection import H2Connection
from hypothesis import given
from hypothesis import strategies as st

from helpers import chat_call, tcp_server
from interplay.runtime import Settings
from interplay.transports.grpc import data_frames

WINDOW = 65_535  # small windows, so a run of frames can overrun them; by default the
CONNECTION_WINDOW = 4 * WINDOW  # connection's is larger, so a stream's can be overrun alone
REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/chat.ChatService/Chat"),
    (":authority", "test"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


RESPONSE = [(":status", "200"), ("content-type", "application/grpc")]


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Handler(AbstractHandler):
    def __init__(self) -> None:
        self.accepted: list[int] = []
        self.cancelled: list[int] = []
        self.closed = False

    def accept(self, stream: Any, headers: Any, release_stream: Any) -> None:
        self.accepted.append(stream.id)

    def cancel(self, stream: Any) -> None:
        self.cancelled.append(stream.id)

    def close(self) -> None:
        self.closed = True


def _server(
    fast: bool, connection_window: int = CONNECTION_WINDOW, stream_window: int = WINDOW
) -> tuple[H2Protocol, _Transport, _Handler]:
    handler = _Handler()
    h2_config = H2Configuration(
        client_side=False,
        header_encoding="ascii",
        validate_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_inbound_headers=False,
        normalize_outbound_headers=False,
    )
    config = Configuration(
        http2_connection_window_size=connection_window,
        http2_stream_window_size=stream_window,
        _keepalive_time=None,  # no timer: these protocols run without an event loop
    ).__for_server__()
    protocol = H2Protocol(handler, config, h2_config)
    if fast:
        data_frames.install(protocol)
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, handler


def _client(
    fast: bool, calls: int, connection_window: int = CONNECTION_WINDOW, stream_window: int = WINDOW
) -> tuple[H2Protocol, _Transport, _Handler]:
    """A client protocol (as a ``Channel`` makes one) that has sent ``calls`` requests."""
    handler = _Handler()
    h2_config = H2Configuration(client_side=True, header_encoding="ascii")
    config = Configuration(
        http2_connection_window_size=connection_window,
        http2_stream_window_size=stream_window,
        _keepalive_time=None,
    ).__for_client__()
    protocol = H2Protocol(handler, config, h2_config)
    if fast:
        data_frames.install(protocol)
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    for stream_id in range(1, 2 * calls, 2):
        protocol.connection._connection.send_headers(stream_id, REQUEST)
        protocol.processor.register(protocol.connection.create_stream(stream_id=stream_id))
    protocol.connection.flush()
    return protocol, transport, handler


def _data_frame(stream_id: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HBBBL", len(payload) >> 8, len(payload) & 0xFF, 0, flags, stream_id) + (
        payload
    )


def _state(
    protocol: H2Protocol, transport: _Transport, handler: _Handler, ack: bool = True
) -> dict[str, Any]:
    """What the peer and the calls can see of a server protocol, taking what each stream's
    buffer holds (as its reader would) and, if ``ack``, acknowledging it."""
    h2 = protocol.connection._connection
    received: dict[int, list[tuple[bytes, int, int]]] = {}
    processor_streams = getattr(protocol.processor, "streams", {})
    for stream_id, stream in sorted(processor_streams.items()):
        queue = stream.buffer._unacked
        items = []
        while not queue.empty():
            data, size, ack = queue.get_nowait()
            items.append((bytes(data), size, ack))
        received[stream_id] = items
        acked = sum(ack for _, _, ack in items)
        if ack and acked and not transport.closed:
            protocol.connection.ack(stream_id, acked)
    return {
        "received": received,
        "written": b"".join(transport.written),
        "closed": transport.closed,
        "accepted": handler.accepted,
        "cancelled": handler.cancelled,
        "connection_state": h2.state_machine.state,
        "connection_window": h2._inbound_flow_control_window_manager.current_window_size,
        "streams": {
            stream_id: (
                state.state_machine.state,
                state._inbound_window_manager.current_window_size,
                state._actual_content_length,
            )
            for stream_id, state in sorted(h2.streams.items())
        },
        "data_received": protocol.connection.data_received,
    }


KINDS = ["open", "data", "data", "data", "data", "ping", "settings", "window", "end", "reset"]
KINDS += ["raw", "flood", "open-block", "too-large"]


def _shared_step(draw: st.DrawFn, kind: str, peer: H2Connection, open_ids: list[int]) -> bool:
    """The frames either side may send (DATA of every shape, PING, SETTINGS, WINDOW_UPDATE),
    sent by ``peer`` if ``kind`` is one of them: True."""
    if kind == "data":
        stream_id = draw(st.sampled_from(open_ids))
        room = min(peer.local_flow_control_window(stream_id), 3000)
        payload = draw(st.binary(max_size=room))
        pad = draw(st.none() | st.integers(0, 20))
        if pad is not None and len(payload) + pad + 1 > room:
            pad = None
        peer.send_data(stream_id, payload, pad_length=pad)
    elif kind == "ping":
        peer.ping(draw(st.binary(min_size=8, max_size=8)))
    elif kind == "settings":
        peer.update_settings({4: draw(st.integers(0, 2**20))})  # INITIAL_WINDOW_SIZE
    elif kind == "window":
        peer.increment_flow_control_window(draw(st.integers(1, 1000)))
    else:
        return False
    return True


@st.composite
def _client_bytes(draw: st.DrawFn) -> bytes:
    """What a client sends: the preface, requests, DATA of every shape (padded, ending the
    stream, empty), PINGs, SETTINGS, WINDOW_UPDATEs, resets, and frames h2 must refuse (an
    unknown stream, stream 0, an ended stream, past the window)."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding="ascii"))
    client.initiate_connection()
    out = [client.data_to_send()]
    open_ids: list[int] = []
    ended: list[int] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(KINDS))
        if kind == "open" or not open_ids:
            stream_id = client.get_next_available_stream_id()
            client.send_headers(stream_id, REQUEST)
            open_ids.append(stream_id)
        elif _shared_step(draw, kind, client, open_ids):
            pass
        elif kind == "end":
            stream_id = draw(st.sampled_from(open_ids))
            client.end_stream(stream_id)
            open_ids.remove(stream_id)
            ended.append(stream_id)
        elif kind == "reset":
            stream_id = draw(st.sampled_from(open_ids))
            client.reset_stream(stream_id)
            open_ids.remove(stream_id)
            ended.append(stream_id)
        else:
            out.append(client.data_to_send())
            out.append(_hostile(draw, kind, open_ids, [0, 1001, *ended, *open_ids]))
        out.append(client.data_to_send())
    return b"".join(out)


SERVER_KINDS = ["respond", "data", "data", "data", "data", "ping", "settings", "window"]
SERVER_KINDS += ["trailers", "reset", "raw", "flood", "open-block", "too-large"]


@st.composite
def _server_bytes(draw: st.DrawFn, opening: bytes, calls: int) -> bytes:
    """What a server sends a client that opened ``calls`` calls (``opening``): its
    settings, response headers, DATA of every shape, trailers, PINGs, SETTINGS, resets, and
    frames h2 must refuse."""
    server = H2Connection(H2Configuration(client_side=False, header_encoding="ascii"))
    server.initiate_connection()
    server.receive_data(opening)
    out = [server.data_to_send()]
    waiting = list(range(1, 2 * calls, 2))
    responded: list[int] = []
    ended: list[int] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(SERVER_KINDS))
        if (kind == "respond" or not responded) and waiting:
            stream_id = draw(st.sampled_from(waiting))
            server.send_headers(
                stream_id, [(":status", "200"), ("content-type", "application/grpc")]
            )
            waiting.remove(stream_id)
            responded.append(stream_id)
        elif not responded:
            break  # every call ended
        elif _shared_step(draw, kind, server, responded):
            pass
        elif kind in ("trailers", "reset"):
            stream_id = draw(st.sampled_from(responded))
            if kind == "trailers":
                server.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
            else:
                server.reset_stream(stream_id)
            responded.remove(stream_id)
            ended.append(stream_id)
        else:
            out.append(server.data_to_send())
            out.append(_hostile(draw, kind, responded, [0, 1001, *ended, *waiting, *responded]))
        out.append(server.data_to_send())
    return b"".join(out)


def _hostile(draw: st.DrawFn, kind: str, open_ids: list[int], any_ids: list[int]) -> bytes:
    """Frames written by hand that h2 must refuse, or take as h2 would."""
    if kind == "flood":  # past the stream's window, not the connection's
        target = draw(st.sampled_from(open_ids))
        return b"".join(_data_frame(target, b"f" * 16_000) for _ in range(draw(st.integers(1, 6))))
    if kind == "too-large":  # over the 16 384 bytes a frame may have by default
        return _data_frame(draw(st.sampled_from(open_ids)), b"b" * 16_385)
    if kind == "open-block":  # a HEADERS frame without END_HEADERS, then DATA: refused
        block = struct.pack(">HBBBL", 0, 3, 1, 0, 2001) + b"\x82\x86\x84"
        return block + _data_frame(draw(st.sampled_from(open_ids)), b"d")
    target = draw(st.sampled_from(any_ids))
    flags = draw(st.sampled_from([0, 0x1, 0x20]))
    return _data_frame(target, draw(st.binary(max_size=200)), flags)


def _feed_alike(
    fast: tuple[H2Protocol, _Transport, _Handler],
    plain: tuple[H2Protocol, _Transport, _Handler],
    sent: bytes,
    data: st.DataObject,
) -> None:
    """Feed both protocols ``sent``, cut where drawn, and compare them after every read."""
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(sent)), max_size=12))))
    start = 0
    for end in [*cuts, len(sent)]:
        chunk = sent[start:end]
        start = end
        if not chunk:
            continue
        for protocol, _, _ in (fast, plain):
            protocol.data_received(chunk)
        ack = data.draw(st.booleans())
        if _assert_alike(_state(*fast, ack=ack), _state(*plain, ack=ack)):
            return


def _assert_alike(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """The states are the same, or both connections closed on a protocol error (True)."""
    if expected["closed"]:  # a protocol error: closed too. grpclib closes without a flush, so
        # without the fast path the answers to the frames before the error in that read (a
        # SETTINGS ack) are never written, with it they may be (they went to h2 in a call of
        # their own); calls opened in that read may have been accepted before the close.
        assert got["closed"]
        assert got["written"].startswith(expected["written"])
        return True
    assert got == expected
    return False


WINDOWS = st.sampled_from([(CONNECTION_WINDOW, WINDOW), (WINDOW, CONNECTION_WINDOW)])


@given(st.integers(1, 4), WINDOWS, st.data())
def test_a_client_is_left_as_without_the_fast_path_by_what_a_server_sends(
    calls: int, windows: tuple[int, int], data: st.DataObject
) -> None:
    fast, plain = _client(True, calls, *windows), _client(False, calls, *windows)
    opening = b"".join(fast[1].written)
    assert opening == b"".join(plain[1].written)
    sent = data.draw(_server_bytes(opening, calls))
    _feed_alike(fast, plain, sent, data)


@given(_client_bytes(), st.data())
def test_the_same_bytes_leave_the_same_state_with_and_without_the_fast_path(
    sent: bytes, data: st.DataObject
) -> None:
    windows = data.draw(WINDOWS)
    _feed_alike(_server(True, *windows), _server(False, *windows), sent, data)


@pytest.mark.parametrize(
    ("connection_window", "streams", "taken"),
    [(CONNECTION_WINDOW, [1], 64_000), (WINDOW, [1, 3], 48_000 + 16_000)],
    ids=["the stream's window", "the connection's window"],
)
def test_a_run_past_a_window_is_refused_by_h2_as_without_the_fast_path(
    connection_window: int, streams: list[int], taken: int
) -> None:
    client = H2Connection(H2Configuration(client_side=True, header_encoding="ascii"))
    client.initiate_connection()
    for stream_id in streams:
        client.send_headers(stream_id, REQUEST)
    each = CONNECTION_WINDOW // 16_000 + 1 if len(streams) == 1 else 3
    flood = (_data_frame(i, b"x" * 16_000) for i in streams for _ in range(each))
    sent = client.data_to_send() + b"".join(flood)
    fast, plain = _server(True, connection_window), _server(False, connection_window)
    for protocol, _, _ in (fast, plain):
        protocol.data_received(sent)
    got, expected = _state(*fast, ack=False), _state(*plain, ack=False)
    assert expected["closed"]  # FLOW_CONTROL_ERROR: the connection closed
    assert _assert_alike(got, expected)
    assert got["data_received"] == taken  # what the windows let in, no more


def test_plain_data_frames_do_not_reach_h2s_frame_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    receive = H2Connection._receive_data_frame

    def counting(self: H2Connection, frame: Any) -> Any:
        parsed.append(frame.stream_id)
        return receive(self, frame)

    monkeypatch.setattr(H2Connection, "_receive_data_frame", counting)
    client = H2Connection(H2Configuration(client_side=True, header_encoding="ascii"))
    client.initiate_connection()
    client.send_headers(1, REQUEST)
    client.send_headers(3, REQUEST)
    fast, transport, _ = _server(fast=True)
    fast.data_received(client.data_to_send())
    for i in range(20):
        client.send_data(1 + 2 * (i % 2), b"\0\0\0\0\x03abc")
    client.end_stream(3)
    fast.data_received(client.data_to_send())  # 20 frames and an END_STREAM in one read
    state = _state(fast, transport, _Handler())
    # stream 3: its ten, then the END_STREAM frame's empty DATA and grpclib's end marker
    assert [len(items) for items in state["received"].values()] == [10, 12]
    assert parsed == [3]  # the END_STREAM frame only


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {"use_uvloop": True}), "asyncio"])
async def test_the_server_takes_a_clients_data_frames_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over a real connection, under uvloop too (its transport binds ``data_received`` when
    the protocol is made): a call's messages reach the room, and h2 parses none of them."""
    parsed: list[int] = []
    receive = H2Connection._receive_data_frame

    def counting(self: H2Connection, frame: Any) -> Any:
        if not self.config.client_side:
            parsed.append(frame.stream_id)
        return receive(self, frame)

    monkeypatch.setattr(H2Connection, "_receive_data_frame", counting)
    async with tcp_server(settings=Settings()) as served:
        channel = Channel("127.0.0.1", served.port)
        try:
            async with chat_call(channel) as ann, chat_call(channel) as bob:
                await bob.join("bob")
                await ann.join("ann")
                for i in range(30):
                    await ann.text(f"m{i}")
                got = await bob.recv_until(lambda m: m.content == "m29")
                assert [m.content for m in got if m.content] == [f"m{i}" for i in range(30)]
                assert parsed == []
                await ann.stream.end()
                await bob.stream.end()
        finally:
            channel.close()


@pytest.mark.parametrize("when", ["before the response headers", "after the trailers"])
def test_data_a_call_cannot_take_goes_to_h2_on_the_client(when: str) -> None:
    fast, plain = _client(True, 1), _client(False, 1)
    server = H2Connection(H2Configuration(client_side=False, header_encoding="ascii"))
    server.initiate_connection()
    server.receive_data(b"".join(fast[1].written))
    if when == "after the trailers":
        server.send_headers(1, RESPONSE)
        server.send_headers(1, [("grpc-status", "0")], end_stream=True)
    sent = server.data_to_send() + _data_frame(1, b"\0\0\0\0\x01x")
    for protocol, _, _ in (fast, plain):
        protocol.data_received(sent)
    _assert_alike(_state(*fast), _state(*plain))
