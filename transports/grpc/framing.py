"""Several gRPC messages in one HTTP/2 write.

grpclib writes every message as its own DATA frame with its own ``transport.write`` (~7.5 µs of
h2 and grpclib work each, ../shared/notes/grpclib-and-betterproto2.md). The gRPC wire format
allows any number of length-prefixed messages in a DATA frame, so when several are queued for
one stream the writer frames them itself and hands them to grpclib's HTTP/2 stream in one
``send_data``, which still honours flow control (it waits for window and splits at the peer's
maximum frame size). Order is kept: one writer per stream, batches in queue order.

This reaches into two private attributes of grpclib's server ``Stream`` (``_stream`` and the
initial-metadata flag); ``tests/transports/test_framing.py`` pins the behaviour against grpclib's
and Google's grpcio clients. Per-message ``SendMessage`` events are not dispatched for batches
(we register no listeners for them).
"""

from __future__ import annotations

import struct
from typing import Any

from grpclib.server import Stream

_PREFIX = struct.Struct(">?I")  # compressed flag, message length


def frame(messages: list[bytes]) -> bytes:
    """The gRPC length-prefixed framing of ``messages``, concatenated."""
    pack = _PREFIX.pack
    parts: list[bytes] = []
    for message in messages:
        parts.append(pack(False, len(message)))
        parts.append(message)
    return b"".join(parts)


async def send_many(stream: Stream[Any, Any], messages: list[bytes]) -> None:
    """Send already-encoded ``messages`` on a server stream, in order, in one write."""
    if len(messages) == 1:
        await stream.send_message(messages[0])
        return
    if not stream._send_initial_metadata_done:
        await stream.send_initial_metadata()
    await stream._stream.send_data(frame(messages))
    stream._send_message_done = True
