"""The server a benchmark runs against: the one given, or `interplay serve` started for it."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def server(address: str | None) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of ``address`` ("HOST:PORT"), or of a fresh ``interplay serve`` on a
    free port with an in-memory store and the per-stream rate limit off (a load generator is
    not a flood to refuse), stopped with SIGTERM afterwards."""
    if address:
        host, _, port = address.rpartition(":")
        yield host, int(port)
        return
    exe = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")
    with subprocess.Popen(
        [exe, "serve", "--port", "0", "--data", ":memory:", "--max-rate", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None
        match = re.search(r":(\d+)\s*$", process.stdout.readline())
        if not match:
            process.kill()
            raise SystemExit("interplay serve did not start")
        try:
            yield "127.0.0.1", int(match.group(1))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
