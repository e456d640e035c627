"""Bearer tokens: no token, a bad one, acting as someone else, or outside the claims each get
their status; the calls that are allowed are unaffected."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import jwt
import pytest
from grpclib.client import Channel, Stream
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from helpers import ChatClient, T, channel_for, chat_call, open_call
from interplay.runtime import Authenticator
from interplay.transports.grpc.generated.chat import EditOperation, GameAction, GameState
from interplay.transports.grpc.service import ChatService

pytestmark = pytest.mark.anyio

SECRET = "test-secret-that-is-long-enough-for-hs256"
AUTH = Authenticator(SECRET)


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[ChatService, Channel]]:
    async with channel_for(auth=AUTH) as served:
        yield served


def bearer(token: str) -> dict[str, Any]:
    return {"metadata": {"authorization": f"Bearer {token}"}}


async def refused(client: ChatClient, **join: Any) -> GRPCError:
    with pytest.raises(GRPCError) as caught:
        await client.join(**join)
        await client.recv()
    return caught.value


async def test_no_token_or_a_bad_one_is_unauthenticated_and_joins_nothing() -> None:
    expired = AUTH.mint("ann", ttl=60, now=0)
    forged = Authenticator("another-secret-that-is-long-enough-too").mint("ann")
    cases = [
        ({}, "authorization: a 'Bearer <token>' header is required"),
        ({"metadata": {"authorization": "Basic YW5uOnB3"}}, "authorization: must be 'Bearer "),
        (bearer("not.a.jwt"), "authorization: "),
        (bearer(expired), "authorization: Signature has expired"),
        (bearer(forged), "authorization: Signature verification failed"),
        (bearer(jwt.encode({"rooms": []}, SECRET)), 'authorization: Token is missing the "sub"'),
    ]
    async with serving() as (service, channel):
        for metadata, message in cases:
            async with chat_call(channel, **metadata) as client:
                error = await refused(client, user="ann")
            assert error.status is Status.UNAUTHENTICATED, metadata
            assert (error.message or "").startswith(message), error.message
        assert service.runtime.rooms.rooms_of("1") == frozenset()
        assert service.counters.errors == {"UNAUTHENTICATED": len(cases)}
        assert service.counters.messages_in == 0  # refused before anything was read


async def test_the_token_is_the_identity_and_its_claims_bound_the_rooms() -> None:
    ann = bearer(AUTH.mint("ann", rooms=["lobby", "dev"]))
    async with (
        serving() as (_, channel),
        chat_call(channel, **ann) as first,
        chat_call(channel, **ann) as second,
        chat_call(channel, **ann) as third,
    ):
        await first.join("")  # no sender_id: acts as the token's user
        [echo] = await first.recv_n(1)
        assert (echo.type, echo.sender_id) == (T.JOIN, "ann")

        error = await refused(second, user="bob")
        assert error.status is Status.PERMISSION_DENIED
        assert error.message == "sender_id: the token is for 'ann', not 'bob'"

        await third.join(user="ann", room="secret")  # outside the claims: refused, not ended
        [notice] = await third.recv_n(1)
        assert (notice.type, notice.room_id, notice.rejection.code) == (T.SYSTEM, "secret", 7)
        assert (notice.rejection.field, notice.rejection.message) == (
            "room_id",
            "the token does not grant 'secret' (its rooms claim)",
        )
        await third.join(user="ann", room="dev")  # the same call goes on
        [echo] = await third.recv_n(1)
        assert (echo.type, echo.room_id) == (T.JOIN, "dev")

        await first.text("still here", id="1")  # the refused calls harmed nothing else
        [text] = await first.recv_n(1)
        assert (text.seq, text.sender_id, text.content) == (1, "ann", "still here")
        await first.stream.end()
        assert await first.recv() is None


async def test_documents_and_matches_claims_hold_for_editing_and_games() -> None:
    token = bearer(AUTH.mint("ann", documents=["notes"], matches=["m1"]))
    async with serving() as (_, channel):
        edit = "/chat.ChatService/CollaborativeEdit"
        async with open_call(channel, edit, EditOperation, EditOperation, **token) as stream:
            await stream.send_message(EditOperation(document_id="notes", operation="join"))
            snapshot = await stream.recv_message()
            assert snapshot is not None and snapshot.operation == "snapshot"
            await stream.send_message(
                EditOperation(document_id="plans", operation="insert", content="x", op_id="o1")
            )
            reject = await stream.recv_message()
            assert reject is not None and (reject.operation, reject.op_id) == ("reject", "o1")
            assert (reject.rejection.code, reject.rejection.field) == (7, "document_id")
            assert reject.rejection.message.startswith("the token does not grant")
            await stream.send_message(
                EditOperation(document_id="notes", operation="insert", content="x", op_id="o2")
            )
            ack = await stream.recv_message()
            assert ack is not None and (ack.operation, ack.op_id) == ("ack", "o2")
            await stream.end()
            await read_to_the_end(stream)

        game = "/chat.ChatService/GameSync"
        async with open_call(channel, game, GameAction, GameState, **token) as stream:
            await stream.send_message(GameAction(action_type="join", match_id="m2"))
            state = await stream.recv_message()
            assert state is not None and state.players == []
            [event] = state.events
            assert (event.event_type, event.rejection.code) == ("rejected", 7)
            assert event.rejection.field == "match_id"
            assert event.rejection.message.startswith("the token does not grant")
            await stream.send_message(GameAction(action_type="join", match_id="m1"))
            state = await stream.recv_message()
            assert state is not None and [p.player_id for p in state.players] == ["ann"]
            await stream.end()
            await read_to_the_end(stream)


async def read_to_the_end(stream: Stream[Any, Any]) -> None:
    """Read until the call ends; its status, if not OK, raises GRPCError."""
    try:
        while await stream.recv_message() is not None:
            pass
    except StreamTerminatedError:
        pass  # reset after error trailers: the trailers carry the status
    stream._maybe_raise()


def test_interplay_token_mints_what_the_server_accepts() -> None:
    exe = [sys.executable, "-m", "interplay", "token", "--user", "ann", "--rooms", "a,b"]
    env = {**os.environ, "INTERPLAY_AUTH_SECRET": SECRET}
    token = subprocess.run(exe, env=env, capture_output=True, text=True, check=True).stdout
    identity = anyio.run(AUTH.authenticate_header, f"Bearer {token.strip()}")
    assert (identity.user, identity.rooms, identity.documents) == ("ann", {"a", "b"}, None)
    short = subprocess.run(
        exe, env={**env, "INTERPLAY_AUTH_SECRET": "short"}, capture_output=True, text=True
    )
    assert short.returncode != 0 and "at least 32 bytes" in short.stderr
