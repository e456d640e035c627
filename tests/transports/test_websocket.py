"""What only the WebSocket transport has: the handshake, frames, close codes, pings, the
browser app's files, and its Python clients. (Every RPC's behaviour is the conformance suite's,
run over both subprotocols.)"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import WebSocketServed, eventually, websocket_server
from interplay.core.errors import InvalidArgument
from interplay.runtime import Authenticator
from interplay.runtime.reconnect import CallError, ConnectionState
from interplay.transports.grpc.generated import chat_pb2 as pb
from interplay.transports.websocket import WebSocketSettings
from interplay.transports.websocket.client import ChatClient, EditClient, GameClient
from interplay.transports.websocket.codec import END, JSON, PROTO, Ended, parse
from interplay.transports.websocket.errors import MAX_REASON_BYTES, reason, status_of_close

pytestmark = pytest.mark.anyio

SECRET = "s" * 32


def join(user: str, room: str = "lobby") -> str:
    return json.dumps({"type": "JOIN", "roomId": room, "senderId": user})


def text(user: str, content: str, room: str = "lobby", **fields: Any) -> str:
    return json.dumps(
        {"type": "TEXT", "roomId": room, "senderId": user, "content": content, **fields}
    )


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        frame = await ws.recv()
    assert isinstance(frame, str)
    return json.loads(frame)  # type: ignore[no-any-return]


async def send_if_open(ws: ClientConnection, frame: str | bytes) -> None:
    """Send, unless the server has already closed (it refused the call at once)."""
    with contextlib.suppress(ConnectionClosed):
        await ws.send(frame)


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    with anyio.fail_after(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
            return closed.rcvd.code, closed.rcvd.reason


def open_json(served: WebSocketServed, path: str = "/chat", **kwargs: Any) -> Any:
    return connect(served.url(path), subprotocols=[JSON], **kwargs)  # type: ignore[list-item]


async def a_member(served: WebSocketServed, user: str) -> ClientConnection:
    ws = await open_json(served)
    await ws.send(join(user))
    assert (await recv_json(ws))["type"] == "JOIN"
    return ws


# -- frames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subprotocol", "frame", "rule"),
    [
        (JSON, "{not json", "frame: not a JSON chat.ChatMessage"),
        (JSON, '{"type": "JOIN", "roomID": "x"}', 'has no field named "roomID"'),
        (JSON, '{"type": "SHOUT"}', "frame: not a JSON chat.ChatMessage"),
        (JSON, b"\x0a\x01x", "interplay.v1.json carries text frames"),
        (PROTO, join("ann"), "interplay.v1.proto carries binary frames"),
        (PROTO, b"\xff\xff\xff", "frame: not a protobuf chat.ChatMessage"),
    ],
)
async def test_a_bad_frame_closes_its_call_with_4003_naming_the_rule(
    subprotocol: str, frame: str | bytes, rule: str
) -> None:
    async with websocket_server() as served:
        other = await a_member(served, "bob")
        async with connect(served.url("/chat"), subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
            await ws.send(frame)
            code, why = await closed_with(ws)
        assert code == 4003, why
        assert rule in why
        # Nothing else harmed: the other member is still served, and told that ann never was.
        await other.send(text("bob", "still here", id="1"))
        assert (await recv_json(other))["content"] == "still here"
        assert served.runtime.counters.errors["INVALID_ARGUMENT"] == 1
        await other.close()


async def test_a_frame_over_the_limit_is_refused_before_it_is_buffered() -> None:
    async with websocket_server(WebSocketSettings(port=0, max_message_bytes=1000)) as served:
        other = await a_member(served, "bob")
        ws = await open_json(served)
        await ws.send(join("ann"))
        await recv_json(ws)
        await ws.send(text("ann", "x" * 2000))
        code, why = await closed_with(ws)
        assert code == 1009 and "1000" in why  # the library's "message too big", its limit
        assert status_of_close(code, why)[0] == "INVALID_ARGUMENT"  # a client won't retry it
        # bob hears that ann left (her call is over), and is still served
        left = await recv_json(other)
        assert (left["type"], left["senderId"]) == ("JOIN", "ann")
        left = await recv_json(other)
        assert (left["type"], left["senderId"]) == ("LEAVE", "ann")
        await other.send(text("bob", "after", id="2"))
        assert (await recv_json(other))["seq"] == "1"  # ann's oversized TEXT was never stored
        await other.close()


async def test_nothing_may_follow_the_end_message() -> None:
    async with websocket_server() as served:
        ws = await open_json(served)
        await ws.send(join("ann"))
        await ws.send(END)
        await ws.send(text("ann", "late"))
        code, why = await closed_with(ws)
        assert (code, why) == (4003, "frame: nothing may follow the end message")


async def test_the_end_message_flushes_then_closes_1000() -> None:
    async with websocket_server() as served:
        ws = await open_json(served)
        await ws.send(join("ann"))
        for n in range(50):
            await ws.send(text("ann", f"m{n}", id=str(n)))
        await ws.send(END)
        seqs = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "TEXT":
                    seqs.append(int(message["seq"]))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert seqs == list(range(1, 51))


def test_an_end_message_in_any_spelling_of_json_ends_and_only_it() -> None:
    for frame in (END, '{"end": true}', ' { "end" : true } '):
        with pytest.raises(Ended):
            parse(frame, JSON, pb.ChatMessage)
        with pytest.raises(Ended):
            parse(frame, PROTO, pb.ChatMessage)
    for frame in ('{"end": false}', '{"end": true, "type": "TEXT"}'):
        with pytest.raises(InvalidArgument):
            parse(frame, JSON, pb.ChatMessage)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64),
        st.dictionaries(
            st.sampled_from(
                ["type", "roomId", "room_id", "senderId", "content", "seq", "id", "end", "x"]
            ),
            st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none()),
            max_size=5,
        ).map(json.dumps),
    ),
    subprotocol=st.sampled_from([PROTO, JSON]),
    message_type=st.sampled_from([pb.ChatMessage, pb.EditOperation, pb.GameAction]),
)
def test_fuzz_frames_parse_or_are_refused_by_name(
    frame: str | bytes, subprotocol: str, message_type: Any
) -> None:
    """Any frame is a message, the end message, or an InvalidArgument on ``frame``."""
    try:
        parse(frame, subprotocol, message_type)
    except Ended:
        pass
    except InvalidArgument as error:
        assert error.field == "frame" and error.rule


async def test_fuzz_frames_over_a_live_connection_end_only_their_call() -> None:
    """Random frames on a live call: each call ends with a status a client can act on (never
    1011, internal), and the server serves the next call as if nothing happened."""
    rng = random.Random(7)
    samples: list[str | bytes] = [
        rng.randbytes(rng.randrange(40))
        if n % 3
        else "".join(
            chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x10FFFF)]))
            for _ in range(rng.randrange(40))
        )
        .encode("utf-8", "replace")
        .decode("utf-8", "ignore")
        for n in range(60)
    ]
    samples += ['{"type":"TEXT","roomId":"lobby","content":"x"}', '{"type":"LEAVE"}', "{}", b""]
    async with websocket_server() as served:
        for n, frame in enumerate(samples):
            subprotocol = (PROTO, JSON)[n % 2]
            async with connect(served.url("/chat"), subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
                await ws.send(join(f"u{n}") if subprotocol == JSON else _proto_join(f"u{n}"))
                await ws.send(frame)
                await ws.send(END)
                code, why = await closed_with(ws)
                assert code in (1000, 4003, 4007, 4008, 4009), (frame, code, why)
        assert "INTERNAL" not in served.runtime.counters.errors
        await eventually(lambda: served.runtime.statistics().sessions == 0)
        member = await a_member(served, "last")
        await member.close()


def _proto_join(user: str) -> bytes:
    return pb.ChatMessage(
        type=pb.ChatMessage.JOIN, room_id="lobby", sender_id=user
    ).SerializeToString()


def test_a_close_reason_fits_the_close_frame_on_a_character_boundary() -> None:
    long = "é" * 200
    cut = reason(long)
    assert len(cut.encode()) <= MAX_REASON_BYTES and cut.endswith("…")
    assert reason("short") == "short"


# -- the handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "subprotocols", "status", "says"),
    [
        (
            "/chat",
            None,
            400,
            "missing subprotocol: ask for interplay.v1.proto or interplay.v1.json",
        ),
        ("/chat", ["chat.v2"], 400, "unknown subprotocol chat.v2"),
        ("/nowhere", [JSON], 404, "no endpoint /nowhere: the endpoints are /chat, /edit, /game"),
    ],
)
async def test_a_handshake_it_cannot_serve_is_an_http_error_naming_why(
    path: str, subprotocols: list[str] | None, status: int, says: str
) -> None:
    async with websocket_server() as served:
        with pytest.raises(InvalidStatus) as refused:
            await connect(served.url(path), subprotocols=subprotocols)  # type: ignore[arg-type]
        assert refused.value.response.status_code == status
        assert says in refused.value.response.body.decode()


async def test_a_token_comes_in_the_header_or_the_access_token_parameter() -> None:
    auth = Authenticator(SECRET)
    token = auth.mint("ann")
    async with websocket_server(auth=auth) as served:
        async with open_json(served) as ws:
            await send_if_open(ws, join("ann"))
            code, why = await closed_with(ws)
        assert code == 4016 and "authorization" in why
        async with connect(
            served.url(f"/chat?access_token={token}"),
            subprotocols=[JSON],  # type: ignore[list-item]
        ) as ws:
            await ws.send(join("ann"))
            assert (await recv_json(ws))["type"] == "JOIN"
        headers = {"Authorization": f"Bearer {token}"}
        async with open_json(served, additional_headers=headers) as ws:
            await ws.send(join("bob"))  # the token says ann
            code, why = await closed_with(ws)
        assert code == 4007, why
        async with open_json(served, "/chat?access_token=forged") as ws:
            await send_if_open(ws, join("ann"))
            code, _ = await closed_with(ws)
        assert code == 4016


async def test_a_drain_flushes_then_closes_1012() -> None:
    from helpers import runtime_for
    from interplay.transports.websocket import drain, start

    async with runtime_for() as runtime:
        server, service = await start(runtime, WebSocketSettings(port=0))
        port = server.server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}/chat", subprotocols=[JSON])  # type: ignore[list-item]
        await ws.send(join("ann"))
        await recv_json(ws)
        await ws.send(text("ann", "before", id="1"))
        await recv_json(ws)
        await drain(server, service, 5)
        code, why = await closed_with(ws)
        assert code == 1012 and "shutting down" in why
        assert status_of_close(code, why)[0] == "UNAVAILABLE"  # a client comes back
        with pytest.raises(OSError):
            await connect(f"ws://127.0.0.1:{port}/chat", subprotocols=[JSON])  # type: ignore[list-item]


async def test_pings_end_the_session_of_a_peer_that_stopped_answering() -> None:
    settings = WebSocketSettings(port=0, ping_interval=0.1, ping_timeout=0.2, close_timeout=0.2)
    async with websocket_server(settings) as served:
        bob = await a_member(served, "bob")
        ann = await a_member(served, "ann")
        assert (await recv_json(bob))["senderId"] == "ann"
        ann.transport.pause_reading()  # a peer whose network vanished: no pong comes back
        with anyio.fail_after(5):
            while True:
                message = await recv_json(bob)
                if message["type"] == "LEAVE":
                    break
        assert message["senderId"] == "ann"
        ann.transport.abort()
        await bob.close()


# -- the browser app's files -------------------------------------------------------------------


@pytest.fixture
def web_root(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>interplay</title>")
    (tmp_path / "app.js").write_text("export const x = 1;")
    (tmp_path / "_private.txt").write_text("no")
    (tmp_path.parent / "secret.txt").write_text("outside")
    return tmp_path


async def test_the_browser_app_is_served_on_the_same_port(web_root: Path) -> None:
    import httpx

    async with websocket_server(WebSocketSettings(port=0, web_root=web_root)) as served:
        base = f"http://127.0.0.1:{served.port}"
        async with httpx.AsyncClient() as http:
            index = await http.get(f"{base}/")
            assert index.status_code == 200 and "<title>interplay" in index.text
            assert index.headers["content-type"] == "text/html; charset=utf-8"
            script = await http.get(f"{base}/app.js")
            assert script.headers["content-type"] == "text/javascript; charset=utf-8"
            for path in ("/missing.js", "/../secret.txt", "/%2e%2e/secret.txt", "/_private.txt"):
                assert (await http.get(f"{base}{path}")).status_code == 404, path
        member = await a_member(served, "ann")  # and the calls, on the same port
        await member.close()


# -- the Python clients ------------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", [PROTO, JSON])
async def test_the_python_clients_chat_edit_and_play_over_websocket(subprotocol: str) -> None:
    async with websocket_server() as served:
        options = {"subprotocol": subprotocol}
        async with (
            ChatClient("127.0.0.1", served.port, user="ann", **options) as ann,
            EditClient("127.0.0.1", served.port, user="ann", document="d", **options) as editor,
            GameClient("127.0.0.1", served.port, player="ann", **options) as player,
        ):
            await ann.join("lobby")
            await ann.send("lobby", "hi")
            async for message in ann:
                if message.content == "hi":
                    assert message.seq == 1
                    break
            await editor.wait_synced()
            await editor.insert(0, "hello")
            await editor.wait_settled()
            assert served.runtime.documents.text("d") == "hello"
            await player.wait_for(ConnectionState.CONNECTED)
            await player.act("move", dx="1", dy="0")
            await eventually(lambda: "ann" in player.mirror.players)


@pytest.mark.parametrize("subprotocol", [PROTO, JSON])
async def test_editing_over_websocket_is_written_by_the_flusher(subprotocol: str) -> None:
    """The editing sessions' rounds go out through the runtime's flusher, as over gRPC:
    no session needs a writer task of its own, and every editor converges."""
    async with websocket_server() as served:
        options = {"subprotocol": subprotocol, "document": "d"}
        async with (
            EditClient("127.0.0.1", served.port, user="ann", **options) as ann,
            EditClient("127.0.0.1", served.port, user="bob", **options) as bob,
        ):
            await ann.wait_synced()
            await bob.wait_synced()
            before = served.runtime.counters.writes
            for i in range(20):
                await ann.insert(i, "a")
                await bob.insert(0, "b")
            await ann.wait_settled()
            await bob.wait_settled()
            await eventually(lambda: ann.text == bob.text == served.runtime.documents.text("d"))
            assert served.runtime.counters.writes > before
            assert served.runtime.statistics().writers == 0


async def test_a_fatal_close_surfaces_to_the_caller_as_its_status() -> None:
    auth = Authenticator("a-websocket-test-secret-of-32-bytes-or-more")
    expired = auth.mint("ann", ttl=60, now=0)
    async with websocket_server(auth=auth) as served:
        with pytest.raises(CallError) as failed:  # plainly, not in an ExceptionGroup
            async with ChatClient("127.0.0.1", served.port, user="ann", token=expired) as ann:
                with pytest.raises(InvalidArgument, match="room: must be at most 255"):
                    await ann.join("x" * 300)  # refused at once, by the client: not fatal
                await ann.join("lobby")
                async for _ in ann:
                    pass
        assert failed.value.status == "UNAUTHENTICATED" and "expired" in failed.value.message
        assert ann.state is ConnectionState.CLOSED and ann.reconnect_delays == []


@settings(max_examples=200)
@given(
    payloads=st.lists(
        st.one_of(st.binary(max_size=300), st.integers(125, 70_000).map(lambda n: b"p" * n)),
        max_size=4,
    ),
    text=st.booleans(),
)
def test_the_hand_built_frames_are_the_librarys(payloads: list[bytes], text: bool) -> None:
    """``framed`` writes what ``websockets`` would, for every length class."""
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    from interplay.transports.websocket.service import OP_BINARY, OP_TEXT, framed

    library = ServerProtocol()
    library.state = State.OPEN
    for payload in payloads:
        (library.send_text if text else library.send_binary)(payload)
    assert framed(payloads, OP_TEXT if text else OP_BINARY) == b"".join(library.data_to_send())


# -- the Python clients meeting failures no retry can cure (as the gRPC ones do) ----------


async def stops_with(client: Any) -> str:
    """Until the client stops by itself, after one attempt; the message of its error."""
    with anyio.fail_after(10):
        await client.wait_for(ConnectionState.CLOSED)
    assert client.reconnect_delays == []
    assert client.error is not None
    return str(client.error.message)


async def test_the_clients_stop_at_once_on_tls_mismatches_and_unknown_hosts(
    tmp_path: Path,
) -> None:
    from certs import issue
    from interplay.transports.websocket.server import tls_context

    files = issue(tmp_path)
    secure = WebSocketSettings(port=0, tls=tls_context(str(files.cert), str(files.key)))
    async with websocket_server() as plain, websocket_server(secure) as tls:
        async with ChatClient("127.0.0.1", plain.port, user="a", ssl=files.client_context()) as c:
            assert "does not speak TLS" in await stops_with(c)
        async with EditClient("127.0.0.1", tls.port, user="a", document="d") as editor:
            assert "speaks TLS" in await stops_with(editor)
        async with GameClient("127.0.0.1", tls.port, player="a", ssl=True) as player:
            assert "not trusted" in await stops_with(player)
        async with ChatClient("no-such-host.invalid", 8080, user="a") as lost:
            assert "cannot resolve host 'no-such-host.invalid'" in await stops_with(lost)
        # and with the authority trusted, it works over wss://
        async with ChatClient("127.0.0.1", tls.port, user="a", ssl=files.client_context()) as ok:
            await ok.join("lobby")
            await ok.wait_acknowledged(await ok.send("lobby", "over TLS"))


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_token_callable_gives_each_connect_a_fresh_token(kind: str) -> None:
    from interplay.core.backoff import BackoffPolicy
    from interplay.runtime import SlowConsumer

    auth = Authenticator(SECRET)
    minted: list[str] = []

    def mint() -> str:
        minted.append(auth.mint("ann", ttl=60))
        return minted[-1]

    async def mint_async() -> str:
        return mint()

    fast = BackoffPolicy(initial=0.05, multiplier=1.6, jitter=0.2, cap=0.5)
    async with (
        websocket_server(auth=auth) as served,
        ChatClient(
            "127.0.0.1",
            served.port,
            user="ann",
            token=mint if kind == "sync" else mint_async,
            backoff=fast,
        ) as ann,
    ):
        await ann.join("lobby")
        await ann.wait_acknowledged(await ann.send("lobby", "first"))
        [session] = served.runtime._sessions.values()
        served.runtime._cut(session, SlowConsumer("cut for the test"))
        await ann.wait_for(ConnectionState.RECONNECTING)
        await ann.wait_for(ConnectionState.CONNECTED)
        await ann.wait_acknowledged(await ann.send("lobby", "after the reconnect"))
        assert len(minted) == 2  # one per connect
