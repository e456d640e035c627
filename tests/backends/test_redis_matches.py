"""Matches across nodes through a real redis-server (DESIGN §10, runtime/node_matches.py).

Two ``Runtime``s in this process, each a node with its own ``RedisEngine``, driven with
``memory_transport``; the lease scripts are also run against Redis directly. Leases here are
short (node settings), so a lapse takes a fraction of a second.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from memory_transport import MemoryCall, RecordingCodec, until
from redis_server import RedisServer, redis_server

from interplay.backends.redis import RedisEngine
from interplay.backends.redis.engine import match_keys
from interplay.core.game import Action, PlayerState, TickState
from interplay.core.matches import Act, GameSettings, JoinMatch, MatchHub
from interplay.runtime import Runtime, Service, Settings
from interplay.runtime.node import Node
from interplay.runtime.node_matches import decode_snapshot, encode_snapshot

pytestmark = pytest.mark.anyio

LEASE = {"match_lease": 0.8, "match_renew": 0.15, "snapshot_every": 5}


@pytest.fixture
def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Seen:
    """A state as a player's codec was asked to encode it."""

    match: str
    tick: int
    full: bool
    players: tuple[PlayerState, ...]


class StateCodec(RecordingCodec):
    def encode_state(self, match: str, state: TickState, *, full: bool, stamp: int) -> bytes:
        frame = f"{self.name}|state|{match}|{state.tick}|{full}".encode()
        self._frames[frame] = Seen(match, state.tick, full, state.players)
        return frame


def seen(call: MemoryCall) -> list[Seen]:
    return [e for e in call.events() if isinstance(e, Seen)]


@asynccontextmanager
async def nodes(
    redis: RedisServer, count: int = 2, **options: Any
) -> AsyncIterator[tuple[list[Runtime], TaskGroup]]:
    with anyio.fail_after(40):
        async with AsyncExitStack() as stack:
            runtimes = []
            for n in range(count):
                engine = RedisEngine(redis.url, node=f"n{n}")
                stack.push_async_callback(engine.aclose)
                runtime = Runtime(
                    engine,
                    games=MatchHub(settings=GameSettings(tick_hz=20.0, full_every=10)),
                    settings=Settings(rate=0),
                    node=Node(engine, heartbeat=0.3, node_ttl=1.0, **{**LEASE, **options}),
                )
                runtimes.append(await stack.enter_async_context(runtime))
            for runtime in runtimes:
                assert runtime.node is not None
                await until(lambda runtime=runtime: runtime.node.healthy)  # type: ignore[union-attr]
            tasks = await stack.enter_async_context(anyio.create_task_group())
            yield runtimes, tasks
            tasks.cancel_scope.cancel()


def player(runtime: Runtime, tasks: TaskGroup, name: str, match: str = "m") -> MemoryCall:
    call = MemoryCall(runtime, Service.GAME, StateCodec(name)).start(tasks)
    call.put(JoinMatch(session="", player=name, match=match))
    return call


def move(sequence: int, dx: int) -> Act:
    action = Action(player="", kind="move", params={"dx": str(dx)}, sequence=sequence)
    return Act(session="", action=action)


def owner(runtimes: Sequence[Runtime], match: str = "m") -> int | None:
    owners = [n for n, r in enumerate(runtimes) if r.node and r.node.matches.owns(match)]
    assert len(owners) <= 1, owners
    return owners[0] if owners else None


def increasing(states: list[Seen]) -> bool:
    ticks = [s.tick for s in states]
    return all(a < b for a, b in itertools.pairwise(ticks))


