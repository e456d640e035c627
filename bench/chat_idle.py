"""Many idle clients: server memory, and one TEXT to a big room.

    python bench/chat_idle.py --clients 10000 --big-room 1000 [--room-size 100] [--procs 2]
    python bench/chat_idle.py ... --transport websocket

Starts ``interplay serve`` (in-memory store, rate limit off) and connects ``--clients`` Chat
streams (100 per HTTP/2 connection, or one WebSocket each; over ``--procs`` processes):
``--big-room`` of them join one room, the rest join rooms of ``--room-size``. Every client
reads its presence (one JOIN per member: joining N people into a room is ~N²/2 messages,
which is why presence is counted here as setup, not measured as speed). Once everyone has
seen everyone in its room, the server's RSS is read from /proc, then one member of the big
room sends a TEXT and every member records when it arrived. Prints one JSON object:
connect+join time, presence messages, server RSS (total and per client), and the TEXT's
fan-out time to the last member.

Every member reads until the end, not only its presence: a member over its outbox's high
water during the joins reads the room from the log and then gets the room's members again
(DESIGN §5), and if it left those unread they would fill the window the 100 streams of its
HTTP/2 connection share, stall them all, and have the server cut them as slow consumers (what
made the full run hang at its barrier on a loaded machine). They are counted apart
(``presence_repeated``). A member whose call ends early ends the run at once, with its error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Any

from _calls import TRANSPORTS, chat_call
from _pb import chat_pb2
from _serve import free_port, interplay, started
from grpclib.client import Channel
from grpclib.encoding.proto import ProtoCodec

pb = chat_pb2()
STREAMS_PER_CONNECTION = 100
# Calls opening at once per process: a server refuses handshakes it cannot finish within its
# open timeout (websockets: 10 s), and 5 000 at once on one core is a reconnect storm.
CONNECTING = 200
# The join storm is the clients' work more than the server's: two Python processes read the
# 1.9 M presence messages of the full run, and on a loaded 2-core machine a stream of theirs
# can go 5 s (the server's default drain timeout) without reading while its connection's other
# streams are read; the server then rightly cuts it as a slow consumer, and the run ends. The
# server's queues stay bounded meanwhile (over high water a stream reads from the log), so a
# longer timeout changes nothing idle memory is made of; it only lets slow clients catch up.


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def member(
    transport: str,
    port: int,
    channel: Channel | None,
    user: str,
    room: str,
    size: int,
    joined: asyncio.Event,
    go: asyncio.Event,
    release: asyncio.Event,
    sender: bool,
    out: dict[str, Any],
    connecting: asyncio.Semaphore,
) -> None:
    await connecting.acquire()  # a bounded number of handshakes at once
    connected = False
    try:
        async with chat_call(transport, "127.0.0.1", port, channel) as stream:
            await stream.send_message(
                pb.ChatMessage(type=pb.ChatMessage.JOIN, room_id=room, sender_id=user)
            )
            await stream.recv_message()  # our JOIN's echo: connected and joined
            connecting.release()
            connected = True
            out["presence"] += 1
            present: set[str] = {user}
            while len(present) < size:
                message = await stream.recv_message()
                if message is None:
                    raise RuntimeError(f"{user}: the call ended before its presence")
                out["presence"] += 1
                if message.type == pb.ChatMessage.JOIN:
                    present.add(message.sender_id)
            joined.set()
            reading = asyncio.create_task(read_on(stream, room == "big", out))
            await go.wait()
            if sender:
                out["sent_ns"] = time.time_ns()
                await stream.send_message(
                    pb.ChatMessage(type=pb.ChatMessage.TEXT, room_id=room, content="hello, all")
                )
            await release.wait()  # idle until every process measured: leaving is traffic too
            await stream.end()
            await reading  # until the server ends the call
    finally:
        if not connected:
            connecting.release()


async def read_on(stream: Any, big: bool, out: dict[str, Any]) -> None:
    """What a member gets once it has its presence: the big room's TEXT (its arrival time),
    and the JOINs of a members list sent again (counted)."""
    while (message := await stream.recv_message()) is not None:
        if message.type == pb.ChatMessage.TEXT and big:
            out["arrivals"].append(time.time_ns())
            if len(out["arrivals"]) == out["big"]:
                out["reached"].set()
        elif message.type == pb.ChatMessage.JOIN:  # (the LEAVEs of the end are not counted)
            out["presence_repeated"] += 1


async def until_joined(
    joins: list[asyncio.Event], members: list[asyncio.Task[None]], limit: float
) -> None:
    """Until every member has its presence; the first member's error if one ends first."""
    everyone: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.gather(*(e.wait() for e in joins))
    )
    done, _ = await asyncio.wait(
        [everyone, *members], timeout=limit, return_when=asyncio.FIRST_COMPLETED
    )
    if everyone not in done:
        everyone.cancel()
        for task in members:
            task.cancel()
        await asyncio.gather(everyone, *members, return_exceptions=True)  # (each one's end seen)
        failed = [task.exception() for task in done if task.exception() is not None]
        if failed:
            raise RuntimeError(f"a member's call ended early: {failed[0]!r}")
        raise TimeoutError(f"not everyone had its presence within {limit} s")


