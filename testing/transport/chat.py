"""Chat, end to end (DESIGN §4 "Chat"): the checks of ``ChatConformance``."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from interplay.transports.grpc.generated.chat import ChatMessage

from .base import SUPPRESSED, Transport
from .calls import CallEnded, ChatCall, Ended, T, msg, rejected
from .server import ChatLimits, Settings


def texts(messages: list[ChatMessage]) -> list[tuple[int, str, str]]:
    return [(m.seq, m.sender_id, m.content) for m in messages if m.type == T.TEXT]


REFUSED = [
    (msg(T.TEXT, content="x" * 70_000, id="t1"), ("RESOURCE_EXHAUSTED", "content", "must be at")),
    (msg(T.TEXT, room="r" * 300, id="t2"), ("INVALID_ARGUMENT", "room_id", "must be at most 255")),
    (msg(T.TEXT, room="dev", id="t3"), ("FAILED_PRECONDITION", "room_id", "JOIN room 'dev'")),
    (msg(T.TYPING, room="dev"), ("FAILED_PRECONDITION", "room_id", "JOIN room 'dev' before")),
    (msg(T.LEAVE, room="dev"), ("FAILED_PRECONDITION", "room_id", "JOIN room 'dev' before")),
    (msg(T.SYSTEM, id="s1"), ("INVALID_ARGUMENT", "type", "SYSTEM messages are sent by")),
    (
        msg(T.JOIN, sender_id="bob", resume_after_seq=-3),
        ("INVALID_ARGUMENT", "resume_after_seq", ""),
    ),
    (
        msg(T.JOIN, sender_id="bob", resume_after_seq=99),
        ("INVALID_ARGUMENT", "resume_after_seq", "head"),
    ),
    (msg(T.JOIN, room="", sender_id="bob"), ("INVALID_ARGUMENT", "room_id", "must not be empty")),
]


# -- valid and refused messages mixed on one stream, against a model ---------------------

ROOMS = st.sampled_from(["a", "b", "c"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("join"), ROOMS),
        st.tuples(st.just("leave"), ROOMS),
        st.tuples(st.just("text"), ROOMS, st.integers(0, 24)),  # the limit is 16 bytes
        st.tuples(st.just("typing"), ROOMS),
        st.tuples(st.just("resume"), ROOMS),  # a JOIN resuming after seq -1
        st.tuples(st.just("system")),
    ),
    max_size=30,
)


def expected_refusals(
    steps: list[tuple[Any, ...]], joined: list[str]
) -> tuple[list[str], list[str]]:
    """The model: which step ids the server refuses, and the ids of the TEXTs it accepts
    (``joined`` is the rooms the stream starts in; at most 2 at a time)."""
    refused, accepted = [], []
    for n, (kind, *args) in enumerate(steps):
        room = args[0] if args else ""
        ok = {
            "join": room in joined or len(joined) < 2,
            "leave": room in joined,
            "text": room in joined and (len(args) < 2 or args[1] <= 16),
            "typing": room in joined,
            "resume": False,
            "system": False,
        }[kind]
        if not ok:
            refused.append(f"m{n}")
        elif kind == "join" and room not in joined:
            joined.append(room)
        elif kind == "leave":
            joined.remove(room)
        elif kind == "text":
            accepted.append(f"m{n}")
    return refused, accepted


def step_message(n: int, kind: str, *args: Any) -> ChatMessage:
    room = args[0] if args else "a"
    if kind in ("join", "resume"):
        resume = {"resume_after_seq": -1} if kind == "resume" else {}
        return msg(T.JOIN, room, sender_id="ann", id=f"m{n}", **resume)
    if kind == "text":
        return msg(T.TEXT, room, content="x" * args[1], id=f"m{n}")
    kinds = {"leave": T.LEAVE, "typing": T.TYPING, "system": T.SYSTEM}
    return msg(kinds[kind], room, id=f"m{n}")


class ChatConformance(Transport):
    """Chat, end to end (DESIGN §4 "Chat"): every check, on your transport."""

    async def test_two_users_chat_and_everyone_gets_each_text_with_its_seq(self) -> None:
        async with self.serve() as server, server.chat() as ann, server.chat() as bob:
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
            # Two streams sent back to back: either may be first (on two nodes they race), and
            # everyone sees the same order, the sender's copy being its ack.
            seen = texts(await ann.recv_n(2))
            assert [seq for seq, _, _ in seen] == [1, 2]
            assert {(sender, content) for _, sender, content in seen} == {
                ("ann", "hi bob"),
                ("bob", "hi ann"),
            }
            assert texts(await bob.recv_n(2)) == seen

    async def test_late_joiner_gets_history_then_live_with_no_gap_or_duplicate(self) -> None:
        async with self.serve() as server, server.chat() as ann:
            await ann.join("ann")
            await ann.recv_n(1)
            for n in range(5):
                await ann.text(f"m{n}")
            await ann.recv_n(5)
            async with server.chat() as bob:
                await bob.join("bob")
                # Traffic racing the join: sent before bob's JOIN is necessarily handled.
                for n in range(5, 10):
                    await ann.text(f"m{n}")
                received = await bob.recv_until(lambda m: m.type == T.TEXT and m.seq == 10)
                assert [m.seq for m in received if m.type == T.TEXT] == list(range(1, 11))
                assert received[0].type == T.JOIN and received[0].sender_id == "bob"

    async def test_resume_after_seq_replays_exactly_what_was_missed(self) -> None:
        async with self.serve() as server, server.chat() as ann:
            await ann.join("ann")
            [echo] = await ann.recv_n(1)
            for n in range(6):
                await ann.text(f"m{n}")
            await ann.recv_n(6)
            async with server.chat() as again:
                await again.join("bob", resume_after_seq=4, epoch=echo.epoch)
                got = await again.recv_n(4)  # echo, ann present, seq 5, seq 6
                assert [(m.type, m.seq) for m in got] == [
                    (T.JOIN, 6),
                    (T.JOIN, 0),
                    (T.TEXT, 5),
                    (T.TEXT, 6),
                ]
            async with server.chat() as other_epoch:
                await other_epoch.join("cat", resume_after_seq=4, epoch="an-old-epoch")
                got = await other_epoch.recv_until(lambda m: m.type != T.JOIN)
                assert got[-1].type == T.SYSTEM and "reset" in got[-1].content
                window = await other_epoch.recv_n(6)  # then the normal history window
                assert [m.seq for m in window] == [1, 2, 3, 4, 5, 6]

    async def test_half_close_flushes_queued_messages_then_ends_with_ok(self) -> None:
        async with self.serve() as server, server.chat() as bob:
            await bob.join("bob")
            await bob.recv_n(1)
            async with server.chat() as ann:
                await ann.join("ann")
                for n in range(50):
                    await ann.text(f"m{n}")
                await ann.end()  # half-close before reading anything
                received = await ann.recv_until(lambda m: m.type == T.TEXT and m.seq == 50)
                assert [m.seq for m in received if m.type == T.TEXT] == list(range(1, 51))
                assert await ann.recv() is None  # then the call ends: OK
                assert ann.ended == Ended("OK")
            left = await bob.recv_until(lambda m: m.type == T.LEAVE)
            assert left[-1].sender_id == "ann" and len(texts(left)) == 50

    async def test_a_stream_that_breaks_without_leave_is_announced(self) -> None:
        async with self.serve() as server, server.chat() as bob:
            await bob.join("bob")
            await bob.recv_n(1)
            async with server.chat() as ann:
                await ann.join("ann")
                await ann.recv_n(2)
                await bob.recv_n(1)
            # leaving the block without ending the call breaks it
            [left] = await bob.recv_n(1)
            assert (left.type, left.sender_id) == (T.LEAVE, "ann")
            assert server.members("lobby") == ["bob"]

    async def test_text_before_join_is_refused_and_the_stream_goes_on(self) -> None:
        async with self.serve() as server, server.chat() as ann:
            await ann.join("ann")
            await ann.recv_n(1)
            async with server.chat() as early:
                await early.text("hello?", id="e1")
                refusal = await early.refusal()
                assert (refusal.id, refusal.room_id, refusal.seq) == ("e1", "lobby", 0)
                assert rejected(refusal.rejection) == (
                    "FAILED_PRECONDITION",
                    "room_id",
                    "JOIN room 'lobby' before sending TEXT",
                )
                assert refusal.content == (
                    "refused TEXT 'e1': FAILED_PRECONDITION room_id: JOIN room 'lobby' before "
                    "sending TEXT"
                )  # what a client that knows nothing of rejections shows
                await early.join("bob")
                await early.text("now it works", id="e2")
                got = await early.recv_until(lambda m: m.type == T.TEXT)
                assert texts(got) == [(1, "bob", "now it works")]
            await ann.text("still here")
            assert texts(await ann.recv_until(lambda m: m.type == T.TEXT)) == [
                (1, "bob", "now it works")
            ]
            assert server.counters.errors == {}  # no call ended with a status
            assert server.counters.refusals == 1

    @pytest.mark.parametrize(("message", "why"), REFUSED)
    async def test_a_message_breaking_a_rule_is_refused_and_nothing_else_changes(
        self, message: ChatMessage, why: tuple[str, str, str]
    ) -> None:
        limits = ChatLimits(max_content_bytes=65_536)
        async with self.serve(limits=limits) as server, server.chat() as ann:
            await ann.join("ann")
            await ann.recv_n(1)
            async with server.chat() as bob:
                await bob.join("bob")
                await bob.recv_n(2)
                await ann.recv_n(1)
                await bob.send(message)
                refusal = await bob.refusal()
                code, field, rule = rejected(refusal.rejection)
                assert (code, field) == why[:2] and why[2] in rule
                assert refusal.id == message.id and refusal.room_id == message.room_id
                await bob.text("after it", id="b1")  # the same stream, still in the room
                got = await bob.recv_until(lambda m: m.type == T.TEXT)
                assert texts(got) == [(1, "bob", "after it")]
                assert texts(await ann.recv_until(lambda m: m.type == T.TEXT)) == texts(got)
                assert server.members("lobby") == ["ann", "bob"]
            assert server.counters.errors == {} and server.counters.refusals == 1

    @pytest.mark.parametrize(
        "message",
        [msg(T.JOIN, sender_id="mallory"), msg(T.TEXT, sender_id="mallory", content="x")],
    )
    async def test_claiming_another_identity_ends_that_stream(self, message: ChatMessage) -> None:
        async with self.serve() as server, server.chat() as ann:
            await ann.join("ann")
            await ann.recv_n(1)
            async with server.chat() as bob:
                await bob.join("bob")
                await bob.recv_n(2)
                await bob.send(message)
                with pytest.raises(CallEnded) as caught:
                    await bob.recv_until(lambda m: False)
                assert caught.value.ended == Ended(
                    "PERMISSION_DENIED", "sender_id: this stream is bound to 'bob', not 'mallory'"
                )
            # (bob's LEAVE first: on many nodes presence is not ordered with the TEXTs of
            # another node, so a TEXT sent at once could overtake it)
            got = await ann.recv_until(lambda m: m.type == T.LEAVE)
            assert [(m.type, m.sender_id) for m in got] == [(T.JOIN, "bob"), (T.LEAVE, "bob")]
            await ann.text("unaffected")
            [text] = await ann.recv_n(1)
            assert (text.type, text.seq) == (T.TEXT, 1)
            assert server.members("lobby") == ["ann"]

    async def test_the_rate_limit_shapes_a_flooding_stream_and_refuses_nothing(self) -> None:
        settings = Settings(rate=50, burst=3)
        async with self.serve(settings=settings) as server, server.chat() as ann:
            await ann.join("ann")
            for n in range(10):
                await ann.text(f"m{n}")
            got = await ann.recv_until(lambda m: m.type == T.TEXT and m.seq == 10)
            assert [m.content for m in got if m.type == T.TEXT] == [f"m{n}" for n in range(10)]
            assert server.counters.shaped >= 10 - 3 - 1  # the burst (and the JOIN's token) aside
            await ann.text("still open")
            [last] = await ann.recv_n(1)
            assert last.seq == 11

    async def test_slow_consumer_is_cut_others_lose_nothing_and_it_resumes(self) -> None:
        # One connection per client: on a shared connection (HTTP/2's connection window) a stream
        # that never reads starves the others, whatever the server does.
        # A stream whose peer stops reading is cut only while it holds the server's memory: its
        # socket's buffers take a few MiB first, so it takes 8 MB of TEXTs. The drain timeout
        # leaves the readers that do read room for a loaded machine (client and server share
        # one process here): 0.3 s cut them now and then when two test suites ran at once.
        settings = Settings(high_water=8, low_water=2, drain_timeout=1.5, rate=0)
        total, body = 400, "x" * 20_000
        async with (
            self.serve(settings=settings, one_connection_per_call=True) as server,
            server.chat() as ann,
            server.chat() as bob,
        ):
            await ann.join("ann")
            await ann.recv_n(1)
            await bob.join("bob")
            [bob_echo, _] = await bob.recv_n(2)
            await ann.recv_n(1)
            async with server.chat(small_buffers=True) as slow:
                await slow.join("slow")
                await slow.recv_n(3)
                await ann.recv_n(1)
                await bob.recv_n(1)
                got: dict[str, list[int]] = {}

                async def read_all(name: str, client: ChatCall) -> None:
                    messages = await client.recv_until(
                        lambda m: m.type == T.TEXT and m.seq == total, timeout=20
                    )
                    got[name] = [m.seq for m in messages if m.type == T.TEXT]

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(read_all, "ann", ann)
                    tasks.start_soon(read_all, "bob", bob)
                    for n in range(total):
                        await ann.text(body, id=f"m{n}")
                assert got == {"ann": list(range(1, total + 1)), "bob": list(range(1, total + 1))}
                # The slow stream read nothing meanwhile; it is cut with a reason it can act on
                # (once its deadline passes: reading before that, it would catch up instead).
                with anyio.fail_after(10):
                    while server.counters.slow_consumer_disconnects < 1:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                seen = 0
                with pytest.raises(CallEnded) as caught:
                    while (m := await slow.recv(timeout=15)) is not None:
                        seen = max(seen, m.seq)
                assert caught.value.ended.code == "RESOURCE_EXHAUSTED"
                assert "slow consumer" in caught.value.ended.message
            assert seen < total  # a cut call loses what it had not read
            assert server.counters.slow_consumer_disconnects == 1
            assert server.counters.switches_to_log >= 1
            # It comes back and resumes from the last seq it saw: nothing lost, no duplicate.
            async with server.chat() as back:
                await back.join("slow", resume_after_seq=seen, epoch=bob_echo.epoch)
                rest = await back.recv_until(
                    lambda m: m.type == T.TEXT and m.seq == total, timeout=20
                )
                assert [m.seq for m in rest if m.type == T.TEXT] == list(range(seen + 1, total + 1))
            await ann.end()
            await bob.end()

    async def test_typing_is_relayed_to_the_others_only(self) -> None:
        async with self.serve() as server, server.chat() as ann:
            await ann.join("ann")
            await ann.recv_n(1)
            async with server.chat() as bob:
                await bob.join("bob")
                await bob.recv_n(2)
                await ann.recv_n(1)
                await bob.send(msg(T.TYPING))
                [typing] = await ann.recv_n(1)
                assert (typing.type, typing.sender_id, typing.seq) == (T.TYPING, "bob", 0)
                await bob.text("done")
                assert texts(await bob.recv_n(1)) == [(1, "bob", "done")]  # no TYPING echo

    @settings(suppress_health_check=SUPPRESSED, deadline=None)
    @given(steps=STEPS)
    # Joining a room again reads its history from the log; leaving it before that read is
    # done once lost what was owed of it: the replay and the echo of the TEXT sent meanwhile.
    @example(
        steps=[("join", "b"), ("text", "b", 0), ("join", "b"), ("text", "b", 0), ("leave", "b")]
    )
    async def test_valid_and_refused_messages_mixed_on_one_stream_match_the_model(
        self, steps: list[tuple[Any, ...]]
    ) -> None:
        """Every refused message, and only those, gets its refusal, in order; every other message
        does what it does; the stream stays usable throughout, and another member of a room sees
        exactly the TEXTs accepted into it."""
        refused, accepted = expected_refusals(steps, joined=["a"])
        limits = ChatLimits(max_content_bytes=16, max_rooms=2)
        async with self.serve(limits=limits) as server, server.chat() as ann:
            async with server.chat() as bob:
                await bob.join("bob", "a")
                await ann.join("ann", "a")
                await bob.recv_n(2)
                for n, step in enumerate(steps):
                    await ann.send(step_message(n, *step))
                await ann.send(msg(T.SYSTEM, id="end"))  # refused too: a marker after the rest
                got = await ann.recv_until(lambda m: m.type == T.SYSTEM and m.id == "end")
                assert [m.id for m in got[:-1] if m.rejection is not None] == refused
                acked = {m.id for m in got if m.type == T.TEXT and m.sender_id == "ann"}
                assert acked == set(accepted)
                await bob.text("bob-end", "a", id="bob-end")
                seen = await bob.recv_until(lambda m: m.id == "bob-end")
                into_a = [f"m{n}" for n, s in enumerate(steps) if s[0] == "text" and s[1] == "a"]
                assert [m.id for m in seen if m.type == T.TEXT and m.sender_id == "ann"] == [
                    i for i in accepted if i in into_a
                ]
                assert not any(m.rejection is not None for m in seen)  # told to ann alone
            assert server.counters.refusals == len(refused) + 1
            assert server.counters.errors == {}
