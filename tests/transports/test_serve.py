"""`interplay serve` as a user runs it: a subprocess on a real TCP port, stopped by SIGTERM,
restarted over the same data file."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from grpclib.client import Channel

from helpers import chat_call
from interplay.transports.grpc.codec import WireCodec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@contextmanager
def interplay_serve(data: Path) -> Iterator[int]:
    exe = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")
    with subprocess.Popen(
        [exe, "serve", "--port", "0", "--data", str(data), "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            line = process.stdout.readline()
            match = re.search(r"serving chat.ChatService on 127\.0\.0\.1:(\d+)", line)
            assert match, f"first line {line!r}; stderr: {process.stderr.read()}"
            yield int(match.group(1))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        assert code == 0, process.stderr.read()


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
