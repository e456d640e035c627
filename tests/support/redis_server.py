"""A real ``redis-server`` for a test: its own free port, its own temporary directory.

Never a mock: the many-node tests are about what Redis does (scripts, streams, pub/sub, AOF),
so each starts Debian's ``redis-server`` (``.ci/run`` installs it) and stops it at the end.
``restart()`` keeps the port and the directory, so a restarted server replays its AOF; ``stop()``
then ``start()`` leaves it unreachable in between.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
DURABLE = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process (see the module docstring)."""

    def __init__(
        self, directory: Path, settings: tuple[str, ...] = DURABLE, password: str = ""
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--maxmemory-policy", "noeviction"]
        command += ["--protected-mode", "no", *self.settings]
        if self.password:
            command += ["--requirepass", self.password]
        probe = f"AUTH {self.password}\r\nPING\r\n" if self.password else "PING\r\n"
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(probe.encode())
                    answer = b""
                    while (chunk := conn.recv(64)) and b"+PONG" not in answer:
                        answer += chunk
                        if b"+PONG" in answer:
                            return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        """Kill it at once (SIGKILL): what was not fsynced is lost, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def redis_server(
    directory: Path, settings: tuple[str, ...] = DURABLE, password: str = ""
) -> Iterator[RedisServer]:
    server = RedisServer(directory, settings, password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
