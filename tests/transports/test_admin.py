"""The server API (interplay.admin.v1.AdminService) over TCP: every call, its authorization,
an idempotent Publish, a Disconnect as the user's client sees it, and a history deleted under
a member who then resumes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import jwt
import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

import helpers
from helpers import Served, T, chat_call, eventually, open_call, tcp_server
from interplay.core import Kind, MatchHub
from interplay.core.backoff import BackoffPolicy
from interplay.core.effects import ReadHistory
from interplay.runtime import AdminAuthenticator, Authenticator
from interplay.transports.grpc.client import ChatClient, ConnectionState
from interplay.transports.grpc.generated.chat import EditOperation, GameAction, GameState
from interplay.transports.grpc.generated.interplay.admin import v1 as admin

pytestmark = pytest.mark.anyio

ADMIN_SECRET = "the-admin-secret-of-this-test-server-32+"
USER_SECRET = "the-user-secret-of-this-test-server-32+b"
ADMIN = AdminAuthenticator(ADMIN_SECRET)
USERS = Authenticator(USER_SECRET)
FAST = BackoffPolicy(initial=0.05, multiplier=1.6, jitter=0.2, cap=0.5)


@asynccontextmanager
async def serving(**runtime: Any) -> AsyncIterator[tuple[Served, admin.AdminServiceStub]]:
    """A server with the admin API on a free port, and a stub carrying an admin token."""
    runtime.setdefault("admin", ADMIN)
    async with tcp_server(**runtime) as served, channel_to(served) as channel:
        yield served, stub(channel, ADMIN.mint())


@asynccontextmanager
async def channel_to(served: Served) -> AsyncIterator[Channel]:
    channel = Channel("127.0.0.1", served.port)
    try:
        yield channel
    finally:
        channel.close()


@asynccontextmanager
async def member(
    served: Served, user: str, room: str = "lobby"
) -> AsyncIterator[helpers.ChatClient]:
    """A raw chat call that joined ``room`` as ``user`` and read its echo."""
    async with channel_to(served) as channel, chat_call(channel) as call:
        await call.join(user, room=room)
        await call.recv_n(1)
        yield call


def stub(channel: Channel, token: str | None) -> admin.AdminServiceStub:
    metadata = {"authorization": f"Bearer {token}"} if token is not None else None
    return admin.AdminServiceStub(channel, metadata=metadata)


async def test_publish_reaches_members_with_its_seq_and_a_resend_is_stored_once() -> None:
    async with serving() as (served, api), member(served, "ann") as ann:
        request = admin.PublishRequest(room="lobby", sender="bot", content="hello", id="b1")
        first = await api.publish(request)
        again = await api.publish(request)  # a retry: the original back, stored once
        assert (first.message.seq, first.duplicate) == (1, False)
        assert (again.message.seq, again.duplicate, again.message.id) == (1, True, "b1")
        notice = await api.publish(
            admin.PublishRequest(
                room="lobby", sender="ops", content="maintenance", type=admin.MessageType.SYSTEM
            )
        )
        assert notice.message.seq == 2 and notice.message.id  # the server made the id
        [text, system] = await ann.recv_n(2)
        assert (text.type, text.seq, text.sender_id, text.content) == (T.TEXT, 1, "bot", "hello")
        assert (system.type, system.seq, system.content) == (T.SYSTEM, 2, "maintenance")
        page = await api.history(admin.HistoryRequest(room="lobby"))
        assert [(m.seq, m.sender, m.type) for m in page.messages] == [
            (1, "bot", admin.MessageType.TEXT),
            (2, "ops", admin.MessageType.SYSTEM),
        ]
        assert page.head == 2 and page.epoch == text.epoch


async def test_publish_into_a_room_no_one_is_in_is_kept_for_the_next_joiner() -> None:
    async with serving() as (served, api):
        await api.publish(admin.PublishRequest(room="empty", sender="bot", content="first"))
        await api.publish(admin.PublishRequest(room="empty", sender="bot", content="x", id="a"))
        again = await api.publish(
            admin.PublishRequest(room="empty", sender="bot", content="x", id="a")
        )
        assert again.duplicate and again.message.seq == 2  # recognised after a reload too
        async with channel_to(served) as channel, chat_call(channel) as bob:
            await bob.join("bob", room="empty")
            [echo, *history] = await bob.recv_n(3)
            assert echo.seq == 2
            assert [m.content for m in history] == ["first", "x"]


async def test_a_bad_publish_names_the_field() -> None:
    invalid = Status.INVALID_ARGUMENT
    cases = [
        (
            admin.PublishRequest(room="", sender="bot", content="x"),
            invalid,
            "room: must not be empty",
        ),
        (
            admin.PublishRequest(room="r", sender="", content="x"),
            invalid,
            "sender: must not be empty",
        ),
        (
            admin.PublishRequest(room="r", sender="bot", content="x", type=2),  # LEAVE
            invalid,
            "type: must be TEXT or SYSTEM, got LEAVE",
        ),
        (
            admin.PublishRequest(room="r", sender="bot", content="x" * 70_000),
            Status.RESOURCE_EXHAUSTED,
            "content: must be at most 65536 bytes of UTF-8",
        ),
    ]
    async with serving() as (_, api):
        for request, status, says in cases:
            with pytest.raises(GRPCError) as caught:
                await api.publish(request)
            assert (caught.value.status, caught.value.message) == (status, says)
        await api.publish(admin.PublishRequest(room="r", sender="bot", content="fine"))


async def test_history_pages_by_seq() -> None:
    async with serving() as (_, api):
        for n in range(1, 6):
            await api.publish(admin.PublishRequest(room="log", sender="bot", content=f"m{n}"))
        seen: list[int] = []
        after = 0
        while True:
            page = await api.history(admin.HistoryRequest(room="log", after_seq=after, limit=2))
            if not page.messages:
                break
            seen += [m.seq for m in page.messages]
            after = page.messages[-1].seq
        assert seen == [1, 2, 3, 4, 5] and page.head == 5
        unknown = await api.history(admin.HistoryRequest(room="nowhere"))
        assert (unknown.messages, unknown.epoch, unknown.head) == ([], "", 0)
        with pytest.raises(GRPCError) as caught:
            await api.history(admin.HistoryRequest(room="log", limit=5000))
        assert (caught.value.status, caught.value.message) == (
            Status.INVALID_ARGUMENT,
            "limit: must be 1 to 1000",
        )


async def test_presence() -> None:
    async with (
        serving(games=MatchHub()) as (served, api),
        member(served, "ann") as ann,
        member(served, "bob"),
    ):
        await ann.recv_until(lambda m: m.type == T.JOIN and m.sender_id == "bob")
        assert (await api.presence(admin.PresenceRequest(room="lobby"))).users == ["ann", "bob"]
        assert (await api.presence(admin.PresenceRequest(room="elsewhere"))).users == []


async def test_snapshot_live_and_stored_and_matches() -> None:
    async with serving(games=MatchHub()) as (served, api), channel_to(served) as channel:
        edit = "/chat.ChatService/CollaborativeEdit"
        async with open_call(channel, edit, EditOperation, EditOperation) as editor:
            await editor.send_message(
                EditOperation(document_id="notes", user_id="eve", operation="insert", content="hi")
            )
            replies = [await editor.recv_message() for _ in range(2)]  # snapshot, ack
            assert replies[-1] is not None and replies[-1].operation == "ack"
            live = await api.snapshot(admin.SnapshotRequest(document="notes"))
            assert (live.text, live.revision) == ("hi", 1)
            await editor.end()
            assert await editor.recv_message() is None
        await eventually(lambda: not served.service.runtime.documents.is_open("notes"))
        stored = await api.snapshot(admin.SnapshotRequest(document="notes"))  # from the store
        assert (stored.text, stored.revision) == ("hi", 1)
        never = await api.snapshot(admin.SnapshotRequest(document="blank"))
        assert (never.text, never.revision) == ("", 0)

        game = "/chat.ChatService/GameSync"
        async with open_call(channel, game, GameAction, GameState) as player:
            await player.send_message(
                GameAction(player_id="zed", action_type="join", match_id="m1")
            )
            assert await player.recv_message() is not None  # the match ticks
            [match] = (await api.matches(admin.MatchesRequest())).matches
            assert (match.match, match.players) == ("m1", ["zed"]) and match.tick >= 1
            await player.end()


async def test_without_a_token_or_with_a_users_it_is_refused() -> None:
    expired = ADMIN.mint(ttl=60, now=time.time() - 3600)
    forged = AdminAuthenticator("some-other-admin-secret-of-32-bytes+").mint()
    no_audience = jwt.encode({"exp": time.time() + 60}, ADMIN_SECRET, algorithm="HS256")
    cases = [
        (None, Status.UNAUTHENTICATED, "authorization: a 'Bearer <token>' header is required"),
        ("not.a.jwt", Status.UNAUTHENTICATED, "authorization: "),
        (expired, Status.UNAUTHENTICATED, "authorization: Signature has expired"),
        (forged, Status.UNAUTHENTICATED, "authorization: Signature verification failed"),
        (no_audience, Status.UNAUTHENTICATED, 'authorization: Token is missing the "aud"'),
        (
            USERS.mint("ann"),
            Status.PERMISSION_DENIED,
            "authorization: a user's token does not authorize the admin API",
        ),
    ]
    async with serving(auth=USERS) as (served, _), channel_to(served) as channel:
        for token, status, says in cases:
            api = stub(channel, token)
            with pytest.raises(GRPCError) as caught:
                await api.publish(admin.PublishRequest(room="r", sender="x", content="no"))
            assert caught.value.status is status, token
            assert (caught.value.message or "").startswith(says), caught.value.message
            with pytest.raises(GRPCError) as caught:
                await api.presence(admin.PresenceRequest(room="r"))
            assert caught.value.status is status
        runtime = served.service.runtime
        assert runtime.counters.admin_calls == 0
        stored = await runtime.backend.read(ReadHistory(room="r", after_seq=0, limit=10))
        assert stored == []  # nothing was published


async def test_without_an_admin_secret_there_is_no_admin_api() -> None:
    path = "/interplay.admin.v1.AdminService/Presence"
    async with serving() as (served, _):
        assert path in served.server._mapping
    async with serving(admin=None) as (served, api):
        assert path not in served.server._mapping  # not served at all: grpclib's UNIMPLEMENTED
        with pytest.raises(GRPCError):
            await api.presence(admin.PresenceRequest(room="lobby"))
        assert served.service.runtime.counters.admin_calls == 0


async def test_disconnect_is_fatal_to_the_users_client_unless_it_says_reconnect() -> None:
    async with serving() as (served, api):
        async with (
            ChatClient("127.0.0.1", served.port, user="ann", backoff=FAST) as ann,
            ChatClient("127.0.0.1", served.port, user="ann", backoff=FAST) as ann2,
            ChatClient("127.0.0.1", served.port, user="bob", backoff=FAST) as bob,
        ):
            for client in (ann, ann2, bob):
                await client.join("lobby")
            await eventually(
                lambda: served.service.runtime.rooms.members("lobby") == ["ann", "bob"]
            )
            await eventually(lambda: served.service.runtime.statistics().sessions == 3)
            reply = await api.disconnect(admin.DisconnectRequest(user="ann", reason="banned"))
            assert reply.streams == 2  # both of ann's
            for client in (ann, ann2):
                with pytest.raises(GRPCError) as caught, anyio.fail_after(5):
                    async for _ in client:
                        pass
                assert caught.value.status is Status.PERMISSION_DENIED
                assert caught.value.message == "disconnected by the server: banned"
                assert client.state is ConnectionState.CLOSED and client.reconnect_delays == []

            reply = await api.disconnect(
                admin.DisconnectRequest(user="bob", reason="rebalancing", reconnect=True)
            )
            assert reply.streams == 1
            with anyio.fail_after(5):
                await bob.wait_for(ConnectionState.RECONNECTING)
                await bob.wait_for(ConnectionState.CONNECTED)
            await bob.send("lobby", "still here")
            with anyio.fail_after(5):
                async for message in bob:
                    if message.kind is Kind.TEXT:
                        assert message.content == "still here"
                        break
            assert len(bob.reconnect_delays) == 1
        assert (await api.disconnect(admin.DisconnectRequest(user="nobody"))).streams == 0


async def test_delete_history_renumbers_under_a_new_epoch_and_members_resume() -> None:
    async with serving() as (served, api):
        async with (
            ChatClient("127.0.0.1", served.port, user="ann", backoff=FAST) as ann,
            ChatClient("127.0.0.1", served.port, user="bob", backoff=FAST) as bob,
        ):
            await ann.join("lobby")
            await bob.join("lobby")
            for n in range(3):
                await ann.send("lobby", f"ann {n}")
                await bob.send("lobby", f"bob {n}")
            shown: list[tuple[Kind, int, str]] = []
            with anyio.fail_after(5):
                async for message in ann:
                    if message.kind is Kind.TEXT:
                        shown.append((message.kind, message.seq, message.content))
                    if len(shown) == 6:
                        break
            old_epoch = ann.rooms._rooms["lobby"].epoch
            deleted = await api.delete_history(admin.DeleteHistoryRequest(room="lobby", user="bob"))
            assert (deleted.removed, deleted.head) == (3, 3) and deleted.epoch != old_epoch

            # ann's client sees the notice's new epoch, resumes, and is told of the reset.
            with anyio.fail_after(5):
                async for message in ann:
                    if message.kind is Kind.SYSTEM:
                        assert "history was reset" in message.content
                        break
            assert ann.rooms._rooms["lobby"].epoch == deleted.epoch
            await ann.send("lobby", "after")
            with anyio.fail_after(5):
                async for message in ann:
                    if message.kind is Kind.TEXT and message.content == "after":
                        assert message.seq == 4  # the renumbered stream goes on
                        break
        page = await api.history(admin.HistoryRequest(room="lobby"))
        assert [(m.seq, m.content) for m in page.messages] == [
            (1, "ann 0"),
            (2, "ann 1"),
            (3, "ann 2"),
            (4, "after"),
        ]
        assert {m.epoch for m in page.messages} == {deleted.epoch}
        everything = await api.delete_history(admin.DeleteHistoryRequest(room="lobby"))
        assert (everything.removed, everything.head) == (4, 0)
        assert (await api.history(admin.HistoryRequest(room="lobby"))).messages == []
        nothing = await api.delete_history(admin.DeleteHistoryRequest(room="lobby", user="x"))
        assert (nothing.removed, nothing.epoch) == (0, everything.epoch)  # nothing changed
