"""Concurrent editing through the gRPC server: N editors type their share of a real trace.

    python bench/ot_concurrent.py --editors 8 [--edits 4000] [--server HOST:PORT]
    python bench/ot_concurrent.py --documents 200 --editors 4 --rate 5 [--seconds 20] [--procs 2]
    python bench/ot_concurrent.py --editors 8 --nodes 2 [--edits 4000]

Editor i takes patches i, i+N, i+2N, ... of a sequential trace (positions clamped to its own
text, since the others are typing too), applies each through the core's ``ClientDocument``,
sends it as a position-based ``EditOperation`` and waits for its ack before the next (the wire
carries one splice per op), with a random pause between edits (0-2 ms by default). Everyone,
the server included, must end with the same text. Prints one JSON line: ops/s, ack latency,
server CPU (seconds, per op, share of a core), convergence.

With ``--documents D`` (or ``--rate``), D documents of N editors each are typed at human
speed: every editor sends ``--rate`` edits per second (on a fixed schedule, from a random
phase) for ``--seconds``; the N editors of a document share one connection (a client process
per user would not fit the load generator on this machine), each on its own stream.
``--procs P`` spreads the documents over P client processes (document d in process d mod P),
which start typing together, so that the load generator does not fall behind the schedule;
their edits, latencies and CPU are summed and ``converged`` covers them all.

With ``--nodes N``, the same run first against one server (the in-process store), then against
N ``interplay serve --redis`` nodes on one redis-server (``appendfsync always``), editor i on
node i mod N, so every edit is committed by compare-and-set against the others' (DESIGN §10):
one JSON line with both reports, the nodes' CPU summed and Redis's apart.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import time
from pathlib import Path
from typing import Any

from _serve import cpu_seconds, interplay, nodes_started, started
from grpclib.const import Cardinality
from grpclib.encoding.proto import ProtoCodec

from interplay.core.ot import ClientDocument, TextOp
from interplay.transports.grpc.data_frames import Channel
from interplay.transports.grpc.generated import chat_pb2 as pb

TRACE = (
    Path(__file__).resolve().parents[1]
    / "data/editing-traces/sequential_traces/automerge-paper.json.gz"
)


def apply_message(doc: ClientDocument, message: Any) -> None:
    kind = message.operation
    if kind == "ack":
        doc.ack()
    elif kind == "noop":
        doc.receive(TextOp.identity(doc.server_length), revision=message.version)
    elif kind in ("insert", "delete", "replace"):
        deleted = 0 if kind == "insert" else message.length
        inserted = "" if kind == "delete" else message.content
        op = TextOp.splice(doc.server_length, message.position, deleted, inserted)
        doc.receive(op, revision=message.version)


async def editor(
    channel: Channel,
    document: str,
    name: str,
    patches: list[tuple[int, int, str]],
    total: int,
    start: asyncio.Event,
    all_done: asyncio.Event,
    result: dict[str, Any],
    edits: dict[str, int],
    max_delay: float,
    in_flight: int,
    rate: float,
) -> None:
    rng = random.Random(f"{document}/{name}")
    latencies = []
    if True:
        async with channel.request(
            "/chat.ChatService/CollaborativeEdit",
            Cardinality.STREAM_STREAM,
            pb.EditOperation,
            pb.EditOperation,
        ) as stream:
            await stream.send_request()
            await stream.send_message(
                pb.EditOperation(document_id=document, user_id=name, operation="join")
            )
            snapshot = await stream.recv_message()
            assert snapshot is not None
            # No undo: this process hosts every editor, and undo costs each a transform per step.
            doc = ClientDocument(
                snapshot.content,
                revision=snapshot.version,
                undo_limit=0,
                max_in_flight=in_flight,
            )
            first = snapshot.version
            room = asyncio.Event()  # set while fewer than max_in_flight ops await their ack
            room.set()
            progress = asyncio.Event()  # set on every message received
            sent_at: list[float] = []  # send times of the ops in flight, oldest first

            async def read() -> None:
                while (message := await stream.recv_message()) is not None:
                    apply_message(doc, message)
                    progress.set()
                    if message.operation == "ack":
                        latencies.append(time.perf_counter() - sent_at.pop(0))
                        room.set()

            reader = asyncio.create_task(read())
            await start.wait()
            due = time.perf_counter() + (rng.random() / rate if rate else 0.0)
            for n, (position, deleted, inserted) in enumerate(patches):
                if rate:  # a fixed schedule: a late ack delays this edit, not the next ones
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    due += 1 / rate
                while len(doc.in_flight) >= in_flight:
                    room.clear()
                    await room.wait()
                length = len(doc.text)
                position = min(position, length)
                deleted = min(deleted, length - position)
                if not (deleted or inserted):
                    continue
                send = doc.edit(TextOp.splice(length, position, deleted, inserted), group=False)
                assert send is not None  # room in flight, so nothing is buffered
                kind = "replace" if deleted and inserted else ("insert" if inserted else "delete")
                sent_at.append(time.perf_counter())
                await stream.send_message(
                    pb.EditOperation(
                        document_id=document,
                        user_id=name,
                        operation=kind,
                        position=position,
                        length=deleted,
                        content=inserted,
                        version=send.base,
                        op_id=f"{name}-{n}",
                    )
                )
                result["edits"] = result.get("edits", 0) + 1
                edits[document] = edits.get(document, 0) + 1
                if max_delay and not rate:
                    await asyncio.sleep(rng.random() * max_delay)
            while doc.in_flight:
                room.clear()
                await room.wait()
            result["done"] = result.get("done", 0) + 1
            if result["done"] == total:
                all_done.set()
            # Keep applying everyone else's edits; once all are done, catch up to the end.
            await all_done.wait()
            while doc.revision < first + edits[document]:
                progress.clear()
                await progress.wait()
            reader.cancel()
            result.setdefault("texts", {})[(document, name)] = (doc.text, doc.revision)
            result.setdefault("latencies", []).extend(latencies)
            await stream.end()


async def final_text(channel: Channel, document: str) -> tuple[str, int]:
    async with channel.request(
        "/chat.ChatService/CollaborativeEdit",
        Cardinality.STREAM_STREAM,
        pb.EditOperation,
        pb.EditOperation,
    ) as stream:
        await stream.send_request()
        await stream.send_message(pb.EditOperation(document_id=document, operation="join"))
        snapshot = await stream.recv_message()
        await stream.end()
        assert snapshot is not None
        return snapshot.content, snapshot.version


async def run(
    host: str,
    ports: list[int],
    editors: int,
    edits: int,
    max_delay: float,
    in_flight: int,
    documents: int = 1,
    rate: float = 0.0,
    seconds: float = 20.0,
    share: tuple[int, int] = (0, 1),
    barriers: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """One load run; ``share`` (p, P): this process types documents p, p + P, ... of them
    all, starting once every process has joined (``barriers``: two ``multiprocessing``
    barriers, joined and started)."""
    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    patches = [tuple(p) for txn in trace["txns"] for p in txn["patches"]]
    patches = patches[: int(rate * seconds) * editors] if rate else patches[:edits]
    result: dict[str, Any] = {}
    counts: dict[str, int] = {}
    start, all_done = asyncio.Event(), asyncio.Event()
    names = [f"doc{d}" for d in range(documents)] if documents > 1 else ["bench"]
    names = names[share[0] :: share[1]]
    # One connection per editor for one document; one per document for many (see above);
    # editor i (document i) on node i mod len(ports).
    channels = {
        (name, i): Channel(host, ports[(i + d) % len(ports)], codec=ProtoCodec())
        for d, name in enumerate(names)
        for i in range(editors if documents == 1 else 1)
    }
    tasks = [
        asyncio.create_task(
            editor(
                channels[(name, i if documents == 1 else 0)],
                name,
                f"e{i}",
                patches[i::editors],  # type: ignore[arg-type]
                editors * len(names),
                start,
                all_done,
                result,
                counts,
                max_delay,
                in_flight,
                rate,
            )
        )
        for name in names
        for i in range(editors)
    ]
    await asyncio.sleep(0.5 + len(tasks) / 1000)  # everyone joined
    if barriers is not None:  # ... in every process
        loop = asyncio.get_running_loop()
        for barrier in barriers:
            await loop.run_in_executor(None, barrier.wait)
    began = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
    start.set()
    await all_done.wait()
    ended = time.monotonic()
    elapsed = ended - began  # every edit acknowledged
    await asyncio.gather(*tasks)
    finals = {name: await final_text(channels[(name, 0)], name) for name in names}
    for channel in channels.values():
        channel.close()
    texts = result.get("texts", {})
    latencies = sorted(result.get("latencies", []))
    return {
        "bench": "ot_concurrent",
        "documents": len(names),
        "editors": editors,
        "rate": rate,
        "max_delay_ms": 0.0 if rate else max_delay * 1000,
        "in_flight": in_flight,
        "edits": result.get("edits", 0),
        "server_revisions": sum(revision for _, revision in finals.values()),
        "ops_per_s": round(result.get("edits", 0) / elapsed),
        "ack_latency_ms": _percentiles(latencies),
        # every editor of every document holds its server's text and revision
        "converged": len(texts) == editors * len(names)
        and all(finals[document] == held for (document, _), held in texts.items()),
        "final_chars": sum(len(text) for text, _ in finals.values()),
        "wall_s": round(elapsed, 3),
        "_span": (began, ended, latencies),  # for merging processes' reports (run_procs)
    }


def _percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max of sorted ``latencies`` (seconds), in milliseconds."""

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)}


