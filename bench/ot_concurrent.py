"""Concurrent editing through the gRPC server: N editors type their share of a real trace.

    python bench/ot_concurrent.py --editors 8 [--edits 4000] [--server HOST:PORT]

Editor i takes patches i, i+N, i+2N, ... of a sequential trace (positions clamped to its own
text, since the others are typing too), applies each through the core's ``ClientDocument``,
sends it as a position-based ``EditOperation`` and waits for its ack before the next (the wire
carries one splice per op), with a random pause between edits (0-2 ms by default). Everyone,
the server included, must end with the same text. Prints one JSON line: ops/s, ack latency,
convergence.
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

from _serve import cpu_seconds, interplay, started
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.encoding.proto import ProtoCodec

from interplay.core.ot import ClientDocument, TextOp
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
    host: str,
    port: int,
    name: str,
    patches: list[tuple[int, int, str]],
    total: int,
    start: asyncio.Event,
    all_done: asyncio.Event,
    result: dict[str, Any],
    max_delay: float,
    in_flight: int,
) -> None:
    rng = random.Random(name)
    channel = Channel(host, port, codec=ProtoCodec())
    latencies = []
    try:
        async with channel.request(
            "/chat.ChatService/CollaborativeEdit",
            Cardinality.STREAM_STREAM,
            pb.EditOperation,
            pb.EditOperation,
        ) as stream:
            await stream.send_request()
            await stream.send_message(
                pb.EditOperation(document_id="bench", user_id=name, operation="join")
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
            for n, (position, deleted, inserted) in enumerate(patches):
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
                        document_id="bench",
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
                if max_delay:
                    await asyncio.sleep(rng.random() * max_delay)
            while doc.in_flight:
                room.clear()
                await room.wait()
            result["done"] = result.get("done", 0) + 1
            if result["done"] == total:
                all_done.set()
            # Keep applying everyone else's edits; once all are done, catch up to the end.
            await all_done.wait()
            while doc.revision < first + result["edits"]:
                progress.clear()
                await progress.wait()
            reader.cancel()
            result.setdefault("texts", {})[name] = (doc.text, doc.revision)
            result.setdefault("latencies", []).extend(latencies)
            await stream.end()
    finally:
        channel.close()


async def final_text(host: str, port: int) -> tuple[str, int]:
    channel = Channel(host, port, codec=ProtoCodec())
    try:
        async with channel.request(
            "/chat.ChatService/CollaborativeEdit",
            Cardinality.STREAM_STREAM,
            pb.EditOperation,
            pb.EditOperation,
        ) as stream:
            await stream.send_request()
            await stream.send_message(pb.EditOperation(document_id="bench", operation="join"))
            snapshot = await stream.recv_message()
            await stream.end()
            assert snapshot is not None
            return snapshot.content, snapshot.version
    finally:
        channel.close()


async def run(
    host: str, port: int, editors: int, edits: int, max_delay: float, in_flight: int
) -> dict[str, Any]:
    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    patches = [tuple(p) for txn in trace["txns"] for p in txn["patches"]][:edits]
    result: dict[str, Any] = {}
    start, all_done = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(
            editor(
                host,
                port,
                f"e{i}",
                patches[i::editors],  # type: ignore[arg-type]
                editors,
                start,
                all_done,
                result,
                max_delay,
                in_flight,
            )
        )
        for i in range(editors)
    ]
    await asyncio.sleep(0.5)  # everyone joined
    began = time.perf_counter()
    start.set()
    await all_done.wait()
    elapsed = time.perf_counter() - began  # every edit acknowledged
    await asyncio.gather(*tasks)
    server_text, server_revision = await final_text(host, port)
    texts = result.get("texts", {})
    latencies = sorted(result.get("latencies", []))

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "bench": "ot_concurrent",
        "editors": editors,
        "max_delay_ms": max_delay * 1000,
        "in_flight": in_flight,
        "edits": result.get("edits", 0),
        "server_revision": server_revision,
        "ops_per_s": round(result.get("edits", 0) / elapsed),
        "ack_latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "converged": all(
            text == server_text and rev == server_revision for text, rev in texts.values()
        )
        and len(texts) == editors,
        "final_chars": len(server_text),
        "wall_s": round(elapsed, 3),
    }


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
    parser.add_argument("--server", help="HOST:PORT of a running server (default: start one)")
    args = parser.parse_args()

    def measure(host: str, port: int, pid: int | None) -> dict[str, Any]:
        server_cpu, client_cpu = cpu_seconds(pid) if pid else 0.0, time.process_time()
        report = asyncio.run(
            run(host, port, args.editors, args.edits, args.max_delay_ms / 1000, args.in_flight)
        )
        report["server_cpu_s"] = round(cpu_seconds(pid) - server_cpu, 2) if pid else None
        report["client_cpu_s"] = round(time.process_time() - client_cpu, 2)
        return report

    if args.server:
        host, _, port = args.server.rpartition(":")
        print(json.dumps(measure(host, int(port), None)), flush=True)
        return
    with started(interplay()) as (port, pid):
        print(json.dumps(measure("127.0.0.1", port, pid)), flush=True)


if __name__ == "__main__":
    main()