async def test_players_on_two_nodes_get_identical_states_and_a_forwarded_action_applies(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as (runtimes, tasks):
        ann = player(runtimes[0], tasks, "ann")
        bob = player(runtimes[1], tasks, "bob")
        both = {"ann", "bob"}
        for call in (ann, bob):
            await call.wait_for(
                lambda call=call: any({p.player for p in s.players} == both for s in seen(call))
            )
            assert seen(call)[0].full  # a full state first, as alone
        mine = owner(runtimes)
        assert mine is not None
        # The player on the node that does not own the match moves: it reaches the match.
        other = bob if mine == 0 else ann
        name = "bob" if mine == 0 else "ann"
        start = next(p.x for p in seen(other)[-1].players if p.player == name)
        other.put(move(1, 5 if start <= 995 else -5))

        def moved(call: MemoryCall) -> bool:
            return any(p.player == name and p.last_sequence == 1 for p in seen(call)[-1].players)

        for call in (ann, bob):
            await call.wait_for(lambda call=call: moved(call))
        ticks_then = seen(ann)[-1].tick
        await ann.wait_for(lambda: seen(ann)[-1].tick >= ticks_then + 10)
        await bob.wait_for(lambda: seen(bob)[-1].tick >= ticks_then + 10)
        # Same tick, same state, on both nodes; ticks strictly increasing for each player.
        by_tick = {s.tick: s.players for s in seen(ann)}
        common = [s for s in seen(bob) if s.tick in by_tick]
        assert len(common) >= 10
        assert all(by_tick[s.tick] == s.players for s in common)
        assert increasing(seen(ann)) and increasing(seen(bob))
        relayed = runtimes[1 - mine].node.matches.statistics()  # type: ignore[union-attr]
        assert relayed.states_relayed >= 10 and relayed.stale_states == 0
        # The admin API's Matches: the owner lists the match with every player, wherever
        # they play; the other node lists none.
        [listed] = runtimes[mine].admin.matches()
        assert (listed.match, listed.players) == ("m", ["ann", "bob"]) and listed.tick > 0
        assert runtimes[1 - mine].admin.matches() == []


async def test_a_join_refused_by_the_owner_is_refused_to_its_sender_on_the_other_node(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as (runtimes, tasks):
        ann = player(runtimes[0], tasks, "ann")
        await ann.wait_for(lambda: bool(seen(ann)))
        again = player(runtimes[1], tasks, "ann")  # the same player id, through the other node
        await again.wait_for(lambda: bool(again.events()))
        [refusal] = again.events()
        assert "already playing" in repr(refusal)
        assert runtimes[1].node.matches.statistics().refusals == 1  # type: ignore[union-attr]


@pytest.mark.slow
async def test_an_unreachable_redis_stops_the_match_at_the_lease_deadline_and_it_resumes(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as (runtimes, tasks):
        ann = player(runtimes[0], tasks, "ann")
        bob = player(runtimes[1], tasks, "bob")
        for call in (ann, bob):
            await call.wait_for(lambda call=call: len(seen(call)) >= 3)
        redis.stop()
        stopped = anyio.current_time()
        # No node ticks it once its lease deadline passed (nobody can renew).
        await until(lambda: owner(runtimes) is None, timeout=LEASE["match_lease"] + 2)
        assert anyio.current_time() - stopped < LEASE["match_lease"] + 1
        last = max(runtimes[0].counters.ticks, 0), max(runtimes[1].counters.ticks, 0)
        await anyio.sleep(0.3)
        assert (runtimes[0].counters.ticks, runtimes[1].counters.ticks) == last
        redis.start()
        before = len(seen(ann)), len(seen(bob))
        await until(lambda: owner(runtimes) is not None, timeout=10)
        await ann.wait_for(lambda: len(seen(ann)) >= before[0] + 5, timeout=10)
        await bob.wait_for(lambda: len(seen(bob)) >= before[1] + 5, timeout=10)
        for call in (ann, bob):  # one match again, both in it (a node taken for dead rejoins)
            await call.wait_for(
                lambda call=call: {p.player for p in seen(call)[-1].players} == {"ann", "bob"},
                timeout=10,
            )
        assert increasing(seen(ann)) and increasing(seen(bob))
        assert ann.ended is None and bob.ended is None  # no one was cut


async def test_the_lease_scripts_against_redis(redis: RedisServer) -> None:
    one, two = RedisEngine(redis.url, node="n1"), RedisEngine(redis.url, node="n2")
    client = aioredis.Redis.from_url(redis.url)
    try:
        with anyio.fail_after(10):
            fence = await one.acquire_match("x", 0.5)
            assert fence == 1
            assert await two.acquire_match("x", 0.5) is None  # held
            assert await one.acquire_match("x", 0.5) == 1  # its own: renewed, same fence
            assert await one.renew_match("x", 1, 0.5)
            assert not await two.renew_match("x", 1, 0.5)  # only the holder renews
            hub = MatchHub()
            hub.handle(JoinMatch(session="n1/1", player="ann", match="x"), now=0.0)
            data = encode_snapshot(hub.snapshot("x"), "0-0")
            assert decode_snapshot(data) == hub.snapshot("x")
            assert await one.save_match("x", 1, data, "0-0")
            await anyio.sleep(0.6)  # the lease lapses
            assert await two.acquire_match("x", 0.5) == 2  # fence + 1
            assert not await one.save_match("x", 1, "stale", "0-0")  # a stale fence: refused
            assert not await one.renew_match("x", 1, 0.5)
            assert await one.publish_states([("x", 1, 9, "late")]) == [False]
            assert await two.publish_states([("x", 2, 9, "now")]) == [True]
            stored = await two.load_match("x")
            assert (stored.data, stored.fence, stored.tick) == (data, 1, 9)
            assert await client.get(match_keys("x")[0]) == b"n2|2"
    finally:
        await client.aclose()
        await one.aclose()
        await two.aclose()


async def test_a_slow_player_on_the_relaying_node_keeps_only_the_newest_state(
    redis: RedisServer,
) -> None:
    async with nodes(redis) as (runtimes, tasks):
        ann = player(runtimes[0], tasks, "ann")
        await ann.wait_for(lambda: bool(seen(ann)))
        assert owner(runtimes) == 0
        bob = player(runtimes[1], tasks, "bob")  # relayed by node 1
        await bob.wait_for(lambda: len(seen(bob)) >= 2)
        bob.block()  # stops reading: the states the owner publishes meanwhile supersede
        await until(lambda: runtimes[1].counters.states_superseded >= 5)
        bob.unblock()
        before = len(seen(bob))
        await bob.wait_for(lambda: len(seen(bob)) >= before + 3)
        after = seen(bob)[before:]
        assert after[0].full or after[1].full  # it missed deltas: a full state next
        assert increasing(seen(bob))
        assert runtimes[0].counters.states_superseded == 0  # ann reads on
