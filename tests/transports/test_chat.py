"""Chat end to end over grpclib's in-memory channel (grpclib.testing.ChannelFor)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from helpers import T, channel_for, chat_call, msg, runtime_for
from interplay.core import ChatLimits, RoomHub
from interplay.runtime import Settings
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.service import ChatService

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(
    settings: Settings | None = None, limits: ChatLimits | None = None
) -> AsyncIterator[tuple[ChatService, object]]:
    async with channel_for(settings=settings, rooms=RoomHub(limits=limits)) as served:
        yield served


def texts(messages: list) -> list[tuple[int, str, str]]:  # type: ignore[type-arg]
    return [(m.seq, m.sender_id, m.content) for m in messages if m.type == T.TEXT]


async def test_two_users_chat_and_everyone_gets_each_text_with_its_seq() -> None:
    async with serving() as (_, channel), chat_call(channel) as ann, chat_call(channel) as bob:
        await ann.join("ann")
        [echo] = await ann.recv_n(1)
        assert (echo.type, echo.seq, echo.epoch != "") == (T.JOIN, 0, True)
        await bob.join("bob")
        bob_echo, ann_present = await bob.recv_n(2)
        assert (bob_echo.sender_id, bob_echo.epoch) == ("bob", echo.epoch)
        assert (ann_present.type, ann_present.sender_id) == (T.JOIN, "ann")
        [bob_joined] = await ann.recv_n(1)
        assert (bob_joined.type, bob_joined.sender_id) == (T.JOIN, "bob")

        await ann.text("hi bob", id="a1")
        await bob.text("hi ann", id="b1")
        expected = [(1, "ann", "hi bob"), (2, "bob", "hi ann")]
        assert texts(await ann.recv_n(2)) == expected  # the sender's copy is its ack
        assert texts(await bob.recv_n(2)) == expected


async def test_late_joiner_gets_history_then_live_with_no_gap_or_duplicate() -> None:
    async with serving() as (_, channel), chat_call(channel) as ann:
        await ann.join("ann")
        await ann.recv_n(1)
        for n in range(5):
            await ann.text(f"m{n}")
        await ann.recv_n(5)
        async with chat_call(channel) as bob:
            await bob.join("bob")
            # Traffic racing the join: sent before bob's JOIN is necessarily handled.
            for n in range(5, 10):
                await ann.text(f"m{n}")
            received = await bob.recv_until(lambda m: m.type == T.TEXT and m.seq == 10)
            assert [m.seq for m in received if m.type == T.TEXT] == list(range(1, 11))
            assert received[0].type == T.JOIN and received[0].sender_id == "bob"


async def test_resume_after_seq_replays_exactly_what_was_missed() -> None:
    async with serving() as (_, channel), chat_call(channel) as ann:
        await ann.join("ann")
        [echo] = await ann.recv_n(1)
        for n in range(6):
            await ann.text(f"m{n}")
        await ann.recv_n(6)
        async with chat_call(channel) as again:
            await again.join("bob", resume_after_seq=4, epoch=echo.epoch)
            got = await again.recv_n(4)  # echo, ann present, seq 5, seq 6
            assert [(m.type, m.seq) for m in got] == [
                (T.JOIN, 6),
                (T.JOIN, 0),
                (T.TEXT, 5),
                (T.TEXT, 6),
            ]
        async with chat_call(channel) as other_epoch:
            await other_epoch.join("cat", resume_after_seq=4, epoch="an-old-epoch")
            got = await other_epoch.recv_until(lambda m: m.type != T.JOIN)
            assert got[-1].type == T.SYSTEM and "reset" in got[-1].content
            window = await other_epoch.recv_n(6)  # then the normal history window
            assert [m.seq for m in window] == [1, 2, 3, 4, 5, 6]


async def test_half_close_flushes_queued_messages_then_ends_with_ok() -> None:
    async with serving() as (_, channel), chat_call(channel) as bob:
        await bob.join("bob")
        await bob.recv_n(1)
        async with chat_call(channel) as ann:
            await ann.join("ann")
            for n in range(50):
                await ann.text(f"m{n}")
            await ann.stream.end()  # half-close before reading anything
            received = await ann.recv_until(lambda m: m.type == T.TEXT and m.seq == 50)
            assert [m.seq for m in received if m.type == T.TEXT] == list(range(1, 51))
            assert await ann.recv() is None  # then the call ends: OK trailers
            await ann.stream.recv_trailing_metadata()
        left = await bob.recv_until(lambda m: m.type == T.LEAVE)
        assert left[-1].sender_id == "ann" and len(texts(left)) == 50


async def test_a_stream_that_breaks_without_leave_is_announced() -> None:
    async with serving() as (service, channel), chat_call(channel) as bob:
        await bob.join("bob")
        await bob.recv_n(1)
        async with chat_call(channel) as ann:
            await ann.join("ann")
            await ann.recv_n(2)
            await bob.recv_n(1)
        # leaving the block without ending the call resets the stream
        [left] = await bob.recv_n(1)
        assert (left.type, left.sender_id) == (T.LEAVE, "ann")
        assert service.runtime.rooms.members("lobby") == ["bob"]


async def test_text_before_join_fails_that_stream_only() -> None:
    async with serving() as (service, channel), chat_call(channel) as ann:
        await ann.join("ann")
        await ann.recv_n(1)
        async with chat_call(channel) as rude:
            await rude.text("hello?")
            with pytest.raises(GRPCError) as caught:
                await rude.recv()
            assert caught.value.status is Status.FAILED_PRECONDITION
            assert caught.value.message == "room_id: JOIN room 'lobby' before sending TEXT"
        await ann.text("still here")
        assert texts(await ann.recv_n(1)) == [(1, "ann", "still here")]
        assert service.counters.errors == {"FAILED_PRECONDITION": 1}


@pytest.mark.parametrize(
    ("message", "status", "text"),
    [
        (msg(T.JOIN, sender_id="mallory"), Status.PERMISSION_DENIED, "sender_id: this stream"),
        (msg(T.TEXT, sender_id="mallory", content="x"), Status.PERMISSION_DENIED, "sender_id"),
        (msg(T.TEXT, content="x" * 70_000), Status.RESOURCE_EXHAUSTED, "content: must be at"),
        (msg(T.TEXT, room="r" * 300), Status.INVALID_ARGUMENT, "room_id: must be at most 255"),
        (msg(T.SYSTEM), Status.INVALID_ARGUMENT, "type: SYSTEM messages are sent by the server"),
        (msg(T.JOIN, sender_id="bob", resume_after_seq=-3), Status.INVALID_ARGUMENT, "resume"),
        (msg(T.JOIN, sender_id="bob", resume_after_seq=99), Status.INVALID_ARGUMENT, "head"),
    ],
)
async def test_bad_input_ends_that_stream_with_a_clear_status(
    message: object, status: Status, text: str
) -> None:
    async with serving() as (service, channel), chat_call(channel) as ann:
        await ann.join("ann")
        await ann.recv_n(1)
        async with chat_call(channel) as bob:
            await bob.join("bob")
            await bob.recv_n(2)
            await bob.send(message)  # type: ignore[arg-type]
            with pytest.raises(GRPCError) as caught:
                await bob.recv_until(lambda m: False)
            assert caught.value.status is status
            assert text in (caught.value.message or "")
        await ann.text("unaffected")
        got = await ann.recv_until(lambda m: m.type == T.TEXT)
        assert [(m.type, m.sender_id) for m in got[:-1]] == [(T.JOIN, "bob"), (T.LEAVE, "bob")]
        assert got[-1].seq == 1
        assert service.runtime.rooms.members("lobby") == ["ann"]


async def test_the_rate_limit_shapes_a_flooding_stream_and_refuses_nothing() -> None:
    settings = Settings(rate=50, burst=3)
    async with serving(settings) as (service, channel), chat_call(channel) as ann:
        await ann.join("ann")
        for n in range(10):
            await ann.text(f"m{n}")
        got = await ann.recv_until(lambda m: m.type == T.TEXT and m.seq == 10)
        assert [m.content for m in got if m.type == T.TEXT] == [f"m{n}" for n in range(10)]
        assert service.counters.shaped >= 10 - 3 - 1  # the burst (and the JOIN's token) aside
        await ann.text("still open")
        [last] = await ann.recv_n(1)
        assert last.seq == 11


async def test_slow_consumer_is_cut_others_lose_nothing_and_it_resumes() -> None:
    # Real sockets, one connection per client: on a shared HTTP/2 connection a stream that
    # never reads starves the others through the connection window, whatever the server does.
    settings = Settings(high_water=8, low_water=2, drain_timeout=0.3, rate=0)
    async with runtime_for(settings=settings) as runtime:
        await _slow_consumer(ChatService(runtime))


async def _slow_consumer(service: ChatService) -> None:
    server = Server([service], codec=WireCodec())
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tiny = Configuration(http2_stream_window_size=65_535, http2_connection_window_size=65_535)
    channels = [Channel("127.0.0.1", port, codec=WireCodec()) for _ in range(3)]
    channels.append(Channel("127.0.0.1", port, codec=WireCodec(), config=tiny))
    total, body = 400, "x" * 2_000
    try:
        async with chat_call(channels[0]) as ann, chat_call(channels[1]) as bob:
            await ann.join("ann")
            await ann.recv_n(1)
            await bob.join("bob")
            [bob_echo, _] = await bob.recv_n(2)
            await ann.recv_n(1)
            async with chat_call(channels[3]) as slow:
                await slow.join("slow")
                await slow.recv_n(3)
                await ann.recv_n(1)
                await bob.recv_n(1)
                got: dict[str, list[int]] = {}

                async def read_all(name: str, client: object) -> None:
                    messages = await client.recv_until(
                        lambda m: m.type == T.TEXT and m.seq == total, timeout=20
                    )  # type: ignore[attr-defined]
                    got[name] = [m.seq for m in messages if m.type == T.TEXT]

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(read_all, "ann", ann)
                    tasks.start_soon(read_all, "bob", bob)
                    for n in range(total):
                        await ann.text(body, id=f"m{n}")
                assert got == {"ann": list(range(1, total + 1)), "bob": list(range(1, total + 1))}
                # The slow stream read nothing meanwhile; it was cut with a reason it can act on.
                seen = 0
                with pytest.raises(GRPCError) as caught:
                    while (m := await slow.recv()) is not None:
                        seen = max(seen, m.seq)
                assert caught.value.status is Status.RESOURCE_EXHAUSTED
                assert "slow consumer" in (caught.value.message or "")
            assert seen < total  # grpclib clients drop what they buffered when reset
            assert service.counters.slow_consumer_disconnects == 1
            assert service.counters.pauses >= 1
            # It comes back and resumes from the last seq it saw: nothing lost, no duplicate.
            async with chat_call(channels[2]) as back:
                await back.join("slow", resume_after_seq=seen, epoch=bob_echo.epoch)
                rest = await back.recv_until(
                    lambda m: m.type == T.TEXT and m.seq == total, timeout=20
                )
                assert [m.seq for m in rest if m.type == T.TEXT] == list(range(seen + 1, total + 1))
            await ann.stream.end()
            await bob.stream.end()
    finally:
        for channel in channels:
            channel.close()
        server.close()
        await server.wait_closed()


async def test_typing_is_relayed_to_the_others_only() -> None:
    async with serving() as (_, channel), chat_call(channel) as ann:
        await ann.join("ann")
        await ann.recv_n(1)
        async with chat_call(channel) as bob:
            await bob.join("bob")
            await bob.recv_n(2)
            await ann.recv_n(1)
            await bob.send(msg(T.TYPING))
            [typing] = await ann.recv_n(1)
            assert (typing.type, typing.sender_id, typing.seq) == (T.TYPING, "bob", 0)
            await bob.text("done")
            assert texts(await bob.recv_n(1)) == [(1, "bob", "done")]  # no TYPING echo