def _process(host: str, ports: list[int], args: tuple[Any, ...], share: Any, out: Any) -> None:
    """One client process of ``run_procs``."""
    barriers, *rest = share
    cpu = time.process_time()
    report = asyncio.run(run(host, ports, *args, share=tuple(rest), barriers=barriers))
    report["client_cpu_s"] = time.process_time() - cpu
    out.put(report)


def run_procs(host: str, ports: list[int], args: tuple[Any, ...], procs: int) -> dict[str, Any]:
    """``run`` with its documents spread over ``procs`` client processes, started together:
    one report, with edits, latencies and client CPU summed, ops/s over the span from the
    first start to the last process done, ``converged`` if every process converged."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barriers = (ctx.Barrier(procs), ctx.Barrier(procs))
    out = ctx.Queue()
    processes = [
        ctx.Process(target=_process, args=(host, ports, args, (barriers, p, procs), out))
        for p in range(procs)
    ]
    for process in processes:
        process.start()
    reports = [out.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    spans = [report.pop("_span") for report in reports]
    began, ended = min(span[0] for span in spans), max(span[1] for span in spans)
    latencies = sorted(latency for span in spans for latency in span[2])
    edits = sum(report["edits"] for report in reports)
    merged = dict(reports[0])
    merged.update(
        {
            "documents": sum(report["documents"] for report in reports),
            "procs": procs,
            "edits": edits,
            "server_revisions": sum(report["server_revisions"] for report in reports),
            "ops_per_s": round(edits / (ended - began)),
            "ack_latency_ms": _percentiles(latencies),
            "converged": all(report["converged"] for report in reports),
            "final_chars": sum(report["final_chars"] for report in reports),
            "wall_s": round(ended - began, 3),
            "client_cpu_s": round(sum(report["client_cpu_s"] for report in reports), 2),
        }
    )
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--edits", type=int, default=4000, help="trace patches, all editors")
    parser.add_argument(
        "--max-delay-ms", type=float, default=2.0, help="random pause between an editor's edits"
    )
    parser.add_argument(
        "--in-flight", type=int, default=1, help="ops an editor may have awaiting their ack"
    )
    parser.add_argument("--documents", type=int, default=1, help="documents, N editors each")
    parser.add_argument(
        "--rate", type=float, default=None, help="edits/s per editor (default 5 with --documents)"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="how long editors type at --rate"
    )
    parser.add_argument("--server", help="HOST:PORT of a running server (default: start one)")
    parser.add_argument(
        "--nodes",
        type=int,
        default=0,
        help="also run N 'interplay serve --redis' nodes on one redis-server, editors spread "
        "over them, after one server in the same run",
    )
    parser.add_argument(
        "--interplay",
        help="the interplay executable to start (e.g. another checkout's, for a baseline)",
    )
    parser.add_argument(
        "--procs",
        type=int,
        default=1,
        help="client processes, the documents spread over them (with --documents)",
    )
    args = parser.parse_args()
    if args.procs > 1 and args.documents < args.procs:
        parser.error("--procs: needs at least as many --documents (a document is typed by one)")
    rate = args.rate if args.rate is not None else (5.0 if args.documents > 1 else 0.0)

    def measure(host: str, ports: list[int], pids: list[int], redis: int = 0) -> dict[str, Any]:
        server_cpu, client_cpu = sum(map(cpu_seconds, pids)), time.process_time()
        redis_cpu = cpu_seconds(redis) if redis else 0.0
        load = (
            args.editors,
            args.edits,
            args.max_delay_ms / 1000,
            args.in_flight,
            args.documents,
            rate,
            args.seconds,
        )
        if args.procs > 1:
            report = run_procs(host, ports, load, args.procs)
        else:
            report = asyncio.run(run(host, ports, *load))
            report.pop("_span")
            report["client_cpu_s"] = round(time.process_time() - client_cpu, 2)
        if pids:
            used = sum(map(cpu_seconds, pids)) - server_cpu
            report["server_cpu_s"] = round(used, 2)
            report["server_cpu_us_per_op"] = round(used / max(1, report["edits"]) * 1e6, 1)
            report["server_cpu_percent"] = round(100 * used / report["wall_s"], 1)
        if redis:
            used = cpu_seconds(redis) - redis_cpu
            report["nodes"] = len(ports)
            report["redis_cpu_s"] = round(used, 2)
            report["redis_cpu_us_per_op"] = round(used / max(1, report["edits"]) * 1e6, 1)
        return report

    if args.server:
        host, _, port = args.server.rpartition(":")
        print(json.dumps(measure(host, [int(port)], [])), flush=True)
        return
    argv = interplay()
    if args.interplay:  # a baseline build: only the flags every release knew (no WebSocket)
        argv = [args.interplay, "serve", "--port", "0", "--data", ":memory:", "--max-rate", "0"]
    with started(argv) as (port, pid):
        report = measure("127.0.0.1", [port], [pid])
    if args.nodes:
        with nodes_started(args.nodes) as (ports, pids, redis):
            many = measure("127.0.0.1", ports, pids, redis)
        report = {"bench": "ot_concurrent", "one_node": report, "nodes": many}
        if report["one_node"]["ops_per_s"]:
            report["ops_per_s_nodes_to_one"] = round(
                many["ops_per_s"] / report["one_node"]["ops_per_s"], 2
            )
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
