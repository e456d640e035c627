"""How the examples run: until done, or until SIGINT (Ctrl-C) or SIGTERM, which end them cleanly
(exit 0, no traceback). SIGTERM matters: a job a shell runs in the background ignores SIGINT,
and systemd, docker and CI stop a program with SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)``, cancelled by SIGINT or SIGTERM."""

    async def until_signalled() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    asyncio.run(until_signalled())
