"""The gRPC side of GameSync: the stream writer's newest-state outbox, and the state codec against
betterproto2. The behaviour over a call is the conformance suite's
(interplay.testing.transport.game)."""

from __future__ import annotations

from contextlib import suppress

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.core.arena import Arena
from interplay.core.errors import CoreError
from interplay.core.game import Action, GameLoop, GameMirror, PlayerState, TickState
from interplay.core.latest import LatestState
from interplay.runtime.outbox import EncodedTick, StateOutbox
from interplay.transports.grpc.codec import GameWire, game_update
from interplay.transports.grpc.generated.chat import GameState

pytestmark = pytest.mark.anyio


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
