"""Replay every sequential editing trace through the core's OT apply path, beside a naive
string-splice loop over the same edits, in the same run. Prints one JSON line.

    python bench/ot_traces.py [--traces DIR] [--repeat N]

Each edit goes through ``TextOp.splice(...)`` then ``TextOp.apply`` (what the server does with
an incoming position-based edit); the baseline is ``s = s[:pos] + ins + s[pos + deleted:]``.
Both must end at the trace's ``endContent``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

from interplay.core.ot import TextOp

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "editing-traces"


def core(patches: list[tuple[int, int, str]]) -> str:
    text = ""
    for position, deleted, inserted in patches:
        text = TextOp.splice(len(text), position, deleted, inserted).apply(text)
    return text


def naive(patches: list[tuple[int, int, str]]) -> str:
    text = ""
    for position, deleted, inserted in patches:
        text = text[:position] + inserted + text[position + deleted :]
    return text


def best_of(repeat: int, run: Any, patches: list[tuple[int, int, str]]) -> tuple[float, str]:
    best, result = float("inf"), ""
    for _ in range(repeat):
        began = time.perf_counter()
        result = run(patches)
        best = min(best, time.perf_counter() - began)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per trace")
    args = parser.parse_args()
    rows = []
    for path in sorted((args.traces / "sequential_traces").glob("*.json.gz")):
        trace = json.loads(gzip.decompress(path.read_bytes()))
        patches = [tuple(p) for txn in trace["txns"] for p in txn["patches"]]
        core_s, core_text = best_of(args.repeat, core, patches)  # type: ignore[arg-type]
        naive_s, naive_text = best_of(args.repeat, naive, patches)  # type: ignore[arg-type]
        rows.append(
            {
                "trace": path.name.removesuffix(".json.gz"),
                "edits": len(patches),
                "final_chars": len(trace["endContent"]),
                "core_edits_per_s": round(len(patches) / core_s),
                "naive_edits_per_s": round(len(patches) / naive_s),
                "core_over_naive": round(naive_s / core_s, 3),
                "core_matches_end": core_text == trace["endContent"],
                "naive_matches_end": naive_text == trace["endContent"],
            }
        )
    print(json.dumps({"bench": "ot_traces", "repeat": args.repeat, "traces": rows}))


if __name__ == "__main__":
    main()
