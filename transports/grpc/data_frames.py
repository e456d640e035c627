"""DATA frames taken off the socket without h2's frame objects: the receiving half of what
``framing._send_now`` is for sending.

For every frame it receives, h2 4.4 copies it into its frame buffer, builds hyperframe's
``DataFrame`` with its ``Flags`` and padding fields, formats ``repr(frame)`` for a trace log
no one reads, runs both state machines through their transition tables, builds a
``DataReceived`` event, and grpclib dispatches that event by name: about a sixth of a
server's CPU for an edit, all of it for one small message on one stream.

``receive`` does the same for the frames a client sends most: a DATA frame with no
flags (no padding, not the stream's end) on a stream both h2 and grpclib know, open for
receiving, within both flow-control windows and the frame size we announced. It makes the
same window accounting h2 makes and hands the payload to grpclib's stream buffer as grpclib's
``process_data_received`` does. Every other frame (HEADERS, SETTINGS,
PING, WINDOW_UPDATE, RST_STREAM, END_STREAM, padding, an unknown stream, a window overrun, a
frame too large, a frame cut by the read) goes to h2 as before, in order, each run of them in
one call, so h2 raises every protocol error itself; a frame cut by a read is completed there.

``tests/transports/test_data_frames.py`` feeds the same bytes, cut every way, to a protocol
with this path and one without, and requires the same buffers, windows and bytes sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpclib.client
from grpclib.protocol import H2Protocol, UnackedData
from h2.connection import ConnectionState
from h2.stream import StreamState

_HEADER = 9
_OPEN = (ConnectionState.SERVER_OPEN, ConnectionState.CLIENT_OPEN)  # DATA changes neither
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)


def install(protocol: H2Protocol) -> None:
    """Route ``protocol``'s received bytes through ``receive``. Before ``connection_made``:
    uvloop's transport looks ``data_received`` up once, when it is given the protocol."""
    slow = protocol.data_received

    def data_received(data: bytes) -> None:
        receive(protocol, slow, data)

    protocol.data_received = data_received  # type: ignore[method-assign]


def receive(protocol: H2Protocol, slow: Callable[[bytes], None], data: bytes) -> None:
    """Take ``data``'s plain DATA frames here and give everything else to ``slow`` (grpclib's
    ``data_received``) in order: each run of other frames in one call, and first the bytes
    that complete a frame h2 holds part of."""
    size = len(data)
    incoming = protocol.connection._connection.incoming_buffer
    start = incoming._preamble_len  # the client's preface, or what is left of it: h2's
    held = len(incoming._data)
    if not start and held:  # h2 holds the start of a frame: complete it there
        header = bytes(incoming._data[:_HEADER])
        header += data[: _HEADER - len(header)]
        start = _HEADER + int.from_bytes(header[:3], "big") - held if len(header) == 9 else size
    if start:
        if start >= size:
            slow(data)
            return
        slow(data[:start])
        if protocol.connection.is_closing():
            return
    other = start  # where the frames not taken here begin
    while size - start >= _HEADER:
        length = int.from_bytes(data[start : start + 3], "big")
        end = start + _HEADER + length
        if end > size:
            break
        if data[start + 3] or data[start + 4] or not length:  # not DATA; flags; empty
            start = end
            continue
        if other < start:  # the frames before this one go first: they may open its stream
            slow(data[other:start])
            if protocol.connection.is_closing():
                return
        if not _take(protocol, data, start, length):
            other = start
            start = end
            continue
        start = other = end
    if other < size:
        slow(data[other:] if other else data)


def _take(protocol: H2Protocol, data: bytes, start: int, length: int) -> bool:
    """Hand the DATA frame at ``start`` to its stream as h2 and grpclib would, if it is one
    they would take without a question; False (nothing done) if h2 must see it."""
    h2 = protocol.connection._connection
    window = h2._inbound_flow_control_window_manager
    if (
        h2.state_machine.state not in _OPEN
        or h2.incoming_buffer._headers_buffer  # a header block is open: only CONTINUATION
        or length > h2.max_inbound_frame_size
        or length > window.current_window_size
    ):
        return False
    stream_id = int.from_bytes(data[start + 5 : start + 9], "big") & 0x7FFFFFFF
    state = h2.streams.get(stream_id)
    stream = protocol.processor.streams.get(stream_id)
    if (
        state is None
        or stream is None
        or state.state_machine.state not in _RECEIVING
        or not state.state_machine.headers_received
        or state._expected_content_length is not None
        or length > state._inbound_window_manager.current_window_size
    ):
        return False
    window.current_window_size -= length
    state._inbound_window_manager.current_window_size -= length
    state._actual_content_length += length
    payload = data[start + _HEADER : start + _HEADER + length]
    stream.buffer._unacked.put_nowait(UnackedData(payload, length, length))
    stream.data_received += length
    connection: Any = protocol.connection
    connection.data_received += length
    connection.last_data_received = time.monotonic()
    return True


class Channel(grpclib.client.Channel):
    """grpclib's ``Channel``, its connections' plain DATA frames taken by ``receive``: a
    client reading many small messages (an editor's acks and the others' edits, a chat
    member's room) pays a quarter of what h2's path costs for each."""

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        install(protocol)
        return protocol
