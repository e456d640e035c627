"""The reconnecting clients meeting errors as users do: a refused send is raised, never
re-sent; a failure no retry can cure (TLS or protocol mismatch, an unresolvable host, a bad
token) stops at the first attempt and says why; ``async with`` raises the plain error; a token
callable gives every reconnect a fresh token."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from certs import TLSFiles, issue
from helpers import tcp_server
from interplay.core import ChatLimits, Kind, LimitExceeded, Refused, RoomHub
from interplay.core.backoff import BackoffPolicy
from interplay.core.documents import DocumentHub, DocumentLimits
from interplay.runtime import Authenticator, SlowConsumer
from interplay.transports.grpc.client import ChatClient, ConnectionState, EditClient, GameClient
from interplay.transports.grpc.server import ServerSettings, tls_context

pytestmark = pytest.mark.anyio

FAST = BackoffPolicy(initial=0.05, multiplier=1.6, jitter=0.2, cap=0.5)
SECRET = "a-test-secret-that-is-at-least-32-bytes"


async def first_of(client: ChatClient, kind: Kind) -> object:
    with anyio.fail_after(5):
        async for message in client:
            if message.kind is kind:
                return message
    raise AssertionError(f"the client stopped: {client.error!r}")


async def test_an_oversized_send_raises_at_once_and_nothing_is_sent() -> None:
    async with tcp_server() as served, ChatClient("127.0.0.1", served.port, user="ann") as ann:
        await ann.join("lobby")
        await first_of(ann, Kind.JOIN)
        received = served.service.counters.messages_in
        with pytest.raises(LimitExceeded, match="content: must be at most 65536 bytes"):
            await ann.send("lobby", "x" * 70_000)
        assert ann.rooms.unacknowledged() == []
        sent = await ann.send("lobby", "small")
        await ann.wait_acknowledged(sent)
        assert served.service.counters.messages_in == received + 1  # only the small one
        assert ann.reconnect_delays == []


async def test_a_text_the_server_refuses_is_raised_and_never_re_sent() -> None:
    strict = RoomHub(limits=ChatLimits(max_content_bytes=10))  # stricter than the client's
    async with (
        tcp_server(rooms=strict) as served,
        ChatClient("127.0.0.1", served.port, user="ann", backoff=FAST) as ann,
    ):
        await ann.join("lobby")
        await first_of(ann, Kind.JOIN)
        refused = await ann.send("lobby", "far too long for it")
        with pytest.raises(Refused) as caught:
            await ann.wait_acknowledged(refused)
        assert (caught.value.code, caught.value.field, caught.value.id) == (
            "RESOURCE_EXHAUSTED",
            "content",
            refused,
        )
        notice = await first_of(ann, Kind.SYSTEM)
        assert notice.id == refused and notice.rejection is not None  # type: ignore[attr-defined]
        # A reconnect (the server cuts the session) re-sends nothing refused.
        [session] = served.service.runtime._sessions.values()
        served.service.runtime._cut(session, SlowConsumer("cut for the test"))
        await ann.wait_for(ConnectionState.RECONNECTING)
        await ann.wait_for(ConnectionState.CONNECTED)
        fine = await ann.send("lobby", "ok")
        await ann.wait_acknowledged(fine)
        assert served.service.counters.refusals == 1
        assert ann.state is ConnectionState.CONNECTED


async def test_a_refused_join_leaves_the_client_where_it_was() -> None:
    auth = Authenticator(SECRET)
    token = auth.mint("ann", rooms=["lobby"])
    async with (
        tcp_server(auth=auth) as served,
        ChatClient("127.0.0.1", served.port, user="ann", token=token) as ann,
    ):
        await ann.join("lobby")
        await first_of(ann, Kind.JOIN)
        await ann.join("secret")
        notice = await first_of(ann, Kind.SYSTEM)
        assert notice.room == "secret"  # type: ignore[attr-defined]
        assert "PERMISSION_DENIED room_id: the token does not grant" in notice.content  # type: ignore[attr-defined]
        assert ann.rooms.joined() == ["lobby"]
        sent = await ann.send("lobby", "still here")
        await ann.wait_acknowledged(sent)
        assert served.service.counters.errors == {}


async def test_a_fatal_status_is_raised_plainly_from_async_with_and_not_retried() -> None:
    auth = Authenticator(SECRET)
    expired = auth.mint("ann", ttl=60, now=0)
    async with tcp_server(auth=auth) as served:
        with pytest.raises(GRPCError) as caught:  # not an ExceptionGroup
            async with ChatClient(
                "127.0.0.1", served.port, user="ann", token=expired, backoff=FAST
            ) as ann:
                await ann.join("lobby")
                with anyio.fail_after(5):
                    async for _ in ann:
                        pass
        assert caught.value.status is Status.UNAUTHENTICATED
        assert "Signature has expired" in (caught.value.message or "")
        assert ann.state is ConnectionState.CLOSED and ann.reconnect_delays == []
        with pytest.raises(GRPCError):
            await ann.send("lobby", "after the end")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_token_callable_gives_each_reconnect_a_fresh_token(kind: str) -> None:
    auth = Authenticator(SECRET)
    minted: list[str] = []

    def mint() -> str:
        minted.append(auth.mint("ann", ttl=60))
        return minted[-1]

    async def mint_async() -> str:
        await anyio.lowlevel.checkpoint()
        return mint()

    fresh = mint if kind == "sync" else mint_async

    async with (
        tcp_server(auth=auth) as served,
        ChatClient("127.0.0.1", served.port, user="ann", token=fresh, backoff=FAST) as ann,
    ):
        await ann.join("lobby")
        await first_of(ann, Kind.JOIN)
        [session] = served.service.runtime._sessions.values()
        served.service.runtime._cut(session, SlowConsumer("cut for the test"))
        await ann.wait_for(ConnectionState.RECONNECTING)
        await ann.wait_for(ConnectionState.CONNECTED)
        sent = await ann.send("lobby", "after the reconnect")
        await ann.wait_acknowledged(sent)
        assert len(minted) == 2  # one per connect


# -- failures no retry can cure stop at the first attempt, naming the cause -----------------


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return issue(tmp_path)


@asynccontextmanager
async def both_servers(tls: TLSFiles) -> AsyncIterator[tuple[int, int]]:
    """A plaintext server and a TLS one: their ports."""
    context = tls_context(str(tls.cert), str(tls.key))
    async with tcp_server() as plain, tcp_server(ServerSettings(port=0, tls=context)) as secure:
        yield plain.port, secure.port


async def stops_with(client: ChatClient | EditClient | GameClient) -> str:
    """Until the client stops by itself; the message of its error."""
    with anyio.fail_after(10):
        await client.wait_for(ConnectionState.CLOSED)
    assert client.reconnect_delays == []  # no second attempt
    assert client.error is not None
    return str(client.error.message)


def trusting(tls: TLSFiles) -> ssl.SSLContext:
    return tls.client_context()


async def test_tls_to_a_plaintext_port_stops_and_says_so(tls: TLSFiles) -> None:
    async with (
        both_servers(tls) as (plain, _),
        ChatClient("127.0.0.1", plain, user="ann", ssl=trusting(tls)) as ann,
    ):
        assert "does not speak TLS" in await stops_with(ann)


async def test_plaintext_to_a_tls_port_stops_and_says_so(tls: TLSFiles) -> None:
    async with (
        both_servers(tls) as (_, secure),
        EditClient("127.0.0.1", secure, user="ann", document="d") as editor,
    ):
        assert "speaks TLS" in await stops_with(editor)


async def test_an_untrusted_certificate_stops_and_says_so(tls: TLSFiles) -> None:
    async with (
        both_servers(tls) as (_, secure),
        GameClient("127.0.0.1", secure, player="ann", ssl=True) as player,
    ):
        message = await stops_with(player)
        assert "not trusted (unable to get local issuer certificate)" in message


async def test_a_host_that_does_not_resolve_stops_and_says_so() -> None:
    async with ChatClient("no-such-host.invalid", 50051, user="ann") as ann:
        assert "cannot resolve host 'no-such-host.invalid'" in await stops_with(ann)


async def test_a_reconnect_keeps_its_last_reason() -> None:
    async with ChatClient("127.0.0.1", 1, user="ann", backoff=FAST) as ann:
        with anyio.fail_after(5):
            await ann.wait_for(ConnectionState.RECONNECTING)
        assert ann.last_failure is not None and ann.last_failure.status == "UNAVAILABLE"
        assert "Connect call failed" in ann.last_failure.message


async def test_a_refused_edit_is_reported_and_the_editor_starts_over_from_the_server() -> None:
    strict = DocumentHub(limits=DocumentLimits(max_inserted_chars=5))
    async with (
        tcp_server(documents=strict) as served,
        EditClient("127.0.0.1", served.port, user="ann", document="d") as editor,
    ):
        await editor.insert(0, "hello")
        await editor.wait_settled()
        await editor.insert(5, " there, world")  # over the server's limit
        changes = []
        with anyio.fail_after(5):
            async for change in editor:
                changes.append(change)
                if change.kind == "reset":
                    break
        refused = [c for c in changes if c.kind == "refused"]
        assert refused and refused[0].rejection is not None
        assert refused[0].rejection.code == "RESOURCE_EXHAUSTED"  # a limit
        assert changes[-1].lost and editor.text == "hello"  # the server's text, and ours again
        await editor.insert(5, "!")
        await editor.wait_settled()
        assert served.service.runtime.documents.text("d") == "hello!"
        assert served.service.counters.refusals == 1 and editor.reconnect_delays == []


async def test_a_refused_action_is_kept_and_never_re_sent() -> None:
    async with (
        tcp_server() as served,
        GameClient("127.0.0.1", served.port, player="ann") as player,
    ):
        refused = await player.act("move", dx="50")  # out of range
        fine = await player.act("move", dx="1")
        with anyio.fail_after(5):
            async for mirror in player:
                me = mirror.players.get("ann")
                if me is not None and me.last_sequence >= fine:
                    break
        assert [sequence for sequence, _ in player.refused] == [refused]
        assert player.refused[0][1].field == "parameters.dx"
        assert served.service.counters.refusals == 1
