"""Two nodes (two runtimes) sharing rooms through a real redis-server (DESIGN §10).

Each test starts its own ``redis-server`` (``redis_server.py``) and two ``Runtime``s in this
process, each with its own ``RedisEngine`` and ``Node``, driven with ``memory_transport`` (no
wire library): what is checked is the node seam, the scripts and the merge.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup
from memory_transport import MemoryCall, RecordingCodec
from redis_server import RedisServer, redis_server

from interplay.backends.redis import RedisEngine, scripts
from interplay.backends.redis.engine import document_keys
from interplay.core.documents import (
    Acked,
    CloseSession,
    DocumentHub,
    EditDocument,
    EditProposal,
    OpenDocument,
    Remote,
    Snapshot,
)
from interplay.core.effects import StoredEdit
from interplay.core.ot import ClientDocument, Send, State, TextOp
from interplay.core.rooms import Join, Kind, Post, RoomHub, RoomMessage
from interplay.runtime import (
    AdminDisconnect,
    AdminDisconnectResume,
    Runtime,
    Service,
    Settings,
    StorageFailed,
)
from interplay.runtime.node import Node

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server  # type: ignore[misc]


@asynccontextmanager
async def nodes(
    redis: RedisServer,
    count: int = 2,
    history: int = 100,
    *,
    documents: dict[str, int] | None = None,
    ttl: float | None = None,
    clock: Callable[[], float] = time.time,
    **node_options: float,
) -> AsyncIterator[tuple[list[Runtime], TaskGroup]]:
    """``count`` runtimes on one Redis, each a node; a task group for their calls. With
    ``ttl``, retention by age sweeps every 10 ms, on the wall ``clock`` given."""
    settings = Settings(rate=0) if ttl is None else Settings(rate=0, retention_every=0.01)
    with anyio.fail_after(30):
        async with AsyncExitStack() as stack:
            runtimes = []
            for n in range(count):
                engine = RedisEngine(redis.url, node=f"n{n}")
                stack.push_async_callback(engine.aclose)
                runtime = Runtime(
                    engine,
                    rooms=RoomHub(history=history, ttl=ttl),
                    documents=DocumentHub(**(documents or {})),
                    settings=settings,
                    node=Node(engine, **node_options),
                    clock=clock,
                )
                runtimes.append(await stack.enter_async_context(runtime))
            for runtime in runtimes:
                await until_healthy(runtime)
            tasks = await stack.enter_async_context(anyio.create_task_group())
            yield runtimes, tasks
            tasks.cancel_scope.cancel()


async def until_healthy(runtime: Runtime) -> None:
    assert runtime.node is not None
    with anyio.fail_after(5):
        while not runtime.node.healthy:  # noqa: ASYNC110 (the engine has no event for it)
            await anyio.sleep(0.005)


def chat(runtime: Runtime, tasks: TaskGroup) -> MemoryCall:
    return MemoryCall(runtime, Service.CHAT, RecordingCodec()).start(tasks)


async def join(call: MemoryCall, user: str, room: str = "lobby") -> RoomMessage:
    call.put(Join(session="", user=user, room=room))

    def echo() -> RoomMessage | None:
        return next(
            (
                e
                for e in call.events()
                if isinstance(e, RoomMessage) and e.kind is Kind.JOIN and e.sender == user
            ),
            None,
        )

    await call.wait_for(lambda: echo() is not None or call.done.is_set())
    found = echo()
    assert found is not None, f"no JOIN echo: {call.ended!r}"
    return found


def post(content: str, id: str = "", room: str = "lobby") -> Post:
    return Post(session="", room=room, content=content, id=id)


async def test_a_text_sent_on_one_node_reaches_members_on_the_other_with_one_seq(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        ann_echo = await join(ann, "ann")
        bob_echo = await join(bob, "bob")
        assert ann_echo.epoch == bob_echo.epoch  # one room, one stream
        ann.put(post("hi bob", id="a1"))
        bob.put(post("hi ann", id="b1"))
        for call in (ann, bob):
            texts = await call.wait_texts(2)
            assert [m.seq for m in texts] == [1, 2]
        assert [(m.seq, m.content) for m in ann.texts()] == [
            (m.seq, m.content) for m in bob.texts()
        ]


async def test_four_senders_on_two_nodes_racing_give_one_gapless_order_everywhere(
    redis: RedisServer,
) -> None:
    per_sender = 25
    async with nodes(redis) as (runtimes, tasks):
        calls = [chat(runtimes[n % 2], tasks) for n in range(4)]
        listeners = [chat(runtime, tasks) for runtime in runtimes]
        for n, call in enumerate(calls):
            await join(call, f"user{n}")
        for n, call in enumerate(listeners):
            await join(call, f"listener{n}")
        for n, call in enumerate(calls):  # every sender's messages in flight at once
            call.put(*(post(f"{n}:{k}", id=f"{n}-{k}") for k in range(per_sender)))
        total = per_sender * len(calls)
        orders = []
        for call in calls + listeners:
            texts = await call.wait_texts(total)
            assert [m.seq for m in texts] == list(range(1, total + 1))  # gapless, once each
            orders.append([(m.seq, m.sender, m.id) for m in texts])
        assert all(order == orders[0] for order in orders)  # one order on both nodes
        for n in range(len(calls)):  # each sender's own order kept
            mine = [m.content for m in listeners[0].texts() if m.sender == f"user{n}"]
            assert mine == [f"{n}:{k}" for k in range(per_sender)]


async def test_nodes_on_a_redis_with_a_password_share_a_room(tmp_path: Path) -> None:
    with redis_server(tmp_path, password="s3cret") as server:
        assert ":s3cret@" in server.url
        async with nodes(server) as ((one, two), tasks):
            ann, bob = chat(one, tasks), chat(two, tasks)
            await join(ann, "ann")
            await join(bob, "bob")
            ann.put(post("through the password", id="a1"))
            [text] = await bob.wait_texts(1)
            assert (text.seq, text.content) == (1, "through the password")


async def test_a_text_re_sent_through_the_other_node_is_acknowledged_with_the_original_seq(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as ((one, two), tasks):
        first, watcher = chat(one, tasks), chat(two, tasks)
        await join(first, "ann")
        await join(watcher, "bob")
        first.put(post("once", id="m1"))
        [original] = await first.wait_texts(1)
        await watcher.wait_texts(1)
        # The client lost its connection before the ack and retries through the other node.
        again = chat(two, tasks)
        await join(again, "ann")
        [history] = await again.wait_texts(1)  # the window, which holds it (the client drops it)
        assert history == original
        again.put(post("once", id="m1"), post("after", id="m2"))
        texts = await again.wait_texts(3)
        assert (texts[1].seq, texts[1].id) == (original.seq, "m1")  # the original, as the ack
        assert texts[2].seq == original.seq + 1
        await watcher.wait_texts(2)
        assert [m.content for m in watcher.texts()] == ["once", "after"]  # stored once


async def test_the_shared_stream_itself_refuses_a_duplicate_id_no_window_holds(
    redis: RedisServer,
) -> None:
    async with nodes(redis, history=0) as ((one, two), tasks):  # no window: Redis decides
        first, again = chat(one, tasks), chat(two, tasks)
        await join(first, "ann")
        first.put(post("once", id="m1"))
        [original] = await first.wait_texts(1)
        await join(again, "ann")
        again.put(post("once", id="m1"), post("other", id="m1"), post("after", id="m2"))
        texts = await again.wait_texts(2)
        assert [(m.seq, m.id) for m in texts] == [(1, "m1"), (2, "m2")]
        assert texts[0] == original
        refused = [e for e in again.events() if not isinstance(e, RoomMessage)]
        assert len(refused) == 1 and "already used" in str(refused[0])  # another content
        assert [m.content for m in await first.wait_texts(2)] == ["once", "after"]


async def test_a_late_joiner_on_another_node_gets_history_then_live_with_no_gap(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as ((one, two), tasks):
        ann = chat(one, tasks)
        await join(ann, "ann")
        ann.put(*(post(f"m{n}") for n in range(5)))
        await ann.wait_texts(5)
        bob = chat(two, tasks)
        bob.put(Join(session="", user="bob", room="lobby"))
        ann.put(*(post(f"m{n}") for n in range(5, 10)))  # racing bob's JOIN
        texts = await bob.wait_texts(10)
        assert [m.seq for m in texts] == list(range(1, 11))


async def test_a_node_that_missed_pub_sub_catches_up_from_the_stream(
    redis: RedisServer,
) -> None:
    async with nodes(redis, head_check=0.2) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        assert two.node is not None
        # Messages the other node never hears live: written by the script, published to
        # a channel no one listens on (as if pub/sub lost them).
        engine = RedisEngine(redis.url)
        try:
            from interplay.backends.redis import scripts
            from interplay.backends.redis.engine import encode_body, room_keys

            publish = engine._client.register_script(scripts.PUBLISH)
            hub_epoch = bob.events()[0].epoch  # type: ignore[attr-defined]
            from interplay.core.rooms import Proposal

            lost = Proposal(
                session="",
                room="lobby",
                sender="ghost",
                id="g1",
                content="unheard",
                timestamp=0,
                epoch=hub_epoch,
                seen=0,
            )
            await publish(
                keys=room_keys("lobby"),
                args=["ghost\0g1", encode_body(lost), 100, "x", hub_epoch, 0, 0, "nowhere"],
            )
        finally:
            await engine.aclose()
        texts = await bob.wait_texts(1)  # found by the periodic head check
        assert (texts[0].seq, texts[0].content) == (1, "unheard")
        ann.put(post("heard"))
        for call in (ann, bob):
            texts = await call.wait_texts(2)
            assert [m.seq for m in texts] == [1, 2]


async def until_unhealthy(runtime: Runtime) -> None:
    assert runtime.node is not None
    with anyio.fail_after(10):
        while runtime.node.healthy:  # noqa: ASYNC110 (the engine has no event for it)
            await anyio.sleep(0.01)


async def test_redis_restarted_with_aof_loses_nothing_acknowledged_and_nodes_resync(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        ann.put(*(post(f"before{n}", id=f"b{n}") for n in range(5)))
        acked = await ann.wait_texts(5)
        redis.restart()  # SIGKILL, then the same port and directory: the AOF is replayed
        await until_unhealthy(one)
        await until_healthy(one)
        await until_healthy(two)
        bob.put(post("after", id="x1"))
        for call in (ann, bob):
            texts = await call.wait_texts(6)
            assert [m.seq for m in texts] == list(range(1, 7))
            assert texts[:5] == acked  # everything acknowledged survived, same epoch
            assert texts[5].content == "after"


async def test_redis_unreachable_sends_fail_unavailable_and_everything_resumes_by_itself(
    redis: RedisServer,
) -> None:
    from interplay.runtime.node import EngineUnavailable

    async with nodes(redis) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        ann.put(post("first", id="a1"))
        await bob.wait_texts(1)
        redis.stop()
        await until_unhealthy(one)  # health says NOT_SERVING (transports/grpc/server.py)
        ann.put(post("during", id="a2"))
        assert isinstance(await ann.result(timeout=10), EngineUnavailable)  # -> UNAVAILABLE
        with anyio.fail_after(3):
            await anyio.sleep(2)  # down for a while (5 s in all with the wait above)
        redis.start()
        await until_healthy(one)
        await until_healthy(two)
        # The client reconnects (here: a new call on the same node) and re-sends a2.
        again = chat(one, tasks)
        await join(again, "ann")
        again.put(post("during", id="a2"))
        texts = await bob.wait_texts(2)
        assert [(m.seq, m.id) for m in texts] == [(1, "a1"), (2, "a2")]
        again.put(post("during", id="a2"))  # a second retry: acknowledged, not stored again
        acks = await again.wait_texts(3)  # history a1, a2, then the ack of the retry
        assert [m.seq for m in acks] == [1, 2, 2]
        bob.put(post("last", id="b1"))
        assert [m.seq for m in await again.wait_texts(4)] == [1, 2, 2, 3]


async def test_a_stream_that_lost_its_last_writes_starts_a_new_epoch_announced_everywhere(
    redis: RedisServer,
) -> None:
    import redis.asyncio as aioredis

    from interplay.backends.redis.engine import room_keys

    async with nodes(redis) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        first = await join(ann, "ann")
        await join(bob, "bob")
        ann.put(*(post(f"m{n}", id=f"m{n}") for n in range(3)))
        await bob.wait_texts(3)
        # What a Redis under appendfsync everysec may come back as after a crash: the head
        # (and the stream) without the last writes the nodes had already delivered.
        client = aioredis.Redis.from_url(redis.url)
        meta, log, _ = room_keys("lobby")
        await client.hset(meta, "s", 1)
        await client.xdel(log, "2-0", "3-0")
        await client.aclose()
        bob.put(post("after", id="b1"))
        for call in (ann, bob):
            await call.wait_for(lambda c=call: any(m.content == "after" for m in c.texts()))
            notices = [
                e for e in call.events() if isinstance(e, RoomMessage) and e.kind is Kind.SYSTEM
            ]
            assert len(notices) == 1 and "history was reset" in notices[0].content
            last = call.texts()[-1]
            assert (last.seq, last.content) == (1, "after")  # seqs start over ...
            assert last.epoch != first.epoch  # ... under a new epoch: no seq means two things


def presence(call: MemoryCall) -> list[tuple[str, str]]:
    """The JOIN/LEAVE a member saw of others (its own echo left out)."""
    return [
        (e.kind.name, e.sender)
        for e in call.events()
        if isinstance(e, RoomMessage) and e.kind in (Kind.JOIN, Kind.LEAVE) and not e.epoch
    ]


async def test_presence_and_typing_cross_nodes_once_per_user(redis: RedisServer) -> None:
    from interplay.core.rooms import Leave, Typing

    async with nodes(redis) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        await ann.wait_for(lambda: presence(ann) == [("JOIN", "bob")])
        assert presence(bob) == [("JOIN", "ann")]  # who was there, right after its echo
        # A second session of bob, on the other node: not announced again.
        bob2 = chat(one, tasks)
        await join(bob2, "bob")
        assert sorted(presence(bob2)) == [("JOIN", "ann")]
        bob.put(Typing(session="", room="lobby"))
        await ann.wait_for(
            lambda: any(getattr(e, "kind", None) is Kind.TYPING for e in ann.events())
        )
        bob.put(Leave(session="", room="lobby"))  # bob is still here through bob2
        bob2.put(post("still here"))
        await ann.wait_texts(1)
        assert presence(ann) == [("JOIN", "bob")]
        bob2.put(Leave(session="", room="lobby"))  # the last of bob's sessions
        await ann.wait_for(lambda: presence(ann) == [("JOIN", "bob"), ("LEAVE", "bob")])
        assert one.rooms.members("lobby") == ["ann"]  # node two holds the room no more


async def test_a_node_that_stops_beating_has_its_members_leave_everywhere(
    redis: RedisServer,
) -> None:
    async with nodes(redis, heartbeat=0.2, node_ttl=0.6) as ((one, two), tasks):
        ann = chat(one, tasks)
        await join(ann, "ann")
        # A node that announces carl, beats once, then vanishes as a SIGKILLed process would:
        # no LEAVE of its own, no heartbeat any more.
        ghost = RedisEngine(redis.url, node="ghost")
        try:
            await ghost.heartbeat(0.5)
            await ghost.presence("lobby", "carl", True)
        finally:
            await ghost.aclose()
        await ann.wait_for(lambda: presence(ann) == [("JOIN", "carl")])
        await ann.wait_for(lambda: presence(ann) == [("JOIN", "carl"), ("LEAVE", "carl")], 3)
        assert one.node is not None and two.node is not None
        assert one.node.reaped + two.node.reaped == 1  # by whichever node saw it first, once
        late = chat(one, tasks)  # and a later joiner is not told of carl
        await join(late, "dan")
        assert presence(late) == [("JOIN", "ann")]


async def test_the_admin_apis_publish_on_one_node_reaches_both_in_the_rooms_one_order(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        ann.put(post("before", id="a1"))
        await bob.wait_texts(1)
        published = await one.admin.publish("lobby", "maintenance at 6", sender="ops", id="n1")
        assert (published.message.seq, published.duplicate) == (2, False)
        notice = await two.admin.publish(
            "lobby", "it is over", sender="system", kind=Kind.SYSTEM, id="n2"
        )
        bob.put(post("after", id="b1"))
        for call in (ann, bob):
            await call.wait_for(lambda c=call: [m.seq for m in c.texts()][-1:] == [4])
            stored = (Kind.TEXT, Kind.SYSTEM)
            seen = [
                (m.seq, m.content)
                for m in call.events()
                if isinstance(m, RoomMessage) and m.kind in stored and m.seq
            ]
            assert seen == [
                (1, "before"),
                (2, "maintenance at 6"),
                (3, "it is over"),
                (4, "after"),
            ]
        assert notice.message.kind is Kind.SYSTEM
        # Re-sent through the other node (an application's retry): the original, stored once.
        again = await two.admin.publish("lobby", "maintenance at 6", sender="ops", id="n1")
        assert (again.message.seq, again.duplicate) == (2, True)
        # A room with no member on the publishing node: stored, and read by the next JOIN.
        await one.admin.publish("quiet", "first", sender="ops", id="q1")
        carl = chat(two, tasks)
        carl.put(Join(session="", user="carl", room="quiet"))
        [text] = await carl.wait_texts(1)
        assert (text.seq, text.content) == (1, "first")
        assert not ann.done.is_set() and not bob.done.is_set()  # nothing was cut


async def test_the_admin_apis_disconnect_on_one_node_ends_the_users_sessions_on_every_node(
    redis: RedisServer,
) -> None:
    async with nodes(redis, count=3) as ((one, two, three), tasks):
        ann_here, ann_there, bob = chat(one, tasks), chat(two, tasks), chat(three, tasks)
        await join(ann_here, "ann")
        await join(ann_there, "ann", room="dev")
        await join(bob, "bob")
        editor = Editor(three, tasks, "ann")  # an edit session of ann's on the third node
        await editor.open()
        assert await two.admin.disconnect("ann", "banned") == 3
        for call in (ann_here, ann_there, editor.call):
            ended = await call.result()
            assert isinstance(ended, AdminDisconnect)
            assert ended.message == "disconnected by the server: banned"
        assert not bob.done.is_set()
        carl = chat(one, tasks)
        await join(carl, "carl")
        assert await three.admin.disconnect("carl", "moving", reconnect=True) == 1
        ended = await carl.result()
        assert isinstance(ended, AdminDisconnectResume)
        assert ended.message == "disconnected by the server: moving; reconnect and resume"
        assert await one.admin.disconnect("nobody", "") == 0
        assert not bob.done.is_set()


async def test_the_admin_apis_disconnect_with_redis_unreachable_ends_nothing(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as ((one, _), tasks):
        ann = chat(one, tasks)
        await join(ann, "ann")
        redis.stop()
        with pytest.raises(StorageFailed, match="unreachable"):
            await one.admin.disconnect("ann", "banned")
        assert not ann.done.is_set()  # a retry once Redis is back can still say how many


async def test_delete_history_on_one_node_renumbers_the_shared_stream_for_every_node(
    redis: RedisServer,
) -> None:
    def notices(call: MemoryCall) -> list[str]:
        return [
            e.content
            for e in call.events()
            if isinstance(e, RoomMessage) and e.kind is Kind.SYSTEM and "deleted" in e.content
        ]

    async with nodes(redis) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        await join(ann, "ann")
        await join(bob, "bob")
        ann.put(post("a", id="a1"))
        await bob.wait_texts(1)
        bob.put(post("b", id="b1"))
        await ann.wait_texts(2)
        ann.put(post("c", id="a2"))
        await bob.wait_texts(3)
        deleted = await two.admin.delete_history("lobby", user="bob")
        assert (deleted.removed, deleted.head) == (1, 2)
        for call in (ann, bob):  # each node's members are told, once
            await call.wait_for(lambda c=call: len(notices(c)) == 1)
            assert f"epoch {deleted.epoch}, head seq 2" in notices(call)[0]
        for runtime in (one, two):
            page = await runtime.admin.history("lobby")
            assert (page.epoch, page.head) == (deleted.epoch, 2)
            assert [(m.seq, m.content) for m in page.messages] == [(1, "a"), (2, "c")]
        bob.put(post("d", id="b2"))  # on from the new head, on both nodes
        for call in (ann, bob):
            await call.wait_for(lambda c=call: c.texts()[-1].content == "d")
            assert (call.texts()[-1].seq, call.texts()[-1].epoch) == (3, deleted.epoch)
        # A kept message re-sent through the other node: its new seq, stored once.
        carl = chat(two, tasks)
        await join(carl, "ann")
        carl.put(post("c", id="a2"))
        await carl.wait_for(lambda: any(m.content == "c" and m.seq == 2 for m in carl.texts()))
        everything = await one.admin.delete_history("lobby")
        assert (everything.removed, everything.head) == (3, 0)
        for call in (ann, bob):
            await call.wait_for(lambda c=call: len(notices(c)) == 2)
        ann.put(post("fresh", id="a3"))
        for call in (ann, bob):
            await call.wait_for(lambda c=call: c.texts()[-1].content == "fresh")
            assert (call.texts()[-1].seq, call.texts()[-1].epoch) == (1, everything.epoch)
        nothing = await two.admin.delete_history("lobby", user="nobody")
        assert (nothing.removed, nothing.epoch, nothing.head) == (0, everything.epoch, 1)
        assert not ann.done.is_set() and not bob.done.is_set()


async def test_retention_by_age_trims_the_shared_streams_and_forgets_rooms_no_one_is_in(
    redis: RedisServer,
) -> None:
    now = [1_000_000.0]
    async with nodes(redis, ttl=3600, clock=lambda: now[0]) as ((one, two), tasks):
        ann, bob = chat(one, tasks), chat(two, tasks)
        await join(ann, "ann")
        await join(bob, "bob", room="busy")  # a room with someone in it, on the other node
        ann.put(post("old", id="a1"))
        bob.put(post("old", id="b1", room="busy"))
        await ann.wait_texts(1)
        await bob.wait_texts(1)
        await two.admin.publish("empty", "once", sender="bot", id="e1")
        now[0] += 1800
        ann.put(post("recent", id="a2"))
        await ann.wait_texts(2)
        now[0] += 1801  # "old" and "once" are now over an hour old
        client = redis_client(redis)
        try:
            with anyio.fail_after(10):
                while (  # noqa: ASYNC110 (Redis has no event for it)
                    await client.xlen("ip:{r:lobby}:log") != 1
                    or await client.xlen("ip:{r:busy}:log") != 0
                    or await client.exists("ip:{r:empty}:meta")
                ):
                    await anyio.sleep(0.02)
            assert await client.exists("ip:{r:busy}:meta")  # trimmed, never forgotten
        finally:
            await client.aclose()
        page = await two.admin.history("lobby")
        assert [(m.seq, m.content) for m in page.messages] == [(2, "recent")]

        # Both nodes sweep every room (a trim done twice is done once): each counts what its
        # own steps trimmed, and nothing is counted again on the laps after.
        def counted() -> tuple[int, int]:
            return (
                sum(r.counters.messages_expired for r in (one, two)),
                sum(r.counters.rooms_forgotten for r in (one, two)),
            )

        expired, forgotten = counted()
        assert expired >= 3 and forgotten >= 1
        laps = one.counters.retention_steps
        while one.counters.retention_steps < laps + 5:  # noqa: ASYNC110
            await anyio.sleep(0.02)
        assert counted() == (expired, forgotten)
        assert not ann.done.is_set() and not bob.done.is_set()
        # A room forgotten everywhere starts afresh: seq 1, under a new epoch.
        carl = chat(two, tasks)
        await join(carl, "carl", room="empty")
        carl.put(post("again", id="c1", room="empty"))
        [text] = await carl.wait_texts(1)
        assert text.seq == 1


def redis_client(redis: RedisServer) -> Any:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(redis.url)


class Editor:
    """One editor over a ``MemoryCall``, with the client's state machine (``ClientDocument``):
    what an editing client does, without a wire."""

    def __init__(self, runtime: Runtime, tasks: TaskGroup, user: str, document: str = "doc"):
        self.call = MemoryCall(runtime, Service.EDIT, RecordingCodec()).start(tasks)
        self.user, self.document = user, document
        self.doc = ClientDocument()
        self.seen = 0  # events handled
        self.sent = 0

    async def open(self) -> None:
        self.call.put(OpenDocument(session="", document=self.document, user=self.user))
        await self.call.wait_for(lambda: self._handle() or (self.doc.revision >= 0 and self.opened))

    @property
    def opened(self) -> bool:
        return any(isinstance(e, Snapshot) for e in self.call.events())

    def _handle(self) -> bool:
        """Handle what arrived; False (so ``wait_for`` keeps waiting on its condition)."""
        assert not self.call.done.is_set(), f"{self.user}'s call ended: {self.call.ended!r}"
        events = self.call.events()
        for event in events[self.seen :]:
            if isinstance(event, Snapshot):
                self.doc = ClientDocument(event.text, revision=event.revision)
            elif isinstance(event, Acked):
                assert event.op_id == f"{self.user}-{self.sent}", (event, self.sent)
                self._send(self.doc.ack())
            elif isinstance(event, Remote):
                op = TextOp.identity(self.doc.server_length)
                length = self.doc.server_length
                for piece in event.pieces:
                    splice = TextOp.splice(
                        length, piece.position, len(piece.deleted), piece.inserted
                    )
                    op = op.compose(splice)
                    length = splice.target_length
                self.doc.receive(op, revision=event.revision)
            else:
                raise AssertionError(f"{self.user}: unexpected {event!r}")
        self.seen = len(events)
        return False

    def _send(self, send: Send | None) -> None:
        if send is None:
            return
        [(position, deleted, inserted)] = list(send.op.splices())
        self.sent += 1
        self.call.put(
            EditDocument(
                session="",
                document=self.document,
                base=send.base,
                position=position,
                deleted=deleted,
                inserted=inserted,
                op_id=f"{self.user}-{self.sent}",
            )
        )

    async def type(self, edits: int, rng: random.Random) -> None:
        """``edits`` random edits, each as soon as the one before is acked."""
        for _ in range(edits):
            await self.call.wait_for(lambda: self._handle() or self.doc.state is State.SYNCHRONIZED)
            text = self.doc.text
            position = rng.randint(0, len(text))
            if text and rng.random() < 0.3:
                position = min(position, len(text) - 1)
                op = TextOp.splice(len(text), position, 1)
            else:
                op = TextOp.splice(len(text), position, 0, rng.choice(["a", "b", "😀", "é "]))
            self._send(self.doc.edit(op))
        await self.call.wait_for(lambda: self._handle() or self.doc.state is State.SYNCHRONIZED)


async def test_four_editors_on_two_nodes_converge(redis: RedisServer) -> None:
    edits = 15
    async with nodes(redis) as (runtimes, tasks):
        editors = [Editor(runtimes[n % 2], tasks, f"user{n}") for n in range(4)]
        for editor in editors:
            await editor.open()
        async with anyio.create_task_group() as typing:
            for n, editor in enumerate(editors):
                typing.start_soon(editor.type, edits, random.Random(n))
        total = edits * len(editors)
        for editor in editors:  # every editor ends at the last revision, on one text
            await editor.call.wait_for(
                lambda e=editor: e._handle() or e.doc.revision == total  # type: ignore[misc]
            )
        texts = {editor.doc.text for editor in editors}
        texts |= {runtime.documents.text("doc") for runtime in runtimes}  # the replicas
        assert len(texts) == 1, texts
        conflicts = sum(r.node.documents.conflicts for r in runtimes if r.node is not None)
        assert conflicts > 0  # the nodes did race for revisions
        late = Editor(runtimes[0], tasks, "late", "doc")  # and what Redis holds is that text
        runtimes[0].documents.handle(CloseSession(session="nobody"))
        await late.open()
        assert late.doc.text in texts


def _lost_commit(proposal: EditProposal) -> tuple[list[str], list[object]]:
    """The COMMIT script's call for ``proposal`` as node ``n0`` makes it, published where
    no node listens (as if pub/sub lost it)."""
    keys, args = RedisEngine("redis://unused", node="n0")._edit_call(proposal)
    args[4] = "nowhere"
    return keys, args


async def test_an_op_re_sent_through_the_other_node_is_applied_once(redis: RedisServer) -> None:
    async with nodes(redis, head_check=0.2) as ((one, two), tasks):
        ann, bob = Editor(one, tasks, "ann"), Editor(two, tasks, "bob")
        await ann.open()
        await bob.open()
        await ann.type(1, random.Random(1))
        await bob.call.wait_for(lambda: bob._handle() or bob.doc.revision == 1)
        # Node one commits ann's next op, but its connection drops before the ack and node
        # two never hears of it live: ann re-sends it through node two.
        sent = EditDocument(
            session="", document="doc", base=1, position=0, inserted="X", op_id="ann-9", user="ann"
        )
        op = TextOp.splice(len(ann.doc.text), 0, 0, "X")
        proposal = EditProposal(
            session="", document="doc", base=1, edit=StoredEdit(op=op, author="ann", op_id="ann-9")
        )
        engine = RedisEngine(redis.url)
        try:
            commit = engine._client.register_script(scripts.COMMIT)
            keys, args = _lost_commit(proposal)
            assert await commit(keys=keys, args=args) == [b"OK", 2]
        finally:
            await engine.aclose()
        again = MemoryCall(two, Service.EDIT, RecordingCodec()).start(tasks)
        again.put(OpenDocument(session="", document="doc", user="ann"), sent)
        await again.wait_for(lambda: any(isinstance(e, Acked) for e in again.events()))
        snapshot, ack = again.events()
        assert isinstance(snapshot, Snapshot) and snapshot.revision == 1  # node two was behind
        assert isinstance(ack, Acked) and (ack.revision, ack.op_id) == (2, "ann-9")  # not a Remote
        await bob.call.wait_for(lambda: bob._handle() or bob.doc.revision == 2)
        assert bob.doc.text.count("X") == 1
        again.put(sent)  # and once more, now that node two knows it
        await again.wait_for(lambda: sum(isinstance(e, Acked) for e in again.events()) == 2)
        assert again.events()[-1] == ack
        assert two.documents.text("doc") == bob.doc.text  # applied once
        assert one.documents.text("doc") is not None
        await ann.call.wait_for(lambda: ann._handle() or ann.doc.revision == 2)
        assert ann.doc.text == bob.doc.text  # node one found it in its log (the head check)


async def test_snapshots_and_kept_op_ids_hold_across_nodes(redis: RedisServer) -> None:
    """Every ``snapshot_every`` revisions the text is stored and what is older than ``keep``
    forgotten, as alone: a node loading the document later gets the same text, and a re-send
    of a kept op id through it is acknowledged with its revision, not applied."""
    async with nodes(redis, documents={"keep": 4, "snapshot_every": 3}) as ((one, two), tasks):
        ann = Editor(one, tasks, "ann")
        await ann.open()
        await ann.type(10, random.Random(3))
        assert ann.doc.revision == 10
        engine = RedisEngine(redis.url)
        try:
            doc, ops, opids = document_keys("doc")
            snapshot = await engine._client.hmget(doc, ["text", "revision", "head"])
            kept = [entry_id for entry_id, _ in await engine._client.xrange(ops)]
            ids = await engine._client.zrange(opids, 0, -1)
        finally:
            await engine.aclose()
        assert [int(snapshot[1]), int(snapshot[2])] == [9, 10]
        assert kept == [f"{n}-0".encode() for n in range(6, 11)]  # keep_from 6 at revision 9
        assert ids == [f"ann\0ann-{n}".encode() for n in range(6, 11)]
        bob = Editor(two, tasks, "bob")  # node two loads snapshot 9 and revision 10
        await bob.open()
        assert (bob.doc.text, bob.doc.revision) == (ann.doc.text, 10)
        again = MemoryCall(two, Service.EDIT, RecordingCodec()).start(tasks)
        again.put(
            OpenDocument(session="", document="doc", user="ann"),
            EditDocument(
                session="", document="doc", base=7, position=0, inserted="!", op_id="ann-8"
            ),
        )
        await again.wait_for(lambda: any(isinstance(e, Acked) for e in again.events()))
        assert again.events()[-1] == Acked(document="doc", revision=8, op_id="ann-8", user="ann")
        assert two.documents.text("doc") == ann.doc.text  # not applied again


async def test_after_a_redis_restart_nodes_read_the_edits_pub_sub_lost_and_edit_on(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as ((one, two), tasks):  # head checks every 30 s: not in time
        ann, bob = Editor(one, tasks, "ann"), Editor(two, tasks, "bob")
        await ann.open()
        await bob.open()
        await ann.type(2, random.Random(5))
        await bob.call.wait_for(lambda: bob._handle() or bob.doc.revision == 2)
        op = TextOp.splice(len(ann.doc.text), 0, 0, "G")
        ghost = StoredEdit(op=op, author="ghost", op_id="g1")
        proposal = EditProposal(session="", document="doc", base=2, edit=ghost)
        engine = RedisEngine(redis.url)
        try:
            commit = engine._client.register_script(scripts.COMMIT)
            keys, args = _lost_commit(proposal)
            assert await commit(keys=keys, args=args) == [b"OK", 3]
        finally:
            await engine.aclose()
        redis.restart()  # the AOF is replayed; each node reads its documents again
        await until_unhealthy(one)
        for runtime in (one, two):
            await until_healthy(runtime)
        for editor in (ann, bob):
            await editor.call.wait_for(lambda e=editor: e._handle() or e.doc.revision == 3)  # type: ignore[misc]
        await bob.type(2, random.Random(6))
        await ann.call.wait_for(lambda: ann._handle() or ann.doc.revision == 5)
        assert ann.doc.text == bob.doc.text and ann.doc.text.count("G") == 1
