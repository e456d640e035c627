"""The freeze scenario of issue 20 over real gRPC: joiners that never read hold no room up.

A room holds 3 000 TEXTs of 1 KiB; one member posts 20/s and another reads; six callers
JOIN with ``resume_after_seq=0`` (one HTTP/2 connection each, small windows) and never read.
The reader's longest wait between two messages stays under 200 ms (it was the drain timeout,
restarted by each new caller: 16 s in the report).
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import anyio
import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from memory_transport import seeded

from helpers import chat_call, tcp_server
from interplay.runtime import Settings
from interplay.testing.transport.calls import T
from interplay.transports.grpc.codec import WireCodec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SMALL = Configuration(http2_stream_window_size=65_535, http2_connection_window_size=65_535)


async def test_six_joiners_that_never_read_do_not_freeze_a_room_over_grpc() -> None:
    backend = seeded({"lobby": 3000}, 1024)
    async with (
        tcp_server(settings=Settings(), backend=backend) as served,
        AsyncExitStack() as stack,
    ):

        def channel(config: Configuration | None = None) -> Channel:
            made = Channel("127.0.0.1", served.port, codec=WireCodec(), config=config)
            stack.callback(made.close)
            return made

        poster = await stack.enter_async_context(chat_call(channel()))
        reader = await stack.enter_async_context(chat_call(channel()))
        await poster.join("poster")
        await reader.join("reader")
        await reader.recv_until(lambda m: m.type == T.TEXT and m.seq == 3000, timeout=10)
        longest, live = 0.0, 0
        async with anyio.create_task_group() as tasks:

            async def post() -> None:
                for n in range(50):
                    await poster.text(f"live {n}", id=f"live-{n}")
                    await anyio.sleep(0.05)

            async def joiners() -> None:
                for n in range(6):
                    joiner = await stack.enter_async_context(chat_call(channel(SMALL)))
                    await joiner.join(f"joiner{n}", resume_after_seq=0)  # and never reads
                    await anyio.sleep(0.25)

            tasks.start_soon(post)
            tasks.start_soon(joiners)
            last = time.monotonic()
            while live < 50:
                message = await reader.recv(timeout=10)
                assert message is not None
                now = time.monotonic()
                if message.type == T.TEXT:
                    longest, last = max(longest, now - last), now
                    live += 1
                    assert message.seq == 3000 + live  # every one, in order
        assert longest < 0.2, f"the reader waited {longest:.2f} s for a laggard"
        assert served.service.runtime.counters.log_messages > 0  # the joiners read the log
