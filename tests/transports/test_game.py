"""GameSync end to end over grpclib's in-memory channel; the state codec against betterproto2."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import pytest
from game_client import game_call
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from hypothesis import given
from hypothesis import strategies as st

from helpers import channel_for
from interplay.core.arena import Arena
from interplay.core.errors import CoreError
from interplay.core.game import Action, GameLoop, GameMirror, PlayerState, TickState
from interplay.core.latest import LatestState
from interplay.core.matches import GameLimits, GameSettings, MatchHub
from interplay.runtime.outbox import EncodedTick, StateOutbox
from interplay.transports.grpc.codec import GameWire, game_update
from interplay.transports.grpc.generated.chat import GameState
from interplay.transports.grpc.service import ChatService

pytestmark = pytest.mark.anyio

SETTINGS = GameSettings(tick_hz=50.0, full_every=25, grace=1.0)
ARENA = Arena(attack_range=1500)  # everyone within reach


@asynccontextmanager
async def serving(limits: GameLimits | None = None) -> AsyncIterator[tuple[ChatService, Channel]]:
    games = MatchHub(ARENA, settings=SETTINGS, limits=limits)
    async with channel_for(games=games) as served:
        yield served


def server_players(service: ChatService, match: str) -> dict[str, PlayerState]:
    loop = service.runtime.games.loop(match)
    assert loop is not None
    return dict(loop.players)


NOBODY = PlayerState(player="", x=0, y=0, health=0, last_sequence=-1)


def at(player: str, sequence: int) -> Any:
    """Until the client's mirror shows ``player`` with ``sequence`` applied."""
    return lambda c: (
        player in c.mirror.players and c.mirror.players[player].last_sequence >= sequence
    )


async def test_two_players_and_a_late_joiner_hold_the_servers_state() -> None:
    async with (
        serving() as (service, channel),
        game_call(channel, "ann") as ann,
        game_call(channel, "bob") as bob,
    ):
        await ann.join("m")
        await bob.join("m")
        first = await ann.recv()
        assert first is not None and first.full and first.match_id == "m"
        await ann.until(lambda c: set(c.mirror.players) == {"ann", "bob"})
        sequence = await ann.act("move", dx="5", dy="-3")
        await bob.act("attack", target="ann")
        await ann.until(at("ann", sequence))
        await bob.until(at("ann", sequence))
        assert any(not s.full for s in ann.states)  # deltas flowed
        async with game_call(channel, "cy") as cy:
            await cy.join("m")
            joined = await cy.recv()
            assert joined is not None and joined.full  # a late joiner starts from a full state
            assert {p.player_id for p in joined.players} == {"ann", "bob", "cy"}
            await ann.until(lambda c: "cy" in c.mirror.players)
            # Quiet now: every mirror settles on the server's state.
            tick = service.runtime.games.loop("m").tick  # type: ignore[union-attr]
            for client in (ann, bob, cy):
                await client.until(lambda c: (c.mirror.tick or 0) > tick + 1)
                assert client.mirror.players == server_players(service, "m")
            await cy.stream.end()
            with anyio.fail_after(5):
                while await cy.recv() is not None:  # half-close: flushed, then OK
                    pass
        await ann.until(lambda c: "cy" not in c.mirror.players)
        health = ann.mirror.players["ann"].health
        assert health == ARENA.max_health - ARENA.damage


@pytest.mark.parametrize(
    ("fields", "status", "text"),
    [
        (
            {"action_type": "fly", "sequence": 1},
            Status.INVALID_ARGUMENT,
            "action_type: must be one of",
        ),
        (
            {"action_type": "move", "parameters": {"dx": "50"}, "sequence": 1},
            Status.INVALID_ARGUMENT,
            "parameters.dx: an integer in [-10, 10]",
        ),
        (
            {"action_type": "move", "player_id": "ann", "sequence": 1},
            Status.PERMISSION_DENIED,
            "player_id: this stream plays 'bob'",
        ),
        (
            {"action_type": "move", "match_id": "other", "sequence": 1},
            Status.PERMISSION_DENIED,
            "match_id: this stream plays in match 'm'",
        ),
        ({"action_type": "move", "sequence": 0}, Status.INVALID_ARGUMENT, "sequence: must be"),
        ({"action_type": "join", "match_id": "m2"}, Status.ALREADY_EXISTS, "match_id: this stream"),
    ],
)
async def test_bad_actions_get_a_status_and_leave_the_match_untouched(
    fields: dict[str, Any], status: Status, text: str
) -> None:
    async with serving() as (service, channel), game_call(channel, "ann") as ann:
        await ann.join("m")
        await ann.until(lambda c: "ann" in c.mirror.players)
        async with game_call(channel, "bob") as bob:
            await bob.join("m")
            await bob.until(lambda c: "bob" in c.mirror.players)
            before = server_players(service, "m")
            await bob.send(**{"player_id": "bob", "match_id": "m", **fields})
            with pytest.raises(GRPCError) as caught:
                try:
                    await bob.until(lambda c: False)
                except StreamTerminatedError:
                    bob.stream._maybe_raise()  # the status came with the trailers
            assert caught.value.status is status
            assert text in (caught.value.message or "")
            assert server_players(service, "m")["ann"] == before["ann"]
        # Bob's stream ended, so bob left; ann plays on.
        await ann.until(lambda c: "bob" not in c.mirror.players)
        sequence = await ann.act("move", dx="1")
        await ann.until(at("ann", sequence))


