"""``interplay serve --workers N``: N node processes on one port, forked before any event loop.

The first process (worker 0, the one a supervisor started) announces the server only once every
worker listens: a worker that exits first (its port taken, its settings refused) makes the
first stop them all and exit 1, instead of serving with fewer processes than asked for while
its ready line says otherwise. Each worker is a whole node: one that dies later leaves the
others serving. A worker whose first process dies gets SIGTERM and drains (Linux: no orphan
holds the port after its supervisor's process is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field

READY = b"r"


class WorkerFailed(Exception):
    """A worker did not get ready: it exited first (``code``), or took longer than the wait."""

    def __init__(self, index: int, count: int, code: int | None, timeout: float) -> None:
        self.index = index
        if code is None:
            why = f"was not ready within {timeout:g} s"
        else:
            why = f"exited with code {code} before it was ready (its error is above)"
        super().__init__(f"worker {index} of {count} {why}")


@dataclass
class Workers:
    """This process's place among the workers: ``index`` 0 is the first, which alone holds
    ``children`` (pid and the read end of its ready pipe, per worker); a worker holds the write
    end of its own pipe."""

    count: int
    index: int = 0
    ready_timeout: float = 60.0
    children: list[tuple[int, int]] = field(default_factory=list)
    _ready: int | None = None

    @property
    def first(self) -> bool:
        return self.index == 0

    @classmethod
    def fork(cls, count: int) -> Workers:
        """Fork ``count - 1`` workers; call it before any event loop or thread exists."""
        first = cls(count)
        parent = os.getpid()
        for index in range(1, count):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                for _, other in first.children:
                    os.close(other)
                _drain_when_orphaned(parent)
                return cls(count, index, _ready=write)
            os.close(write)
            first.children.append((pid, read))
        return first

    async def ready(self) -> None:
        """A worker: say it listens. The first: wait until every worker has said so
        (``WorkerFailed`` if one exits first or takes longer than ``ready_timeout``)."""
        timeout = self.ready_timeout
        if self._ready is not None:
            os.write(self._ready, READY)
            os.close(self._ready)
            self._ready = None
            return
        for index, (pid, read) in enumerate(self.children, start=1):
            try:
                said = await asyncio.wait_for(_read_one(read), timeout)
            except TimeoutError:
                raise WorkerFailed(index, self.count, None, timeout) from None
            if said != READY:
                _, status = await asyncio.to_thread(os.waitpid, pid, 0)
                self.children[index - 1] = (0, read)  # reaped: nothing to stop
                code = os.waitstatus_to_exitcode(status)
                raise WorkerFailed(index, self.count, code, timeout)

    def stop(self) -> None:
        """The first: SIGTERM every worker (each drains) and wait for them to exit."""
        for pid, _ in self.children:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for pid, read in self.children:
            if pid:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            os.close(read)
        self.children.clear()


async def _read_one(fd: int) -> bytes:
    """One byte from a pipe without blocking the loop (b"": its writer exited)."""
    loop = asyncio.get_running_loop()
    said: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not said.done():
            said.set_result(os.read(fd, 1))

    loop.add_reader(fd, readable)
    try:
        return await said
    finally:
        loop.remove_reader(fd)


def _drain_when_orphaned(parent: int) -> None:
    """SIGTERM this worker when the first process dies (Linux's PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    if os.getppid() != parent:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
