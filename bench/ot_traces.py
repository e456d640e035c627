"""Replay every sequential editing trace through the core, beside a naive string-splice loop
over the same edits, in the same run. Prints one JSON line.

    python bench/ot_traces.py [--traces DIR] [--repeat N]

Three paths, each must end at the trace's ``endContent``:

* ``text``: the document text the server applies into (``GapText.splice``);
* ``server``: the whole server path for a position-based edit, as ``DocumentHub`` takes it:
  ``ServerDocument.splice`` (revision and op-id checks, apply, log; an edit made against the
  current revision, as every one here is, needs no general ``TextOp``);
* ``naive``: the baseline, ``s = s[:pos] + ins + s[pos + deleted:]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

from interplay.core.ot import ServerDocument
from interplay.core.ot.gaptext import GapText

DEFAULT = Path(__file__).resolve().parents[1] / "data" / "editing-traces"


def text_path(patches: list[tuple[int, int, str]]) -> str:
    text = GapText()
    splice = text.splice
    for position, deleted, inserted in patches:
        splice(position, deleted, inserted)
    return str(text)


def server_path(patches: list[tuple[int, int, str]]) -> str:
    doc = ServerDocument()
    splice = doc.splice
    for position, deleted, inserted in patches:
        splice(position, deleted, inserted, base=doc.revision, author="trace")
    return doc.text


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
        row: dict[str, Any] = {
            "trace": path.name.removesuffix(".json.gz"),
            "edits": len(patches),
            "final_chars": len(trace["endContent"]),
        }
        seconds = {}
        for name, run in (("text", text_path), ("server", server_path), ("naive", naive)):
            seconds[name], result = best_of(args.repeat, run, patches)  # type: ignore[arg-type]
            row[f"{name}_edits_per_s"] = round(len(patches) / seconds[name])
            row[f"{name}_matches_end"] = result == trace["endContent"]
        row["text_over_naive"] = round(seconds["naive"] / seconds["text"], 2)
        row["server_over_naive"] = round(seconds["naive"] / seconds["server"], 2)
        rows.append(row)
    print(json.dumps({"bench": "ot_traces", "repeat": args.repeat, "traces": rows}))


if __name__ == "__main__":
    main()
