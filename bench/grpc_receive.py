"""What receiving one small gRPC message costs the server's HTTP/2 layer: h2's path (grpclib's
``H2Protocol.data_received``) against ``transports/grpc/data_frames`` in front of it.

One process, no sockets: the same bytes (a client's DATA frames, ``--per-read`` to a read,
each one message of ``--size`` bytes, over ``--streams`` calls) are fed to a server protocol
with the fast path and to one without, alternating ``--rounds`` times; each round's reads are
taken off the calls' buffers and acknowledged as the readers would. Reports µs per message,
the median of the rounds, each way, and their ratio. A CPU-bound loop in one process, so
the pairs hold on a shared machine where the end-to-end benchmarks' spread hides the cut.

    python bench/grpc_receive.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time
from typing import Any

from grpclib.config import Configuration
from grpclib.protocol import AbstractHandler, H2Protocol
from h2.config import H2Configuration
from h2.connection import H2Connection

from interplay.transports.grpc import data_frames

_DATA = struct.Struct(">HBxxL")  # a DATA frame's header, no flags
REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/chat.ChatService/CollaborativeEdit"),
    (":authority", "bench"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]


class _Transport:
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class _Handler(AbstractHandler):
    def accept(self, stream: Any, headers: Any, release_stream: Any) -> None:
        pass

    def cancel(self, stream: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _protocol(fast: bool) -> H2Protocol:
    config = Configuration(_keepalive_time=None).__for_server__()
    h2_config = H2Configuration(client_side=False, header_encoding="ascii")
    protocol = H2Protocol(_Handler(), config, h2_config)
    if fast:
        data_frames.install(protocol)
    protocol.connection_made(_Transport())  # type: ignore[arg-type]
    return protocol


def _reads(streams: int, per_read: int, size: int, count: int) -> tuple[bytes, list[bytes]]:
    """The client's preface and requests, then ``count`` reads of DATA frames."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding="ascii"))
    client.initiate_connection()
    ids = [1 + 2 * i for i in range(streams)]
    for stream_id in ids:
        client.send_headers(stream_id, REQUEST)
    opening = client.data_to_send()
    message = struct.pack(">?I", False, size) + b"m" * size
    reads = []
    n = 0
    for _ in range(count):
        frames = []
        for _ in range(per_read):
            stream_id = ids[n % streams]
            n += 1
            frames.append(_DATA.pack(len(message) >> 8, len(message) & 0xFF, stream_id))
            frames.append(message)
        reads.append(b"".join(frames))
    return opening, reads


def _round(fast: bool, opening: bytes, reads: list[bytes], per_read: int) -> float:
    """µs per message for one protocol fed every read, its buffers emptied after each."""
    protocol = _protocol(fast)
    protocol.data_received(opening)
    streams = list(protocol.processor.streams.items())
    ack = protocol.connection.ack
    feed = protocol.data_received
    start = time.perf_counter()
    for data in reads:
        feed(data)
        for stream_id, stream in streams:
            queue = stream.buffer._unacked
            taken = 0
            while not queue.empty():
                taken += queue.get_nowait().ack_size
            if taken:
                ack(stream_id, taken)
    elapsed = time.perf_counter() - start
    return elapsed / (len(reads) * per_read) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--per-read", type=int, default=1, help="DATA frames in one socket read")
    parser.add_argument("--size", type=int, default=40, help="bytes of each message")
    parser.add_argument("--reads", type=int, default=20_000, help="reads per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    opening, reads = _reads(args.streams, args.per_read, args.size, args.reads)
    times: dict[str, list[float]] = {"h2": [], "data_frames": []}
    for _ in range(args.rounds):
        times["h2"].append(_round(False, opening, reads, args.per_read))
        times["data_frames"].append(_round(True, opening, reads, args.per_read))
    h2, fast = (statistics.median(times[k]) for k in ("h2", "data_frames"))
    print(
        json.dumps(
            {
                "bench": "grpc_receive",
                "config": vars(args),
                "us_per_message": {"h2": round(h2, 2), "data_frames": round(fast, 2)},
                "rounds_us": {k: [round(t, 2) for t in v] for k, v in times.items()},
                "h2_to_data_frames": round(h2 / fast, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
