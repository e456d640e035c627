"""The reconnecting ChatClient against real servers over TCP: chat, a fatal status, and a server
killed (SIGKILL) and restarted while two clients keep talking."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from helpers import eventually, interplay_process
from interplay.core import ChatLimits, DocumentHub, Kind, RoomHub, RoomMessage
from interplay.core.backoff import BackoffPolicy
from interplay.stores import MemoryStore
from interplay.transports.grpc.auth import Authenticator
from interplay.transports.grpc.client import ChatClient, ConnectionState
from interplay.transports.grpc.server import ServerSettings, build_server

pytestmark = pytest.mark.anyio

FAST = BackoffPolicy(initial=0.05, multiplier=1.6, jitter=0.2, cap=0.5)


@asynccontextmanager
async def tcp_server(settings: ServerSettings | None = None) -> AsyncIterator[int]:
    store = MemoryStore()
    hub = RoomHub(store, limits=ChatLimits(rate=0))
    server, _ = build_server(hub, DocumentHub(store), None, settings or ServerSettings(port=0))
    await server.start("127.0.0.1", 0)
    assert server._server is not None
    try:
        yield server._server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def next_text(client: ChatClient) -> RoomMessage:
    with anyio.fail_after(5):
        async for message in client:
            if message.kind is Kind.TEXT:
                return message
    raise AssertionError("the client stopped")


async def test_two_clients_chat_and_leave_cleanly() -> None:
    async with tcp_server() as port:
        async with (
            ChatClient("127.0.0.1", port, user="ann") as ann,
            ChatClient("127.0.0.1", port, user="bob") as bob,
        ):
            await ann.join("lobby")
            await bob.join("lobby")
            id_ = await ann.send("lobby", "hi bob")
            for client in (ann, bob):
                text = await next_text(client)
                assert (text.seq, text.sender, text.id, text.content) == (1, "ann", id_, "hi bob")
            assert ann.rooms.unacknowledged() == []
            assert ann.members("lobby") == {"ann", "bob"}
            assert ann.state is ConnectionState.CONNECTED
        assert ann.state is bob.state is ConnectionState.CLOSED
        assert ann.reconnect_delays == []  # it never had to


async def test_a_fatal_status_closes_the_client_and_is_raised() -> None:
    secret = "a-test-secret-that-is-at-least-32-bytes"
    async with tcp_server(ServerSettings(port=0, auth=Authenticator(secret))) as port:
        token = Authenticator(secret).mint("ann", rooms=["lobby"])
        async with ChatClient("127.0.0.1", port, user="ann", token=token, backoff=FAST) as ann:
            await ann.join("secret")
            with pytest.raises(GRPCError) as caught, anyio.fail_after(5):
                async for _ in ann:
                    pass
            assert caught.value.status is Status.PERMISSION_DENIED  # not retried
            assert ann.state is ConnectionState.CLOSED and ann.reconnect_delays == []
            with pytest.raises(GRPCError):
                await ann.send("lobby", "after the end")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
async def test_server_killed_and_restarted_loses_and_repeats_nothing(tmp_path: Path) -> None:
    data, port = tmp_path / "chat.db", free_port()
    flags = ("--port", str(port), "--max-rate", "0", "--history", "1000", "--retain", "1000")
    shown: dict[str, list[RoomMessage]] = {"ann": [], "bob": []}
    sent: dict[str, list[str]] = {"ann": [], "bob": []}
    states: list[ConnectionState] = []

    async def reader(client: ChatClient, user: str) -> None:
        async for message in client:
            if message.kind is Kind.TEXT:
                shown[user].append(message)

    async def talker(client: ChatClient, user: str, count: int) -> None:
        for n in range(count):
            sent[user].append(await client.send("lobby", f"{user} {n}"))
            await anyio.sleep(0.01)

    server = interplay_process(data, *flags, killed=True)
    _, process = server.__enter__()
    async with (
        ChatClient("127.0.0.1", port, user="ann", backoff=FAST, on_state=states.append) as ann,
        ChatClient("127.0.0.1", port, user="bob", backoff=FAST) as bob,
        anyio.create_task_group() as tasks,
    ):
        await ann.join("lobby")
        await bob.join("lobby")
        tasks.start_soon(reader, ann, "ann")
        tasks.start_soon(reader, bob, "bob")
        talkers = anyio.create_task_group()
        async with talkers:
            talkers.start_soon(talker, ann, "ann", 60)
            talkers.start_soon(talker, bob, "bob", 60)
            await anyio.sleep(0.25)
            process.kill()  # mid-conversation: no drain, no goodbye
            server.__exit__(None, None, None)
            await anyio.sleep(0.4)  # clients back off and retry against a closed port
            server = interplay_process(data, *flags, killed=True)
            server.__enter__()
        await eventually(lambda: len(shown["ann"]) >= 120 and len(shown["bob"]) >= 120, 20)
        await anyio.sleep(0.2)  # anything extra (a duplicate) would show up now
        tasks.cancel_scope.cancel()
    server.__exit__(None, None, None)

    # Every member shows every TEXT once, in seq order: the same 120, the same seqs.
    assert [m.seq for m in shown["ann"]] == list(range(1, 121))
    assert [(m.seq, m.id) for m in shown["ann"]] == [(m.seq, m.id) for m in shown["bob"]]
    # Every TEXT sent was stored exactly once (re-sends carried their ids).
    assert sorted(m.id for m in shown["ann"]) == sorted(sent["ann"] + sent["bob"])
    # It did reconnect, and each wait was inside the jittered exponential bounds.
    assert ConnectionState.RECONNECTING in states and states[-1] is ConnectionState.CLOSED
    for client in (ann, bob):
        assert client.reconnect_delays, "never reconnected"
        for attempt, delay in enumerate(client.reconnect_delays):
            low, high = FAST.bounds(attempt)
            assert low <= delay <= high
