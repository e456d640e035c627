"""The core's share of an edit: ``DocumentHub.handle`` per edit, N editors typing in rounds.

    python bench/ot_hub.py [--editors 8] [--edits 20000]

N editors of one document type automerge-paper's edits (positions clamped to the text) in
rounds: every editor of a round sends one edit against the revision the round began at, as
editors that each wait for their ack do when the server takes their edits together, so every
edit but a round's first is rebased over the ones before it. Only ``handle`` (and taking its
writes) is timed: no runtime, codec or network. One JSON line: microseconds per edit and how
many edits were rebased. Run it with another checkout's Python for a baseline.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from interplay.core.documents import DocumentHub, EditDocument, OpenDocument

TRACE = (
    Path(__file__).resolve().parents[1]
    / "data/editing-traces/sequential_traces/automerge-paper.json.gz"
)


def run(editors: int, edits: int) -> dict[str, object]:
    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    patches = [tuple(p) for txn in trace["txns"] for p in txn["patches"]][:edits]
    hub = DocumentHub()
    read = hub.needs(OpenDocument(session="s0", document="d"))
    assert read is not None
    hub.provide(read, None)
    for i in range(editors):
        hub.handle(OpenDocument(session=f"s{i}", document="d", user=f"u{i}"))
    handled, seconds = 0, 0.0
    for start in range(0, len(patches), editors):
        base = hub.revision("d")
        length = len(hub.text("d") or "")
        assert base is not None
        commands = []
        for i, (position, deleted, inserted) in enumerate(patches[start : start + editors]):
            position = min(position, length)
            deleted = min(deleted, length - position)
            if deleted or inserted:
                commands.append(
                    EditDocument(
                        session=f"s{i}",
                        document="d",
                        base=base,
                        position=position,
                        deleted=deleted,
                        inserted=inserted,
                        op_id=f"{start}-{i}",
                        user=f"u{i}",
                    )
                )
        began = time.perf_counter()
        for command in commands:
            hub.handle(command)
            hub.take_writes()
        seconds += time.perf_counter() - began
        handled += len(commands)
    statistics = hub.statistics()
    return {
        "bench": "ot_hub",
        "editors": editors,
        "edits": handled,
        "rebased": statistics.edits_rebased,
        "us_per_edit": round(seconds / max(1, handled) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--edits", type=int, default=20_000, help="trace patches, all editors")
    args = parser.parse_args()
    print(json.dumps(run(args.editors, args.edits)), flush=True)


if __name__ == "__main__":
    main()
