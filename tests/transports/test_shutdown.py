"""Graceful shutdown: NOT_SERVING, no new calls, every queue flushed, every call ended with
UNAVAILABLE "server shutting down", within the grace period; nothing accepted is lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from helpers import (
    ChatClient,
    chat_call,
    eventually,
    interplay_process,
    interplay_serve,
    tcp_server,
)
from interplay.runtime import Settings
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.server import ServerSettings, drain

pytestmark = pytest.mark.anyio

SMALL = Configuration(http2_stream_window_size=65535, http2_connection_window_size=65535)


async def read_until_status(client: ChatClient) -> tuple[list[int], GRPCError]:
    """The seqs of the TEXTs received, then the status the call ended with."""
    seqs = []
    while True:
        try:
            message = await client.recv()
        except GRPCError as error:
            return seqs, error
        assert message is not None, "ended with OK, not UNAVAILABLE"
        if message.seq:
            seqs.append(message.seq)


async def test_drain_flushes_every_queue_then_ends_each_call_unavailable() -> None:
    async with tcp_server(ServerSettings(port=0, grace=10)) as served:
        server, service, port = served.server, served.service, served.port
        # Small windows: the calls cannot end before ann and bob read what is queued for them.
        channel = Channel("127.0.0.1", port, codec=WireCodec(), config=SMALL)
        other = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as ann, chat_call(channel) as bob:
                for client, user in ((ann, "ann"), (bob, "bob")):
                    await client.join(user)
                assert (await HealthStub(other).Check(HealthCheckRequest())).status == (
                    HealthCheckResponse.SERVING
                )
                for n in range(300):
                    await ann.text(f"m{n}" + "." * 300, id=str(n))  # ~90 KiB: over the window
                # All accepted, none read yet: queued for both.
                await eventually(lambda: service.counters.messages_in == 302)
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(drain, server, service, 10.0)
                    await anyio.sleep(0.05)
                    # NOT_SERVING, and no new call, on a connection made before the drain ...
                    reply = await HealthStub(other).Check(HealthCheckRequest())
                    assert reply.status == HealthCheckResponse.NOT_SERVING
                    with pytest.raises(GRPCError) as refused:
                        async with chat_call(other) as late:
                            await late.join("late")
                            await late.recv()
                    assert refused.value.status is Status.UNAVAILABLE
                    # ... nor on a new connection.
                    with pytest.raises((ConnectionError, StreamTerminatedError, OSError)):
                        fresh = Channel("127.0.0.1", port, codec=WireCodec())
                        try:
                            await HealthStub(fresh).Check(HealthCheckRequest(), timeout=2)
                        finally:
                            fresh.close()
                    # Everything accepted arrives, in order, then UNAVAILABLE.
                    for client in (ann, bob):
                        seqs, error = await read_until_status(client)
                        assert seqs == list(range(1, 301)), error
                        assert error.status is Status.UNAVAILABLE
                        assert error.message == "server shutting down: reconnect and resume"
                    # The clients go (elsewhere): the drain ends when their connections close.
                    channel.close()
                    other.close()
            assert service.counters.streams_open == 0
        finally:
            channel.close()
            other.close()


async def test_drain_cancels_a_call_that_does_not_read_after_the_grace_period() -> None:
    flow = Settings(high_water=10**6, low_water=0, rate=0)
    async with tcp_server(settings=flow) as served:
        server, service, port = served.server, served.service, served.port
        channel = Channel("127.0.0.1", port, codec=WireCodec(), config=SMALL)
        try:
            async with chat_call(channel) as ann:
                await ann.join("ann")
                for n in range(200):  # echoes pile up past ann's window: it never reads them
                    await ann.text("x" * 1000, id=str(n))
                await eventually(lambda: service.counters.messages_in == 201)
                started_at = time.monotonic()
                await drain(server, service, 0.5)
                took = time.monotonic() - started_at
                assert 0.5 <= took < 3, took
                assert service.counters.streams_open == 0
        finally:
            channel.close()


@pytest.mark.slow
async def test_sigterm_loses_nothing_accepted(tmp_path: Path) -> None:
    """Two members keep chatting while ``interplay serve`` gets SIGTERM; after a restart the
    history holds exactly the TEXTs acknowledged, and each member got all of them."""
    data = tmp_path / "chat.db"
    flags = ("--grace", "5", "--history", "100000", "--retain", "100000", "--max-rate", "0")
    received: dict[str, list[int]] = {}
    acked: dict[str, set[str]] = {}
    with interplay_process(data, *flags) as (port, process):
        channel = Channel("127.0.0.1", port, codec=WireCodec())

        async def member(user: str, ready: anyio.Event) -> None:
            async with chat_call(channel) as me:
                await me.join(user)
                await me.recv()  # own JOIN echo
                ready.set()
                seqs: list[int] = []
                mine: set[str] = set()

                async def send() -> None:
                    n = 0
                    while True:
                        await me.text(f"{user} {n}", id=f"{user}-{n}")
                        n += 1
                        await anyio.lowlevel.checkpoint()

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(send)
                    while True:
                        try:
                            message = await me.recv(timeout=15)
                        except GRPCError as error:
                            assert error.status is Status.UNAVAILABLE, error
                            break
                        assert message is not None
                        if message.seq:
                            seqs.append(message.seq)
                            if message.sender_id == user:
                                mine.add(message.id)
                    tasks.cancel_scope.cancel()
                received[user], acked[user] = seqs, mine

        try:
            async with anyio.create_task_group() as tasks:
                ready = [anyio.Event(), anyio.Event()]
                tasks.start_soon(member, "ann", ready[0])
                tasks.start_soon(member, "bob", ready[1])
                for event in ready:
                    await event.wait()
                await anyio.sleep(0.5)  # chatting
                process.send_signal(signal.SIGTERM)
                stopped = time.monotonic()
            channel.close()  # both got UNAVAILABLE: they would reconnect elsewhere now
            code = await anyio.to_thread.run_sync(process.wait, 10)
            assert code == 0
            assert time.monotonic() - stopped < 2  # not the whole grace: everyone had gone
        finally:
            channel.close()

    with interplay_serve(data, *flags) as port:
        channel = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as cat:
                await cat.join("cat", resume_after_seq=0)
                [joined] = await cat.recv_n(1)  # carries the room's head seq
                history = await cat.recv_n(joined.seq)
                await cat.stream.end()
        finally:
            channel.close()
            await anyio.sleep(0.01)  # let the loop close the socket before SIGTERM and wait
    stored = [m.seq for m in history]
    assert len(stored) > 20, "too little traffic to prove anything"
    assert stored == list(range(1, len(stored) + 1))
    # Every member received every stored TEXT, in order: nothing accepted was lost in the drain.
    missing = {
        user: [(m.seq, m.sender_id) for m in history if m.seq not in set(got)]
        for user, got in received.items()
    }
    assert received["ann"] == received["bob"] == stored, missing
    # Stored means acknowledged: each sender got the echo of each of its stored TEXTs.
    for user in ("ann", "bob"):
        assert {m.id for m in history if m.sender_id == user} == acked[user]
