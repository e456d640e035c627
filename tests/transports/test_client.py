"""The reconnecting ChatClient against real servers over TCP: chat, a fatal status, and a server
killed (SIGKILL) and restarted while two clients keep talking."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.client import Channel
from grpclib.config import Configuration

from helpers import chat_call, eventually, interplay_process, tcp_server
from interplay.backends import MemoryBackend
from interplay.core import Kind, MatchHub, RoomMessage
from interplay.core.backoff import BackoffPolicy
from interplay.core.effects import Write
from interplay.runtime import Settings
from interplay.transports.grpc.client import (
    ChatClient,
    ConnectionState,
    EditClient,
    GameClient,
)
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.server import ServerSettings

pytestmark = pytest.mark.anyio

SMALL_WINDOWS = Configuration(http2_stream_window_size=65535, http2_connection_window_size=65535)
FAST = BackoffPolicy(initial=0.05, multiplier=1.6, jitter=0.2, cap=0.5)


async def next_text(client: ChatClient) -> RoomMessage:
    with anyio.fail_after(5):
        async for message in client:
            if message.kind is Kind.TEXT:
                return message
    raise AssertionError("the client stopped")


async def test_two_clients_chat_and_leave_cleanly() -> None:
    async with tcp_server() as served:
        async with (
            ChatClient("127.0.0.1", served.port, user="ann") as ann,
            ChatClient("127.0.0.1", served.port, user="bob") as bob,
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


async def type_text(editor: EditClient, words: list[str], pause: float = 0.0) -> None:
    for word in words:
        await editor.insert(len(editor.text), word)
        await anyio.sleep(pause)


async def test_editors_converge_undo_and_replace() -> None:
    async with (
        tcp_server() as served,
        EditClient("127.0.0.1", served.port, user="ann", document="notes") as ann,
        EditClient("127.0.0.1", served.port, user="bob", document="notes") as bob,
    ):
        await ann.wait_synced()
        await bob.wait_synced()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(type_text, ann, ["a1 ", "a2 ", "a3 "])
            tasks.start_soon(type_text, bob, ["b1 ", "b2 ", "b3 "])
        for editor in (ann, bob):
            await editor.wait_settled()
        await eventually(lambda: ann.text == bob.text and len(ann.text) == 18)
        before = ann.text
        await ann.insert(0, "XY")
        await ann.undo()  # takes back only ann's own edit
        await ann.wait_settled()
        await eventually(lambda: bob.text == ann.text == before)
        await bob.edit(0, 2, "B1")  # a replace
        await eventually(lambda: ann.text == bob.text == "B1" + before[2:])


@pytest.mark.slow
async def test_editors_keep_typing_through_a_server_kill_and_converge(tmp_path: Path) -> None:
    data, port = tmp_path / "docs.db", free_port()
    flags = ("--port", str(port))
    words = {user: [f"{user}{n} " for n in range(40)] for user in ("ann", "bob")}
    server = interplay_process(data, *flags, killed=True)
    _, process = server.__enter__()
    options: dict[str, Any] = {"backoff": FAST, "document": "notes"}
    async with (
        EditClient("127.0.0.1", port, user="ann", **options) as ann,
        EditClient("127.0.0.1", port, user="bob", **options) as bob,
    ):
        await ann.wait_synced()
        await bob.wait_synced()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(type_text, ann, words["ann"], 0.01)
            tasks.start_soon(type_text, bob, words["bob"], 0.01)
            await anyio.sleep(0.2)
            process.kill()
            server.__exit__(None, None, None)
            await anyio.sleep(0.3)
            server = interplay_process(data, *flags, killed=True)
            server.__enter__()
        with anyio.fail_after(20):
            await ann.wait_settled()
            await bob.wait_settled()
        await eventually(lambda: ann.text == bob.text and ann.doc.revision == bob.doc.revision)
        assert ann.reconnect_delays and bob.reconnect_delays
        async with EditClient("127.0.0.1", port, user="cat", document="notes") as cat:
            await cat.wait_synced()
            assert cat.text == ann.text  # the server's (restarted, durable) text
    server.__exit__(None, None, None)
    # Every word typed is there exactly once, each editor's in its own order.
    for user, typed in words.items():
        mine = [w + " " for w in ann.text.split(" ") if w.startswith(user)]
        assert mine == typed


async def test_a_player_acts_and_sees_its_actions_confirmed() -> None:
    async with (
        tcp_server(games=MatchHub()) as served,
        GameClient("127.0.0.1", served.port, player="ann", match="m") as ann,
    ):
        sequence = await ann.act("move", dx="3", dy="-2")
        with anyio.fail_after(5):
            async for mirror in ann:
                me = mirror.players.get("ann")
                if me is not None and me.last_sequence == sequence:
                    break
        assert ann.actions.unconfirmed() == []


class _StalledStore(MemoryBackend):
    """A store whose writes wait while ``stalled`` (a disk that stopped keeping up)."""

    def __init__(self) -> None:
        super().__init__()
        self.going = anyio.Event()
        self.going.set()

    async def write(self, writes: Sequence[Write]) -> None:
        await self.going.wait()
        await super().write(writes)


async def test_send_waits_while_the_transport_is_full_and_drops_nothing() -> None:
    """The store stops keeping up: the server stops reading ann once its writes queue up,
    HTTP/2 flow control fills, and ann's sends wait (they neither fail nor drop); once the
    store goes on, all arrive. (One receiver that stops reading never does this: it reads
    from the log instead, DESIGN §5.)"""
    flow = Settings(max_pending_writes=8, rate=0)
    small = {"stream_window": 65535, "connection_window": 65535}
    store = _StalledStore()
    async with tcp_server(ServerSettings(port=0, **small), settings=flow, backend=store) as served:
        channel = Channel("127.0.0.1", served.port, codec=WireCodec(), config=SMALL_WINDOWS)
        try:
            async with (
                chat_call(channel) as bob,
                ChatClient("127.0.0.1", served.port, user="ann", inbox_size=10_000) as ann,
            ):
                await bob.join("bob")  # then reads nothing until the end
                await ann.join("lobby")
                await eventually(
                    lambda: served.service.runtime.rooms.members("lobby") == ["ann", "bob"]
                )
                store.going = anyio.Event()
                sent = 0

                async def talk() -> None:
                    nonlocal sent
                    for n in range(400):
                        await ann.send("lobby", f"{n:04} " + "x" * 1000)
                        sent += 1

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(talk)
                    await anyio.sleep(1.0)
                    stalled = sent
                    await anyio.sleep(0.5)
                    assert sent == stalled < 400, "sends neither waited nor stopped"
                    store.going.set()
                    texts = [m async for m in _texts(bob, 400)]
                assert [int(m.content[:4]) for m in texts] == list(range(400))
                assert [m.seq for m in texts] == list(range(1, 401))
                await eventually(lambda: ann.rooms.unacknowledged() == [])
        finally:
            channel.close()


async def _texts(client: Any, count: int) -> AsyncIterator[Any]:
    got = 0
    while got < count:
        message = await client.recv(timeout=10)
        assert message is not None
        if message.type == 0 and message.room_id == "lobby":  # TEXT
            got += 1
            yield message


async def test_an_edit_applies_to_the_text_the_caller_saw_even_while_a_send_waits() -> None:
    """The position is the caller's: the edit is made at once, not when the transport is
    free (by then remote edits may have moved the text)."""
    async with (
        tcp_server() as served,
        EditClient("127.0.0.1", served.port, user="ann", document="d") as ann,
    ):
        await ann.wait_synced()
        await ann.insert(0, "abc")
        async with anyio.create_task_group() as tasks:
            await ann._lock.acquire()  # a send in progress
            tasks.start_soon(ann.insert, 3, "!")
            await anyio.wait_all_tasks_blocked()
            assert ann.text == "abc!"  # applied already; sent once the lock is free
            ann._lock.release()
        await ann.wait_settled()
        assert ann.doc.revision == 2
