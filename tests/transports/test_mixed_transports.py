"""One runtime under two transports: a gRPC client and WebSocket clients (protobuf and JSON) in
one room, one document and one match see exactly the same messages, seqs, revisions and ticks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from helpers import eventually, runtime_for
from interplay.core.matches import GameSettings, MatchHub
from interplay.runtime import Runtime
from interplay.transports import grpc as grpc_transport
from interplay.transports import websocket
from interplay.transports.grpc import ServerSettings
from interplay.transports.grpc import client as grpc_client
from interplay.transports.websocket import client as ws_client
from interplay.transports.websocket.codec import JSON, PROTO

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def both_transports(**options: Any) -> AsyncIterator[tuple[Runtime, int, int]]:
    """gRPC and WebSocket on free ports over one runtime: (runtime, grpc port, ws port)."""
    async with runtime_for(**options) as runtime:
        server, chat = await grpc_transport.start(runtime, ServerSettings(port=0))
        ws_server, ws_service = await websocket.start(runtime, websocket.WebSocketSettings(port=0))
        try:
            assert server._server is not None
            yield (
                runtime,
                server._server.sockets[0].getsockname()[1],
                ws_server.server.sockets[0].getsockname()[1],
            )
        finally:
            with anyio.CancelScope(shield=True):
                await websocket.drain(ws_server, ws_service, 5)
                await grpc_transport.drain(server, chat, 5)


NAMES = ("grpc", "proto", "json")


def chat_clients(grpc_port: int, ws_port: int) -> list[Any]:
    return [
        grpc_client.ChatClient("127.0.0.1", grpc_port, user="grpc"),
        ws_client.ChatClient("127.0.0.1", ws_port, user="proto", subprotocol=PROTO),
        ws_client.ChatClient("127.0.0.1", ws_port, user="json", subprotocol=JSON),
    ]


async def test_one_room_the_same_messages_and_seqs_on_every_transport() -> None:
    async with both_transports() as (runtime, grpc_port, ws_port):
        clients = chat_clients(grpc_port, ws_port)
        async with clients[0], clients[1], clients[2]:
            for client in clients:
                await client.join("lobby")
            await eventually(lambda: len(runtime.rooms.members("lobby")) == 3)
            per_sender = 20
            seen: dict[str, list[tuple[int, str, str]]] = {}

            async def read(name: str, client: Any) -> None:
                texts: list[tuple[int, str, str]] = []
                async for message in client:
                    if message.kind.name == "TEXT":
                        texts.append((message.seq, message.sender, message.content))
                        if len(texts) == 3 * per_sender:
                            break
                seen[name] = texts

            async with anyio.create_task_group() as tasks:
                for name, client in zip(NAMES, clients, strict=True):
                    tasks.start_soon(read, name, client)
                for n in range(per_sender):
                    for name, client in zip(NAMES, clients, strict=True):
                        await client.send("lobby", f"{name} {n} ✓ 𝄞")
        orders = list(seen.values())
        assert orders[0] == orders[1] == orders[2]
        assert [seq for seq, _, _ in orders[0]] == list(range(1, 3 * per_sender + 1))
        assert {sender for _, sender, _ in orders[0]} == {"grpc", "proto", "json"}


async def test_one_document_the_same_revisions_and_text_on_every_transport() -> None:
    async with both_transports() as (runtime, grpc_port, ws_port):
        editors = [
            grpc_client.EditClient("127.0.0.1", grpc_port, user="grpc", document="d"),
            ws_client.EditClient("127.0.0.1", ws_port, user="proto", document="d"),
            ws_client.EditClient("127.0.0.1", ws_port, user="json", document="d", subprotocol=JSON),
        ]
        async with editors[0], editors[1], editors[2]:
            for editor in editors:
                await editor.wait_synced()
            for n in range(15):
                for i, editor in enumerate(editors):
                    await editor.insert(min(n, len(editor.text)), f"{i}é𝄞"[n % 3])
            for editor in editors:
                await editor.wait_settled()
            await eventually(lambda: len({e.text for e in editors}) == 1 and editors[0].synced)
            server_text = runtime.documents.text("d")
            assert [e.text for e in editors] == [server_text] * 3
            assert len(server_text or "") == 45
            assert len({e.doc.revision for e in editors}) == 1


async def test_one_match_the_same_ticks_and_states_on_every_transport() -> None:
    games = MatchHub(settings=GameSettings(tick_hz=50))
    async with both_transports(games=games) as (runtime, grpc_port, ws_port):
        players = [
            grpc_client.GameClient("127.0.0.1", grpc_port, player="grpc", match="m"),
            ws_client.GameClient("127.0.0.1", ws_port, player="proto", match="m"),
            ws_client.GameClient("127.0.0.1", ws_port, player="json", match="m", subprotocol=JSON),
        ]
        async with players[0], players[1], players[2]:
            await eventually(lambda: all(len(p.mirror.players) == 3 for p in players), timeout=10)
            for player in players:
                await player.act("move", dx="1", dy="0")
            loop = runtime.games.loop("m")
            assert loop is not None

            def moved(player: Any) -> bool:
                return all(
                    player.mirror.players[name].last_sequence == 1 for name in player.mirror.players
                )

            await eventually(lambda: all(moved(p) for p in players), timeout=10)
            # The same world at the same tick: compare once every mirror has caught up.
            await eventually(lambda: len({p.mirror.tick for p in players}) == 1, timeout=10)
            states = [dict(p.mirror.players) for p in players]
            assert states[0] == states[1] == states[2]


async def test_the_server_api_reaches_websocket_members_the_same_way() -> None:
    """Publish and Disconnect go through the runtime: a WebSocket member receives a published
    message with its seq, and a Disconnect closes its socket with the same status a gRPC
    client gets (4007 PERMISSION_DENIED: not retried; with reconnect, 4014: it resumes)."""
    from interplay.core import Kind
    from interplay.core.backoff import BackoffPolicy
    from interplay.runtime import AdminAuthenticator
    from interplay.runtime.reconnect import ConnectionState

    fast = BackoffPolicy(initial=0.05, multiplier=1.6, jitter=0.2, cap=0.5)
    admin = AdminAuthenticator("the-admin-secret-of-the-mixed-test-32b")
    async with (
        both_transports(admin=admin) as (runtime, _, ws_port),
        ws_client.ChatClient("127.0.0.1", ws_port, user="ann", backoff=fast) as ann,
        ws_client.ChatClient("127.0.0.1", ws_port, user="bob", backoff=fast) as bob,
    ):
        await ann.join("lobby")
        await bob.join("lobby")
        await eventually(lambda: runtime.rooms.members("lobby") == ["ann", "bob"])
        published = await runtime.admin.publish("lobby", "from the backend", sender="bot")
        with anyio.fail_after(5):
            async for message in ann:
                if message.kind is Kind.TEXT:
                    assert (message.seq, message.content) == (
                        published.message.seq,
                        "from the backend",
                    )
                    break
        assert await runtime.admin.disconnect("ann", "banned") == 1
        with pytest.raises(Exception) as caught, anyio.fail_after(5):
            async for _ in ann:
                pass
        assert ann.failure is not None and ann.failure.status == "PERMISSION_DENIED"
        assert ann.state is ConnectionState.CLOSED and ann.reconnect_delays == []
        assert "disconnected by the server: banned" in str(caught.value)
        assert await runtime.admin.disconnect("bob", "moving", reconnect=True) == 1
        with anyio.fail_after(5):
            await bob.wait_for(ConnectionState.RECONNECTING)
            await bob.wait_for(ConnectionState.CONNECTED)
        assert len(bob.reconnect_delays) == 1
