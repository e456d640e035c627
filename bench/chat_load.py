"""Chat fan-out load: R rooms x C clients, S senders per room, M messages each.

    python bench/chat_load.py --rooms 1 --clients 100 --senders 1 --messages 2000 [--rate 0]
    python bench/chat_load.py ... --transport websocket

One grpclib connection and one Chat stream per client (or, with ``--transport websocket``, one
WebSocket per client, protobuf frames). Every client joins, all wait until
every member of their room is present, then the senders send (``--rate`` messages/s each, 0 =
as fast as flow control lets them) while every client reads. Losses, duplicates and reordering
are computed from the seqs each receiver actually saw. Prints one JSON line.

Without ``--server`` it starts ``interplay serve`` on a free port with an in-memory store and
the per-stream rate limit off (a load generator is not a flood to refuse), and stops it after;
then, in the same run, it does the same against ``bench/_bare.py``, a bare grpclib fan-out with
Google's codec and none of our guarantees: the transport's own limit, reported as a ratio. Over
WebSocket the baseline is ``bench/_bare_ws.py``, a bare ``websockets.broadcast`` fan-out.
``--procs N`` spreads the clients over N processes so the generator is not the bottleneck;
clients decode with upb classes generated from the same proto. Server and client CPU seconds
are reported with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _calls import TRANSPORTS, chat_call
from _pb import chat_pb2
from _serve import BARE, BARE_WS, cpu_seconds, free_port, interplay, nodes_started, started

pb = chat_pb2()
ChatMessage = pb.ChatMessage
TEXT, JOIN = pb.ChatMessage.TEXT, pb.ChatMessage.JOIN


@dataclass
class Config:
    rooms: int
    clients: int
    senders: int
    messages: int
    rate: float
    procs: int
    timeout: float
    transport: str = "grpc"
    host: str = "127.0.0.1"


@dataclass
class Tally:
    """What one process's clients saw."""

    sent: int = 0
    delivered: int = 0
    own_echoes: int = 0
    dropped: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    gaps: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    first_send_ns: int = 0
    last_recv_ns: int = 0
    errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0


async def _client(
    ports: list[int],
    cfg: Config,
    room: int,
    index: int,
    tally: Tally,
    joined: asyncio.Event,
    start: asyncio.Event,
) -> None:
    user = f"u-{room}-{index}"
    room_id = f"room-{room}"
    sending = index < cfg.senders
    expected = cfg.senders * cfg.messages  # TEXT per receiver, own included
    seen: set[int] = set()
    port = ports[(room * cfg.clients + index) % len(ports)]  # members spread over the nodes
    try:
        async with chat_call(cfg.transport, cfg.host, port) as stream:
            await stream.send_message(ChatMessage(type=JOIN, room_id=room_id, sender_id=user))
            present: set[str] = set()
            base = -1  # the room's head at our JOIN: older TEXTs are history, not this run's
            while len(present) < cfg.clients or base < 0:
                message = await stream.recv_message()
                assert message is not None
                if message.type == JOIN:
                    if message.sender_id == user and base < 0:
                        base = message.seq
                    present.add(message.sender_id)
            joined.set()
            await start.wait()

            async def send() -> None:
                interval = 1 / cfg.rate if cfg.rate else 0.0
                began = time.perf_counter()
                tally.first_send_ns = tally.first_send_ns or time.time_ns()
                for n in range(cfg.messages):
                    if interval:
                        delay = began + n * interval - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    content = f"{user}:{n}:{time.time_ns()}"
                    await stream.send_message(
                        ChatMessage(type=TEXT, room_id=room_id, content=content, id=f"{user}-{n}")
                    )
                    tally.sent += 1

            sender = asyncio.create_task(send()) if sending else None
            last = base
            while len(seen) < expected:
                message = await stream.recv_message()
                if message is None:
                    break
                if message.type != TEXT or message.seq <= base:
                    continue
                now = time.time_ns()
                seq = message.seq
                if seq in seen:
                    tally.duplicates += 1
                    continue
                if seq < last:
                    tally.out_of_order += 1
                elif seq > last + 1:
                    tally.gaps += 1
                seen.add(seq)
                last = max(last, seq)
                if message.sender_id == user:
                    tally.own_echoes += 1
                else:
                    tally.delivered += 1
                    tally.latencies_ns.append(now - int(message.content.rsplit(":", 1)[1]))
                tally.last_recv_ns = max(tally.last_recv_ns, now)
            if sender is not None:
                await sender
            await stream.end()
    except Exception as error:  # reported, not hidden: a bench run must show its failures
        tally.errors.append(f"{user}: {error!r}")
        joined.set()
    finally:
        tally.dropped += expected - len(seen)  # a client that failed counts what it missed


