"""gRPC message framing where grpclib's falls short: several messages in one HTTP/2 write, and
a size limit checked before a message is buffered.

grpclib writes every message as its own DATA frame with its own ``transport.write`` (~7.5 µs of
h2 and grpclib work each, ../shared/notes/grpclib-and-betterproto2.md). The gRPC wire format
allows any number of length-prefixed messages in a DATA frame, so when several are queued for
one stream the writer frames them itself and writes them at once: as one DATA frame built here
when it fits the flow-control windows and the peer's frame size, else through grpclib's
``send_data``, which waits for window and splits at the peer's maximum frame size. Order is
kept: one writer per stream, batches in queue order.

This reaches into private attributes of grpclib's server ``Stream`` (``_stream``, the
initial-metadata flag) and h2's stream state (``_send_now``);
``tests/transports/test_framing.py`` pins the behaviour against grpclib's and Google's grpcio
clients. Per-message ``SendMessage`` events are not dispatched for batches (we register no
listeners for them).

Receiving, grpclib trusts the 4-byte length prefix: it reads (and acknowledges to HTTP/2 flow
control) as many bytes as the prefix announces, up to 4 GiB for one message. ``recv_message``
checks the prefix against a limit first and ends the call with RESOURCE_EXHAUSTED without reading
the body, so a peer can make the server hold at most one stream window of its bytes.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from google.protobuf.message import DecodeError
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.metadata import encode_grpc_message
from grpclib.protocol import AckedData
from grpclib.server import Stream
from h2.connection import ConnectionInputs
from h2.stream import StreamInputs

_PREFIX = struct.Struct(">?I")  # compressed flag, message length
# An HTTP/2 DATA frame's header (RFC 9113 §4.1): 24-bit length, type 0, no flags, stream id.
_DATA_HEADER = struct.Struct(">HBxxL")


def frame(messages: list[bytes]) -> bytes:
    """The gRPC length-prefixed framing of ``messages``, concatenated."""
    pack = _PREFIX.pack
    parts: list[bytes] = []
    for message in messages:
        parts.append(pack(False, len(message)))
        parts.append(message)
    return b"".join(parts)


async def send_many(stream: Stream[Any, Any], messages: list[bytes]) -> None:
    """Send already-encoded ``messages`` on a server stream, in order, in one write (one
    message too: grpclib's ``send_message`` would only add its codec and event dispatch)."""
    if not stream._send_initial_metadata_done:
        await stream.send_initial_metadata()
    data = frame(messages)
    if not _send_now(stream._stream, data):
        await stream._stream.send_data(data)
    # grpclib's send_message would also set ``_send_message_done``: it is read only for unary
    # responses, and setting it un-shares the stream's attribute dict (832 bytes a stream,
    # by tracemalloc).


def send_now(stream: Stream[Any, Any], messages: list[bytes]) -> bool:
    """``send_many``'s write if it can be made at once, without waiting (the call's headers
    sent, room in the flow-control windows and in the transport): True; else False, nothing
    sent, and the caller sends them with ``send_many``. Synchronous: the runtime's flusher
    writes many sessions' rounds in one turn of the loop with it."""
    if not stream._send_initial_metadata_done:
        return False
    return _send_now(stream._stream, frame(messages))


def _send_now(h2_stream: Any, data: bytes) -> bool:
    """Write ``data`` as one DATA frame built here, if it fits the flow-control windows and
    the peer's frame size and the connection can take a write now; False (nothing done) if
    not, and grpclib's ``send_data`` waits and splits instead.

    What h2's ``send_data`` does for such a frame, without its frame objects (hyperframe's
    ``DataFrame``, flags and padding, ~40 % of a delivery's HTTP/2 cost): the same state
    checks (a closed stream raises as there), the same window accounting, the frame's 9-byte
    header by hand, and whatever h2 had queued before it written first, so order is kept.
    ``tests/transports/test_framing.py`` checks the bytes equal h2's."""
    connection = h2_stream.connection
    if not connection.write_ready.is_set():
        return False
    h2 = h2_stream._h2_connection
    stream_id = h2_stream.id
    state = h2.streams.get(stream_id)
    size = len(data)
    if (
        state is None
        or size > h2.max_outbound_frame_size
        or size > h2.outbound_flow_control_window
        or size > state.outbound_flow_control_window
    ):
        return False
    h2.state_machine.process_input(ConnectionInputs.SEND_DATA)
    state.state_machine.process_input(StreamInputs.SEND_DATA)
    state.outbound_flow_control_window -= size
    h2.outbound_flow_control_window -= size
    header = _DATA_HEADER.pack(size >> 8, size & 0xFF, stream_id)
    h2_stream._transport.write(b"".join((h2.data_to_send(), header, data)))
    h2_stream.data_sent += size
    connection.data_sent += size
    connection.data_send_process()
    return True


async def end_without_reset(stream: Stream[Any, Any], status: Status, message: str) -> None:
    """End the call with ``status`` in its trailers, without the RST_STREAM grpclib sends
    after every non-OK status: a grpclib client discards what it has received but not yet read
    once its stream is reset, so after a flush (shutdown) the reset would lose the flushed
    messages on the client's side. Sends no trailers if the call already ended."""
    if stream._send_trailing_metadata_done or stream._cancel_done:
        return
    headers = (
        []
        if stream._send_initial_metadata_done
        else [(":status", "200"), ("content-type", stream._content_type)]
    )
    headers.append(("grpc-status", str(status.value)))
    headers.append(("grpc-message", encode_grpc_message(message)))
    await stream._stream.send_headers(headers, end_stream=True)
    stream._send_trailing_metadata_done = True


# Received bytes acknowledged to HTTP/2 flow control in one call, at most this far behind.
ACK_EVERY = 4096


class _Acks:
    """grpclib acknowledges every DATA frame it hands on with its own call into h2 (window
    bookkeeping, then a flush): ~8 % of a chat message's CPU. Installed as a stream buffer's
    acknowledger, this one adds them up while more frames are queued behind the one just
    taken, and acknowledges the sum once it reaches ``ACK_EVERY`` or nothing is queued (the
    reader is about to wait: all it took is acknowledged first, so a peer is never held by
    bytes already read, and a reader that stops holds back at most ``ACK_EVERY`` more)."""

    __slots__ = ("_ack", "_pending", "_queue")

    def __init__(self, buffer: Any) -> None:
        self._ack = buffer._ack_callback
        self._queue = buffer._unacked
        self._pending = 0

    def __call__(self, size: int) -> None:
        pending = self._pending + size
        if pending >= ACK_EVERY or self._queue.empty():
            self._pending = 0
            self._ack(pending)
        else:
            self._pending = pending


def read_ahead(stream: Stream[Any, Any]) -> None:
    """Acknowledge what ``stream``'s client sends in bursts (``_Acks``); call once per call,
    before its first ``recv_message``."""
    buffer = stream._stream.buffer
    buffer._ack_callback = _Acks(buffer)


async def recv_message(stream: Stream[Any, Any], max_bytes: int) -> Any:
    """The next message from the client, or None at its half-close: grpclib's
    ``Stream.recv_message`` with ``max_bytes`` enforced on the length prefix."""
    h2_stream = stream._stream
    taken, data = await _whole_frame(h2_stream.buffer, max_bytes)
    if not taken:
        prefix = await _read(h2_stream, 5, "its 5-byte length prefix")
        if not prefix:
            return None
        length = _checked_length(prefix, max_bytes)
        data = await _read(h2_stream, length, f"its {length} bytes")
    elif data is None:
        return None
    try:
        message = stream._codec.decode(data, stream._recv_type)
    except DecodeError as error:  # grpclib would end the call with UNKNOWN
        name = stream._recv_type.DESCRIPTOR.full_name
        raise GRPCError(Status.INVALID_ARGUMENT, f"message: not a valid {name} ({error})") from None
    (message,) = await stream._dispatch.recv_message(message)
    stream._messages_received += 1
    connection = h2_stream.connection
    connection.messages_received += 1
    connection.last_message_received = time.monotonic()
    return message


def _checked_length(prefix: bytes | memoryview, max_bytes: int) -> int:
    """The length a message's prefix announces, refused if compressed or over ``max_bytes``."""
    compressed, length = _PREFIX.unpack_from(prefix)
    if compressed:
        raise GRPCError(
            Status.UNIMPLEMENTED, "grpc-encoding: compressed messages are not supported"
        )
    if length > max_bytes:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"message: {length} bytes is over the limit of {max_bytes} bytes per message",
        )
    return int(length)