async def run_share(
    transport: str,
    port: int,
    share: list[tuple[str, str, int, bool]],
    barriers: Any,
    limit: float,
) -> dict[str, Any]:
    grpc = transport == "grpc"
    connections = range(0, len(share), STREAMS_PER_CONNECTION) if grpc else ()
    channels = [Channel("127.0.0.1", port, codec=ProtoCodec()) for _ in connections]
    out: dict[str, Any] = {"presence": 0, "presence_repeated": 0, "arrivals": [], "sent_ns": 0}
    go, release = asyncio.Event(), asyncio.Event()
    joins = [asyncio.Event() for _ in share]
    connecting = asyncio.Semaphore(CONNECTING)
    tasks = [
        asyncio.create_task(
            member(
                transport,
                port,
                channels[i // STREAMS_PER_CONNECTION] if grpc else None,
                user,
                room,
                size,
                joins[i],
                go,
                release,
                s,
                out,
                connecting,
            )
        )
        for i, (user, room, size, s) in enumerate(share)
    ]
    out["big"] = sum(1 for _, room, _, _ in share if room == "big")
    out["reached"] = asyncio.Event()
    if not out["big"]:
        out["reached"].set()
    await until_joined(joins, tasks, limit)
    loop = asyncio.get_running_loop()
    for barrier in barriers[:2]:  # everyone joined (the parent reads RSS), then go
        await loop.run_in_executor(None, barrier.wait)
    go.set()
    await asyncio.wait_for(out["reached"].wait(), limit)
    del out["reached"]  # not picklable; every arrival is in
    await loop.run_in_executor(None, barriers[-1].wait)  # every process measured
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), limit)
    for channel in channels:
        channel.close()
    return out


def process(
    transport: str, port: int, share: Any, barriers: Any, timeout: float, queue: Any
) -> None:
    try:
        queue.put(asyncio.run(run_share(transport, port, share, barriers, timeout)))
    except Exception as error:  # the parent says why and stops at once
        queue.put({"error": str(error) or repr(error)})
        for barrier in barriers:
            barrier.abort()


def drain(queue: Any) -> list[dict[str, Any]]:
    """What the client processes have put so far."""
    got = []
    with contextlib.suppress(Exception):
        while True:
            got.append(queue.get(timeout=1))
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--big-room", type=int, default=1000, help="members of the big room")
    parser.add_argument("--room-size", type=int, default=100, help="members of the others")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="the server's slow-consumer timeout (its default: 5 s); see DRAIN_TIMEOUT",
    )
    parser.add_argument("--transport", default="grpc", choices=TRANSPORTS)
    args = parser.parse_args()

    members: list[tuple[str, str, int, bool]] = [
        (f"big-{i}", "big", args.big_room, i == 0) for i in range(args.big_room)
    ]
    rest = args.clients - args.big_room
    for i in range(rest):
        room = i // args.room_size
        size = min(args.room_size, rest - room * args.room_size)
        members.append((f"u-{i}", f"room-{room}", size, False))
    ctx = mp.get_context("spawn")
    parties = args.procs + 1
    barriers = (ctx.Barrier(parties), ctx.Barrier(parties), ctx.Barrier(args.procs))
    queue = ctx.Queue()
    argv, ws_port = [*interplay(), "--drain-timeout", str(args.drain_timeout)], 0
    if args.transport == "websocket":
        ws_port = free_port()
        argv += ["--ws-port", str(ws_port)]  # the last --ws-port wins
    with started(argv) as (port, pid):
        port = ws_port or port
        base_rss = rss_mib(pid)
        began = time.perf_counter()
        workers = [
            ctx.Process(
                target=process,
                args=(
                    args.transport,
                    port,
                    members[p :: args.procs],
                    barriers,
                    args.timeout,
                    queue,
                ),
            )
            for p in range(args.procs)
        ]
        for worker in workers:
            worker.start()
        try:
            barriers[0].wait(timeout=args.timeout)
            joined_s = time.perf_counter() - began
            rss = rss_mib(pid)
            barriers[1].wait(timeout=args.timeout)
        except threading.BrokenBarrierError:  # a client process failed (or the timeout)
            errors = [r["error"] for r in drain(queue) if "error" in r]
            for worker in workers:
                worker.terminate()
            raise SystemExit(f"chat_idle: {errors[0] if errors else 'timed out'}") from None
        results = [queue.get(timeout=args.timeout) for _ in workers]
        for worker in workers:
            worker.join()
    sent = max(r["sent_ns"] for r in results)
    arrivals = sorted(t for r in results for t in r["arrivals"])
    print(
        json.dumps(
            {
                "bench": "chat_idle",
                "config": vars(args),
                "connect_and_join_s": round(joined_s, 2),
                "presence_messages": sum(r["presence"] for r in results),
                "presence_repeated": sum(r["presence_repeated"] for r in results),
                "server_rss_mib": round(rss, 1),
                "server_rss_before_mib": round(base_rss, 1),
                "rss_kib_per_client": round((rss - base_rss) * 1024 / args.clients, 1),
                "big_room_text": {
                    "members_reached": len([t for t in arrivals if t >= sent]),
                    "of": args.big_room,
                    "p50_ms": round((arrivals[len(arrivals) // 2] - sent) / 1e6, 1),
                    "last_ms": round((arrivals[-1] - sent) / 1e6, 1),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
