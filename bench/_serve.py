"""The servers a benchmark runs against: the one given, or one started for it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent


def interplay(
    data: str = ":memory:",
    loop: str = "auto",
    *,
    rate_limit: str | None = "0",
    executable: str | None = None,
) -> list[str]:
    """``interplay serve`` on a free port; the per-stream rate limit off unless ``rate_limit``
    is given ("default": the server's own default, which shapes a fast sender). ``executable``:
    another build's ``interplay`` (a baseline checkout's venv) instead of this one's."""
    exe = executable or shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")
    argv = [exe, "serve", "--port", "0", "--ws-port", "0", "--data", data, "--loop", loop]
    if rate_limit not in (None, "default"):
        argv += ["--max-rate", rate_limit]
    return argv


BARE = [sys.executable, str(HERE / "_bare.py"), "--port", "0"]
BARE_WS = [sys.executable, str(HERE / "_bare_ws.py"), "--port", "0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def started(argv: list[str]) -> Iterator[tuple[int, int]]:
    """Run ``argv`` (a server printing "HOST:PORT" in its first line) until the block
    ends; yields ``(port, pid)``. Stopped with SIGTERM."""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        assert process.stdout is not None
        match = re.search(r":(\d+)\b", process.stdout.readline())
        if not match:
            process.kill()
            raise SystemExit(f"{argv[0]} did not start")
        try:
            yield int(match.group(1)), process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


@contextmanager
def server(address: str | None) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of ``address`` ("HOST:PORT"), or of a fresh ``interplay serve`` on a
    free port with an in-memory store and the per-stream rate limit off."""
    if address:
        host, _, port = address.rpartition(":")
        yield host, int(port)
        return
    with started(interplay()) as (port, _):
        yield "127.0.0.1", port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The pids of a process's children (Linux /proc)."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@contextmanager
def redis_started() -> Iterator[tuple[str, int]]:
    """A ``redis-server`` (``appendonly yes``, ``appendfsync always``: every acknowledged
    message durable) on a free port in a temporary directory; yields ``(url, pid)``."""
    import tempfile
    import time

    redis_port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        redis = subprocess.Popen(
            [
                shutil.which("redis-server") or "/usr/bin/redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                directory,
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", redis_port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{redis_port}/0", redis.pid
        finally:
            redis.kill()
            redis.wait()


@contextmanager
def nodes_started(
    count: int, loop: str = "auto", rate_limit: str | None = "0", *, workers: int = 0
) -> Iterator[tuple[list[int], list[int], int]]:
    """A ``redis-server`` (``appendonly yes``, ``appendfsync always``: every acknowledged
    message durable) in a temporary directory and ``count`` ``interplay serve --redis``
    nodes on it; yields ``(ports, pids, redis pid)``. With ``workers``, one ``interplay serve
    --redis --workers N`` instead: one port, and the pids of all its worker processes."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        url, redis_pid = stack.enter_context(redis_started())
        ports, pids = [], []
        argv = [*interplay(":memory:", loop, rate_limit=rate_limit), "--redis", url]
        if workers:
            # (a port of its own: each worker binding port 0 would get another)
            argv += ["--workers", str(workers), "--port", str(free_port())]
            port, pid = stack.enter_context(started(argv))
            yield [port], [pid, *children(pid)], redis_pid
            return
        for _ in range(count):
            port, pid = stack.enter_context(started(argv))
            ports.append(port)
            pids.append(pid)
        yield ports, pids, redis_pid