async def _run_share(
    ports: list[int],
    cfg: Config,
    share: list[tuple[int, int]],
    joined_barrier: Any,
    start_barrier: Any,
) -> Tally:
    tally = Tally()
    cpu = time.process_time()
    start = asyncio.Event()
    joins = [asyncio.Event() for _ in share]
    tasks = [
        asyncio.create_task(_client(ports, cfg, room, index, tally, joins[i], start))
        for i, (room, index) in enumerate(share)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in joins)), cfg.timeout)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, joined_barrier.wait)  # every process has joined
    await loop.run_in_executor(None, start_barrier.wait)
    start.set()
    _, pending = await asyncio.wait(tasks, timeout=cfg.timeout)
    for task in pending:
        task.cancel()
        tally.errors.append("timeout: a client did not finish")
    tally.cpu_s = time.process_time() - cpu
    return tally


def _process(
    ports: list[int], cfg: Config, share: list[tuple[int, int]], barriers: Any, out: Any
) -> None:
    tally = asyncio.run(_run_share(ports, cfg, share, *barriers))
    out.put(tally)


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1e6


def run(
    port: int | list[int], cfg: Config, pid: int | list[int] | None = None, redis: int = 0
) -> dict[str, Any]:
    """One load run; with lists of ports and pids, clients spread over those nodes and the
    server CPU is theirs summed (``redis``: the pid of the Redis they share, measured apart)."""
    ports = port if isinstance(port, list) else [port]
    pids = pid if isinstance(pid, list) else [pid] if pid else []
    everyone = [(r, i) for r in range(cfg.rooms) for i in range(cfg.clients)]
    shares = [everyone[p :: cfg.procs] for p in range(cfg.procs)]
    ctx = mp.get_context("spawn")
    barriers = (ctx.Barrier(cfg.procs), ctx.Barrier(cfg.procs))
    out = ctx.Queue()
    began = time.perf_counter()
    server_cpu = sum(cpu_seconds(p) for p in pids)
    redis_cpu = cpu_seconds(redis) if redis else 0.0
    processes = [
        ctx.Process(target=_process, args=(ports, cfg, share, barriers, out)) for share in shares
    ]
    for process in processes:
        process.start()
    tallies = [out.get(timeout=cfg.timeout * 3) for _ in processes]
    for process in processes:
        process.join()
    wall = time.perf_counter() - began
    server_cpu = sum(cpu_seconds(p) for p in pids) - server_cpu
    redis_cpu = cpu_seconds(redis) - redis_cpu if redis else 0.0

    total = Tally()
    for t in tallies:
        for name in ("sent", "delivered", "own_echoes", "dropped", "duplicates", "out_of_order"):
            setattr(total, name, getattr(total, name) + getattr(t, name))
        total.gaps += t.gaps
        total.latencies_ns += t.latencies_ns
        total.errors += t.errors
    first = min((t.first_send_ns for t in tallies if t.first_send_ns), default=0)
    last = max((t.last_recv_ns for t in tallies), default=0)
    span = (last - first) / 1e9 if first and last > first else 0.0
    latencies = sorted(total.latencies_ns)
    return {
        "sent": total.sent,
        "expected_deliveries": total.sent * (cfg.clients - 1),
        "delivered": total.delivered,
        "own_echoes": total.own_echoes,
        "dropped": total.dropped,
        "duplicates": total.duplicates,
        "out_of_order": total.out_of_order,
        "gaps": total.gaps,
        "deliveries_per_s": round(total.delivered / span) if span else 0,
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50), 2),
            "p99": round(_percentile(latencies, 0.99), 2),
            "max": round(latencies[-1] / 1e6, 2) if latencies else 0.0,
        },
        "send_to_last_delivery_s": round(span, 3),
        "wall_s": round(wall, 3),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_delivery": round(server_cpu / total.delivered * 1e6, 2)
        if total.delivered
        else 0.0,
        "client_cpu_s": round(sum(t.cpu_s for t in tallies), 2),
        **(
            {
                "nodes": len(ports),
                "redis_cpu_s": round(redis_cpu, 2),
                "redis_cpu_us_per_delivery": round(redis_cpu / total.delivered * 1e6, 2)
                if total.delivered
                else 0.0,
            }
            if redis
            else {}
        ),
        "errors": total.errors[:20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2, help="per room")
    parser.add_argument("--senders", type=int, default=1, help="per room")
    parser.add_argument("--messages", type=int, default=1000, help="per sender")
    parser.add_argument("--rate", type=float, default=0.0, help="per sender; 0 = unpaced")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--server", help="HOST:PORT of a running server (default: start one)")
    parser.add_argument("--transport", default="grpc", choices=TRANSPORTS)
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare baseline run")
    parser.add_argument(
        "--nodes",
        type=int,
        default=0,
        help="also run N 'interplay serve --redis' nodes on one redis-server (clients spread "
        "over them), beside the one in-process node, in the same run",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="also run 'interplay serve --redis --workers 1' and '--workers N' (one port, "
        "SO_REUSEPORT), each on its own redis-server, with the same clients, in the same run",
    )
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument(
        "--interplay",
        help="the interplay executable to start (e.g. another checkout's, for a baseline)",
    )
    parser.add_argument(
        "--gc",
        action="store_true",
        help="report the seconds the server spent in the cyclic GC (bench/_gc_serve.py)",
    )
    parser.add_argument(
        "--data", default=":memory:", help="the server store: :memory: or a SQLite file"
    )
    parser.add_argument(
        "--rate-limit",
        default="0",
        help="the server's per-stream --max-rate: messages/s, 0 = off (the default here), or "
        "'default' for interplay serve's own (1000/s, burst 2000: a faster sender is shaped)",
    )
    args = parser.parse_args()
    if not 1 <= args.senders <= args.clients:
        parser.error("--senders must be between 1 and --clients")
    cfg = Config(
        rooms=args.rooms,
        clients=args.clients,
        senders=args.senders,
        messages=args.messages,
        rate=args.rate,
        procs=max(1, args.procs),
        timeout=args.timeout,
        transport=args.transport,
    )
    if args.server:
        cfg.host, _, port = args.server.rpartition(":")
        print(
            json.dumps(
                {"bench": "chat_load", "config": vars(cfg), "interplay": run(int(port), cfg)}
            )
        )
        return
    report: dict[str, Any] = {
        "bench": "chat_load",
        "config": vars(cfg),
        "server_rate_limit": args.rate_limit,
    }
    served = interplay(args.data, args.loop, rate_limit=args.rate_limit, executable=args.interplay)
    bare, baseline = (
        ("bare_websockets", BARE_WS) if cfg.transport == "websocket" else ("bare_grpclib", BARE)
    )
    ws_port = free_port() if cfg.transport == "websocket" else 0
    if ws_port:
        served = [*served, "--ws-port", str(ws_port)]  # the last --ws-port wins
    gc_report = None
    if args.gc:  # the same build's Python runs the server through the GC's stopwatch
        descriptor, gc_report = tempfile.mkstemp(suffix=".json")
        os.close(descriptor)
        os.environ["INTERPLAY_GC_REPORT"] = gc_report
        python = Path(served[0]).with_name("python")
        served = [str(python), str(Path(__file__).with_name("_gc_serve.py")), *served[1:]]
    for name, argv in (("interplay", served), (bare, baseline)):
        if name == bare and args.no_baseline:
            continue
        with started(argv) as (port, pid):
            report[name] = run(ws_port if name == "interplay" and ws_port else port, cfg, pid)
    if gc_report is not None:
        os.environ.pop("INTERPLAY_GC_REPORT")
        spent = json.loads(Path(gc_report).read_text())
        os.unlink(gc_report)
        ours = report["interplay"]
        ours["server_gc_s"] = round(spent["seconds"], 3)  # start-up included
        ours["server_gc_collections"] = spent["collections"]
    if args.nodes:
        with nodes_started(args.nodes, args.loop, args.rate_limit) as (ports, pids, redis):
            report["interplay_nodes"] = run(ports, cfg, pids, redis)
        one = report["interplay"]["server_cpu_us_per_delivery"]
        many = report["interplay_nodes"]
        if one:
            report["cpu_per_delivery_nodes_to_one"] = round(
                many["server_cpu_us_per_delivery"] / one, 2
            )
            report["cpu_per_delivery_nodes_and_redis_to_one"] = round(
                (many["server_cpu_us_per_delivery"] + many["redis_cpu_us_per_delivery"]) / one, 2
            )
    if args.workers:
        for count in (1, args.workers):
            with nodes_started(1, args.loop, args.rate_limit, workers=count) as started_nodes:
                ports, pids, redis = started_nodes
                report[f"interplay_workers_{count}"] = {
                    "workers": len(pids),
                    **run(ports, cfg, pids, redis),
                }
        one, many = report["interplay_workers_1"], report[f"interplay_workers_{args.workers}"]
        if one["deliveries_per_s"]:
            report["deliveries_per_s_workers_to_one"] = round(
                many["deliveries_per_s"] / one["deliveries_per_s"], 2
            )
    if bare in report and report[bare]["deliveries_per_s"]:
        report["ratio_to_bare"] = round(
            report["interplay"]["deliveries_per_s"] / report[bare]["deliveries_per_s"], 2
        )
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
