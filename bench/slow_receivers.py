"""Receivers that never read (issue 20): the server's memory, and a room's other members.

    python bench/slow_receivers.py memory [--server-budget 67108864]
    python bench/slow_receivers.py freeze

``memory``: 20 rooms of 100 TEXTs of 64 KiB; then 30 calls on one connection each JOIN a room
with ``resume_after_seq=0`` and never read; the calls are dropped after ``--hold`` seconds. The
server's RSS (``/proc``) before, at its peak while they hang, and after they are gone, with its
queued-bytes budget (``--server-budget``) beside it.

``freeze``: a room of 3 000 TEXTs of 4 KiB; one member posts 20/s, another reads; six callers
2.5 s apart JOIN with ``resume_after_seq=0`` and never read. The reader's longest gap between
two TEXTs (the issue measured 17.6 s before the change).

Each starts ``interplay serve`` (in-memory store, rate limit off) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any

from _calls import chat_call
from _pb import chat_pb2
from _serve import interplay, started
from grpclib.client import Channel
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import ProtocolError, StreamTerminatedError

pb = chat_pb2()
TEXT, JOIN = pb.ChatMessage.TEXT, pb.ChatMessage.JOIN
MiB = 1 << 20


def rss(pid: int) -> int:
    """Resident bytes of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def fill(port: int, rooms: int, count: int, size: int) -> None:
    """``count`` TEXTs of ``size`` characters into each of ``rooms`` rooms, acknowledged."""
    async with chat_call("grpc", "127.0.0.1", port) as stream:
        for room in range(rooms):
            name = f"r{room}"
            await stream.send_message(pb.ChatMessage(type=JOIN, room_id=name, sender_id="filler"))
            for n in range(count):
                await stream.send_message(
                    pb.ChatMessage(type=TEXT, room_id=name, content="x" * size, id=f"{name}-{n}")
                )
            while True:  # up to its own last echo
                message = await stream.recv_message()
                if message.type == TEXT and message.seq == count:
                    break
        await stream.end()


class Dropped(AsyncExitStack):
    """Calls left without ending them (a vanished client's): grpclib's complaint is ignored."""

    async def __aexit__(self, *exc: Any) -> bool:
        with suppress(ProtocolError, StreamTerminatedError):
            await super().__aexit__(*exc)
        return False


async def memory(args: argparse.Namespace) -> dict[str, Any]:
    argv = [*interplay(), "--server-budget", str(args.server_budget)]
    with started(argv) as (port, pid):
        await fill(port, args.rooms, args.messages, args.size)
        before = rss(pid)
        peak = before
        channel = Channel("127.0.0.1", port, codec=ProtoCodec())
        async with Dropped() as stack:
            for n in range(args.calls):
                stream = await stack.enter_async_context(
                    chat_call("grpc", "127.0.0.1", port, channel)
                )
                await stream.send_message(
                    pb.ChatMessage(
                        type=JOIN,
                        room_id=f"r{n % args.rooms}",
                        sender_id=f"hog{n}",
                        resume_after_seq=0,
                    )
                )
            deadline = time.monotonic() + args.hold
            while time.monotonic() < deadline:
                peak = max(peak, rss(pid))
                await asyncio.sleep(0.05)
            channel.close()  # the calls are gone (broken, as a vanished client's)
        await asyncio.sleep(args.settle)
        after = rss(pid)
    return {
        "scenario": "memory",
        "rooms": args.rooms,
        "messages_per_room": args.messages,
        "message_bytes": args.size,
        "calls": args.calls,
        "server_budget_mib": round(args.server_budget / MiB, 1),
        "rss_before_mib": round(before / MiB, 1),
        "rss_peak_mib": round(peak / MiB, 1),
        "rss_after_mib": round(after / MiB, 1),
        "peak_over_before_mib": round((peak - before) / MiB, 1),
        "within_budget": peak - before <= args.server_budget,
    }


async def freeze(args: argparse.Namespace) -> dict[str, Any]:
    with started(interplay()) as (port, _):
        await fill(port, 1, args.history, args.size)
        async with Dropped() as stack:
            poster = await stack.enter_async_context(chat_call("grpc", "127.0.0.1", port))
            reader = await stack.enter_async_context(chat_call("grpc", "127.0.0.1", port))
            for stream, user in ((poster, "poster"), (reader, "reader")):
                await stream.send_message(pb.ChatMessage(type=JOIN, room_id="r0", sender_id=user))
            while True:  # its history window
                message = await reader.recv_message()
                if message.type == TEXT and message.seq == args.history:
                    break

            async def post() -> None:
                for n in range(args.live):
                    await poster.send_message(
                        pb.ChatMessage(type=TEXT, room_id="r0", content=f"live {n}", id=f"l{n}")
                    )
                    await asyncio.sleep(0.05)

            async def join_and_never_read() -> None:
                for n in range(6):
                    call = await stack.enter_async_context(chat_call("grpc", "127.0.0.1", port))
                    await call.send_message(
                        pb.ChatMessage(
                            type=JOIN, room_id="r0", sender_id=f"j{n}", resume_after_seq=0
                        )
                    )
                    await asyncio.sleep(args.spacing)

            tasks = [asyncio.create_task(post()), asyncio.create_task(join_and_never_read())]
            gaps, last, seen = [], time.monotonic(), 0
            while seen < args.live:
                message = await reader.recv_message()
                if message.type != TEXT:
                    continue
                now = time.monotonic()
                gaps.append(now - last)
                last, seen = now, seen + 1
            await asyncio.gather(*tasks)
    return {
        "scenario": "freeze",
        "history": args.history,
        "message_bytes": args.size,
        "live_texts": args.live,
        "joiners": 6,
        "longest_gap_ms": round(max(gaps) * 1000, 1),
        "mean_gap_ms": round(sum(gaps) / len(gaps) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["memory", "freeze"])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size", type=int, default=None, help="characters per TEXT")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds the calls hang")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before 'after'")
    parser.add_argument("--server-budget", type=int, default=64 * MiB)
    parser.add_argument("--history", type=int, default=3000)
    parser.add_argument("--live", type=int, default=300, help="TEXTs the poster sends (20/s)")
    parser.add_argument("--spacing", type=float, default=2.5, help="seconds between joiners")
    args = parser.parse_args()
    if args.size is None:
        args.size = 64 * 1024 if args.scenario == "memory" else 4096
    run = memory if args.scenario == "memory" else freeze
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
