"""Every real editing trace replays through the core's operations to its recorded endContent.

The traces (CC BY 4.0, see data/editing-traces/ATTRIBUTION.md) are committed with the repository,
so a clone alone runs this; a missing folder fails the test rather than skipping it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from interplay.core.ot import TextOp

TRACES = Path(__file__).resolve().parents[2] / "data" / "editing-traces"
FILES = sorted((TRACES / "sequential_traces").glob("**/*.json.gz"))


def test_the_traces_are_there() -> None:
    assert len(FILES) >= 16, f"expected the editing traces under {TRACES}"


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(TRACES)))
def test_trace_replays_to_its_end_content(path: Path) -> None:
    trace = json.loads(gzip.decompress(path.read_bytes()))
    text: str = trace["startContent"]
    for txn in trace["txns"]:
        for position, deleted, inserted in txn["patches"]:
            text = TextOp.splice(len(text), position, deleted, inserted).apply(text)
    assert text == trace["endContent"]