async def test_actions_before_join_and_over_the_rate_limit_are_refused() -> None:
    async with serving(GameLimits(actions_per_second=3)) as (_, channel):
        with pytest.raises(GRPCError) as caught:
            async with game_call(channel, "ann") as ann:
                await ann.act("move", dx="1")
                await ann.recv()
        assert caught.value.status is Status.FAILED_PRECONDITION
        assert "join a match first" in (caught.value.message or "")
        with pytest.raises(GRPCError) as caught:
            async with game_call(channel, "ann") as ann:
                await ann.join()
                for _ in range(4):
                    await ann.act("move", dx="1")
                await ann.until(lambda c: False)
        assert caught.value.status is Status.RESOURCE_EXHAUSTED
        assert "actions: at most 3 actions per second" in (caught.value.message or "")


async def test_matches_are_isolated_and_an_empty_one_closes_after_grace() -> None:
    async with serving() as (service, channel):
        async with game_call(channel, "ann") as ann, game_call(channel, "ann") as ann2:
            await ann.join("m1")
            await ann2.join("m2")  # the same player id in another match is another player
            sequence = await ann.act("move", dx="3")
            await ann.until(at("ann", sequence))
            await ann2.until(lambda c: c.mirror.tick is not None and c.mirror.tick > 3)
            assert ann2.mirror.players["ann"].last_sequence == 0
            assert set(service.runtime.games.matches) == {"m1", "m2"}
            await ann2.send("leave")
            await ann2.stream.end()
            with anyio.fail_after(5):
                while await ann2.recv() is not None:
                    pass
            assert ann2.states[-1].tick <= service.runtime.games.loop("m2").tick  # type: ignore[union-attr]
            assert service.runtime.games.statistics().sessions == 1  # ann2 left; ann plays on
            with anyio.fail_after(5):
                while "m2" in service.runtime.games.matches:  # closed by the driver ann's call runs
                    await ann.recv()
        assert service.counters.ticks > 0


async def test_a_slow_reader_keeps_only_the_newest_state_and_gets_a_full_one_next() -> None:
    """The writer is blocked on a stalled stream; ticks keep coming; nothing queues."""
    outbox = StateOutbox()
    loop = GameLoop(Arena(), start=0.0, tick_hz=10.0, full_every=1000)
    codec = GameWire()
    loop.submit(Action(player="ann", kind="join"))
    sent: list[bytes] = []
    release = anyio.Event()

    class StalledStream:
        async def send_message(self, data: bytes) -> None:
            sent.append(data)
            if len(sent) == 2:
                await release.wait()

    superseded = 0
    mirror = GameMirror()
    async with anyio.create_task_group() as tasks:
        done = anyio.Event()

        async def write() -> None:  # what the runtime's writer does with a session's outbox
            stream = StalledStream()
            while (frames := await outbox.next(codec)) is not None:
                for frame in frames:
                    await stream.send_message(frame)
            done.set()

        tasks.start_soon(write)
        for tick in range(1, 8):
            loop.submit(Action(player="ann", kind="move", params={"dx": "1"}, sequence=tick))
            (state,) = loop.advance(tick / 10)
            superseded += outbox.offer(EncodedTick("m", state, 0))
            await anyio.sleep(0.01)
        assert len(sent) == 2 and superseded == 4  # ticks 3-6 replaced one another
        release.set()
        outbox.close()
        await done.wait()
    decoded = [GameState().parse(data) for data in sent]
    assert [(s.tick, s.full) for s in decoded] == [(1, True), (2, False), (7, True)]
    for message in decoded:
        mirror.apply(**game_update(message))
    assert mirror.players == dict(loop.players)
    assert outbox.slot.superseded == 4


actions = st.builds(
    Action,
    player=st.sampled_from(["ann", "bób", "😀"]),
    kind=st.sampled_from(["join", "leave", "move", "move", "attack"]),
    params=st.one_of(
        st.fixed_dictionaries(
            {"dx": st.integers(-10, 10).map(str), "dy": st.integers(-10, 10).map(str)}
        ),
        st.fixed_dictionaries({"target": st.sampled_from(["ann", "bób", "😀"])}),
    ),
    sequence=st.integers(1, 30),
)


@given(data=st.data())
def test_a_client_applying_encoded_full_and_delta_states_holds_the_servers_state(
    data: st.DataObject,
) -> None:
    """Through the real encoder and betterproto2's decoder, with states randomly superseded."""
    arena = Arena(width=2**20, height=7, attack_range=2**20, damage=35, respawn_ticks=2)
    loop = GameLoop(arena, start=0.0, tick_hz=10.0, full_every=data.draw(st.integers(1, 6)))
    match = data.draw(st.sampled_from(["", "m", "ma😀tch"]))
    codec = GameWire()
    slot: LatestState[EncodedTick] = LatestState()
    mirror = GameMirror()
    for tick in range(1, data.draw(st.integers(1, 25)) + 1):
        for action in data.draw(st.lists(actions, max_size=6)):
            with suppress(CoreError):  # refusals are the core tests' business
                loop.submit(action)
        (state,) = loop.advance(tick / 10)
        encoded = EncodedTick(match, state, tick)
        if data.draw(st.booleans()):
            encoded.frame(codec, full=True)  # encoded early, as a tick with joiners does
        slot.offer(encoded)
        if data.draw(st.booleans()):
            encoded, full = slot.take()
            message = GameState().parse(encoded.frame(codec, full=full))
            assert message.tick == state.tick and message.match_id == match
            assert message.full == (full or state.periodic_full)
            mirror.apply(**game_update(message))
            assert mirror.players == expected(state)


def expected(state: TickState) -> dict[str, PlayerState]:
    return {player.player: player for player in state.players}
