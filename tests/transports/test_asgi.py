"""The ASGI app mounted in a Starlette app, served by uvicorn: the WebSocket calls, the browser
app's files, the lifespan that runs and drains the runtime, and a gRPC member of the same
runtime in the same room."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import eventually, runtime_for, uvicorn_serving
from interplay.backends import MemoryBackend
from interplay.runtime import Runtime, Settings
from interplay.transports import grpc as grpc_transport
from interplay.transports.asgi import InterplayASGI
from interplay.transports.grpc import ServerSettings
from interplay.transports.grpc.client import ChatClient
from interplay.transports.websocket.codec import END, JSON, PROTO

pytestmark = pytest.mark.anyio


def starlette_app(service: InterplayASGI) -> Starlette:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("the host app")

    return Starlette(
        routes=[Route("/", home), Mount("/rt", app=service)], lifespan=service.lifespan
    )


def join(user: str) -> str:
    return json.dumps({"type": "JOIN", "roomId": "lobby", "senderId": user})


async def test_mounted_in_starlette_the_calls_work_and_the_host_app_too(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>interplay</title>")
    service = InterplayASGI(
        lambda: Runtime(MemoryBackend(), settings=Settings(rate=0)), web_root=tmp_path
    )
    async with uvicorn_serving(starlette_app(service)) as port:
        base = f"127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{base}/")).text == "the host app"
            page = await http.get(f"http://{base}/rt/")
            assert page.status_code == 200 and "<title>interplay" in page.text
            assert (await http.get(f"http://{base}/rt/nothing")).status_code == 404
        async with (
            connect(f"ws://{base}/rt/chat", subprotocols=[JSON]) as ann,  # type: ignore[list-item]
            connect(f"ws://{base}/rt/chat", subprotocols=[PROTO]) as bob,  # type: ignore[list-item]
        ):
            await ann.send(join("ann"))
            assert json.loads(await ann.recv())["type"] == "JOIN"
            from interplay.transports.grpc.generated import chat_pb2 as pb

            await bob.send(
                pb.ChatMessage(
                    type=pb.ChatMessage.JOIN, room_id="lobby", sender_id="bob"
                ).SerializeToString()
            )
            echo = pb.ChatMessage.FromString(await bob.recv())
            assert echo.type == pb.ChatMessage.JOIN
            await ann.send(
                json.dumps({"type": "TEXT", "roomId": "lobby", "senderId": "ann", "content": "hi"})
            )
            seen = []
            while len(seen) < 1:
                data = await bob.recv()
                message = pb.ChatMessage.FromString(data)
                if message.type == pb.ChatMessage.TEXT:
                    seen.append((message.seq, message.content))
            assert seen == [(1, "hi")]
            await ann.send("{oops")
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ann.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
            assert "frame: not a JSON chat.ChatMessage" in closed.value.rcvd.reason
            await bob.send(END)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await bob.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        with pytest.raises(InvalidStatus):
            await connect(f"ws://{base}/rt/chat")  # no subprotocol: refused
        with pytest.raises(InvalidStatus):
            await connect(f"ws://{base}/rt/elsewhere", subprotocols=[JSON])  # type: ignore[list-item]


async def test_the_lifespan_drains_open_calls_with_1012() -> None:
    service = InterplayASGI(lambda: Runtime(MemoryBackend(), settings=Settings(rate=0)))
    async with uvicorn_serving(starlette_app(service)) as port:
        ws = await connect(f"ws://127.0.0.1:{port}/rt/chat", subprotocols=[JSON])  # type: ignore[list-item]
        await ws.send(join("ann"))
        await ws.recv()
    # uvicorn stopped: the lifespan drained the runtime, the call closed with 1012
    with anyio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


async def test_an_asgi_member_and_a_grpc_member_share_a_room() -> None:
    async with runtime_for() as runtime:
        server, chat = await grpc_transport.start(runtime, ServerSettings(port=0))
        assert server._server is not None
        grpc_port = server._server.sockets[0].getsockname()[1]
        try:
            app = starlette_app(InterplayASGI(runtime=runtime))
            async with (
                uvicorn_serving(app) as port,
                ChatClient("127.0.0.1", grpc_port, user="grpc") as member,
                connect(f"ws://127.0.0.1:{port}/rt/chat", subprotocols=[JSON]) as ws,  # type: ignore[list-item]
            ):
                await member.join("lobby")
                await ws.send(join("web"))
                await eventually(lambda: len(runtime.rooms.members("lobby")) == 2)
                await member.send("lobby", "from grpc")
                while (message := json.loads(await ws.recv()))["type"] != "TEXT":
                    pass
                assert (message["content"], message["seq"]) == ("from grpc", "1")
        finally:
            await grpc_transport.drain(server, chat, 5)


def test_the_app_needs_exactly_one_way_to_its_runtime() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        InterplayASGI()
