"""`interplay serve` as a user runs it: a subprocess on a real TCP port, stopped by SIGTERM,
restarted over the same data file."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.client import Channel

from helpers import chat_call, interplay_serve
from interplay.transports.grpc.codec import WireCodec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_serve_chats_over_tcp_and_keeps_history_across_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data" / "interplay.db"
    with interplay_serve(data) as port:
        channel = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as ann:
                await ann.join("ann")
                [echo] = await ann.recv_n(1)
                for n in range(3):
                    await ann.text(f"before restart {n}", id=f"a{n}")
                got = await ann.recv_n(3)
                assert [m.seq for m in got] == [1, 2, 3]
                await ann.stream.end()
                assert await ann.recv() is None  # OK trailers after the half-close
        finally:
            channel.close()
    assert data.exists()

    with interplay_serve(data) as port:
        channel = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as bob:
                await bob.join("bob", resume_after_seq=1, epoch=echo.epoch)
                back, *history = await bob.recv_n(3)
                assert (back.seq, back.epoch) == (3, echo.epoch)  # same stream identity
                assert [(m.seq, m.content) for m in history] == [
                    (2, "before restart 1"),
                    (3, "before restart 2"),
                ]
                await bob.stream.end()
        finally:
            channel.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_serve_runs_on_either_event_loop(tmp_path: Path, loop: str) -> None:
    with interplay_serve(tmp_path / "chat.db", "--loop", loop) as port:
        channel = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as ann:
                await ann.join("ann")
                await ann.text("hi", id="1")
                [joined, text] = await ann.recv_n(2)
                assert joined.sender_id == "ann"
                assert (text.seq, text.content) == (1, "hi")
                await ann.stream.end()
                assert await ann.recv() is None
        finally:
            channel.close()
