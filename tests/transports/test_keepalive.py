"""Keepalive: a client whose network vanished is found by the server's HTTP/2 pings and leaves
its rooms within keepalive time + timeout, even while it only listens.

The client is a process of its own, frozen with SIGSTOP: its kernel keeps the TCP connection
open and acknowledges every segment, but nothing answers a ping any more, as when a phone loses
its network. It is joined to two servers at once, one with keepalive and one without (the
control): the same freeze must remove it from the first and leave it in the second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import pytest
from grpclib.client import Channel

from certs import TLSFiles, issue
from helpers import ChatClient, T, chat_call, eventually, runtime_for
from interplay.transports.grpc import ChatService
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.server import ServerSettings, build_server, tls_context

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEEPALIVE_TIME = 0.25
KEEPALIVE_TIMEOUT = 0.75  # the observers answer from this test's event loop: leave it slack
# grpclib by default stops pinging after 2 pings with no data sent (the member only listens):
# stay idle for more than that before freezing, so the test covers it.
IDLE = 5 * KEEPALIVE_TIME
BOUND = 6.0  # seconds from the freeze to the LEAVE, with room for a loaded CI machine
# The control waits this long: twice the worst case with keepalive (time + timeout).
CONTROL_WINDOW = 2.0

MEMBER = Path(__file__).parents[1] / "support" / "listening_member.py"


@asynccontextmanager
async def started(
    settings: ServerSettings, tls: TLSFiles | None
) -> AsyncIterator[tuple[ChatService, int, ChatClient]]:
    """A server on a free port, and an observer's call to it, joined to "lobby"."""
    async with runtime_for() as runtime:
        server, service = build_server(runtime, settings)
        await server.start("127.0.0.1", 0, ssl=settings.tls)
        assert server._server is not None
        port = server._server.sockets[0].getsockname()[1]
        context = tls.client_context() if tls else None
        channel = Channel("127.0.0.1", port, codec=WireCodec(), ssl=context)
        try:
            async with chat_call(channel) as observer:
                await observer.join("observer")
                await sees_join(observer, "observer")
                yield service, port, observer
                await observer.stream.end()
        finally:
            channel.close()
            server.close()
            await server.wait_closed()


@contextmanager
def member(ports: list[int], tls: TLSFiles | None) -> Iterator[subprocess.Popen[str]]:
    """``listening_member.py`` as "frozen" in room "lobby" on every port; killed at the end."""
    ca = ["--ca", str(tls.ca)] if tls else []
    command = [sys.executable, str(MEMBER), *ca, "--user", "frozen", "--room", "lobby"]
    support = str(MEMBER.parent)
    with subprocess.Popen(
        [*command, *map(str, ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": support},
    ) as process:
        try:
            yield process
        finally:
            process.send_signal(signal.SIGCONT)  # a stopped process ignores SIGKILL until then
            process.kill()
            process.wait(timeout=10)


async def joined(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None and process.stderr is not None
    with anyio.fail_after(10):
        line = await anyio.to_thread.run_sync(process.stdout.readline)
    assert line == "joined\n", f"{line!r}; stderr: {process.stderr.read()}"


async def sees_join(client: ChatClient, user: str) -> None:
    await client.recv_until(lambda m: (m.type, m.sender_id) == (T.JOIN, user))


@pytest.mark.parametrize("secure", [False, True], ids=["plaintext", "tls"])
async def test_a_frozen_client_leaves_its_rooms_within_the_keepalive_bound(
    secure: bool, tmp_path: Path
) -> None:
    tls = issue(tmp_path) if secure else None
    context = tls_context(str(tls.cert), str(tls.key)) if tls else None
    with_keepalive = ServerSettings(
        tls=context, keepalive_time=KEEPALIVE_TIME, keepalive_timeout=KEEPALIVE_TIMEOUT
    )
    without = ServerSettings(tls=context, keepalive_time=None)
    async with (
        started(with_keepalive, tls) as (service, port, observer),
        started(without, tls) as (control, control_port, control_observer),
    ):
        with member([port, control_port], tls) as process:
            await joined(process)
            for client in (observer, control_observer):
                await sees_join(client, "frozen")
            assert service.counters.streams_open == control.counters.streams_open == 2
            await anyio.sleep(IDLE)  # "frozen" only listens: nothing is sent to it
            assert service.counters.streams_open == 2  # alive: it answered every ping

            process.send_signal(signal.SIGSTOP)
            frozen_at = time.monotonic()
            [left] = await observer.recv_n(1, timeout=BOUND)
            took = time.monotonic() - frozen_at
            assert (left.type, left.sender_id) == (T.LEAVE, "frozen")
            assert took >= KEEPALIVE_TIMEOUT * 0.9  # found by a missed ping, nothing else
            await eventually(lambda: service.counters.streams_open == 1, timeout=1)

            # the control: the same freeze, no keepalive, so nothing happens in the window
            window = CONTROL_WINDOW - (time.monotonic() - frozen_at)
            with pytest.raises(TimeoutError):
                unexpected = await control_observer.recv(timeout=max(window, 0.1))
                pytest.fail(f"without keepalive, the control saw {unexpected}")
            assert control.counters.streams_open == 2