async def _whole_frame(buffer: Any, max_bytes: int) -> tuple[bool, bytes | None]:
    """``(True, message)`` when the next DATA frame holds exactly one message, whole (what
    clients send for a small message): taken from grpclib's queue of frames at once, instead
    of two reads (prefix, body) through its ``Buffer``, each with its own bookkeeping;
    ``(True, None)``: the client half-closed. ``(False, None)``: not so, and the frame taken
    (if any) is left in the buffer, as ``Buffer.read`` would have, for ``_read``.
    Acknowledged to flow control as ``Buffer.read`` does."""
    if buffer._acked_size or buffer._eof:  # a frame begun, or the end queued: the buffer's
        return False, None
    data, size, ack = await buffer._unacked.get()
    if not ack:  # grpclib's end-of-stream marker
        return True, None
    buffer._ack_callback(ack)
    if size >= 5 and _PREFIX.unpack_from(data)[1] == size - 5:
        _checked_length(data, max_bytes)
        return True, data[5:]
    buffer._acked.append(AckedData(memoryview(data), size))
    buffer._acked_size += size
    return False, None


async def _read(h2_stream: Any, size: int, what: str) -> bytes:
    """``size`` bytes of the request, or INVALID_ARGUMENT if the client half-closed inside a
    message (grpclib asserts there, and the call would end UNKNOWN)."""
    try:
        data: bytes = await h2_stream.recv_data(size)
    except AssertionError:  # grpclib's Buffer.read: "Received less data than expected"
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"message: the request ended before {what}"
        ) from None
    return data
