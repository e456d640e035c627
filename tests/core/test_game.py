"""The tick loop under generated clocks, and its rules case by case. Replay, mirrors and the
arena's invariants under generated inputs are the kit's machine (``interplay.testing.
check_rules(Arena)``, tests/testing/test_kit.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.core.arena import Arena
from interplay.core.errors import (
    AlreadyExists,
    CoreError,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
)
from interplay.core.game import Action, GameLoop, GameMirror, PlayerState
from interplay.core.latest import LatestState

# Small and violent, so that generated runs reach deaths, respawns and the borders.
ARENA = Arena(width=40, height=30, speed=10, attack_range=25, damage=40, respawn_ticks=3)
PLAYERS = ["ann", "bob", "cy"]


def as_dict(players: tuple[PlayerState, ...]) -> dict[str, PlayerState]:
    return {player.player: player for player in players}


@given(
    start=st.floats(0, 1e9),
    hz=st.sampled_from([1.0, 20.0, 30.0, 60.0, 144.0]),
    cap=st.integers(1, 8),
    steps=st.lists(st.floats(0, 0.5), max_size=40),
)
def test_ticks_increase_without_gaps_below_the_cap_and_never_drift(
    start: float, hz: float, cap: int, steps: list[float]
) -> None:
    loop = GameLoop(ARENA, start=start, tick_hz=hz, max_catch_up=cap)
    now, last, skipped = start, 0, 0
    for step in steps:
        now += step
        ticks = [state.tick for state in loop.advance(now)]
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks))) if ticks else True
        assert len(ticks) <= cap
        if ticks:
            assert ticks[0] > last
            if ticks[0] > last + 1:
                assert len(ticks) == cap  # only a backlog beyond the cap is skipped
            skipped += ticks[0] - last - 1
            last = ticks[-1]
        # No drift: the loop is exactly at the newest tick due at `now`.
        assert loop.tick == last
        assert last == 0 or loop.deadline(last) <= now
        assert loop.next_deadline() > now
    assert loop.statistics().ticks_skipped == skipped
    assert loop.statistics().ticks_run == last - skipped


def test_actions_apply_once_per_tick_in_sequence_order_and_repeats_are_ignored() -> None:
    loop = GameLoop(ARENA, start=0.0, tick_hz=10.0)
    loop.submit(Action(player="ann", kind="join"))
    (first,) = loop.advance(0.1)
    assert [event.kind for event in first.events] == ["join"]
    x0 = first.players[0].x
    assert loop.submit(Action(player="ann", kind="move", params={"dx": "3"}, sequence=1))
    assert loop.submit(Action(player="ann", kind="move", params={"dx": "-1"}, sequence=5))
    assert not loop.submit(Action(player="ann", kind="move", params={"dx": "9"}, sequence=5))
    assert not loop.submit(Action(player="ann", kind="move", params={"dx": "9"}, sequence=2))
    (second,) = loop.advance(0.2)
    (ann,) = second.players
    assert ann.x == min(x0 + 3, ARENA.width) - 1
    assert ann.last_sequence == 5
    assert second.changed == (ann,)
    assert loop.statistics().actions_ignored == 2
    assert loop.statistics().actions_applied == 2
    (third,) = loop.advance(0.3)
    assert third.changed == () and third.events == ()


def test_bad_inputs_name_the_field_and_queue_nothing() -> None:
    loop = GameLoop(ARENA, start=0.0, tick_hz=10.0, actions_per_second=2)
    loop.submit(Action(player="ann", kind="join"))
    cases: list[tuple[Action, type[CoreError], str]] = [
        (Action(player="ann", kind="fly", sequence=1), InvalidArgument, "action_type"),
        (
            Action(player="ann", kind="move", params={"dx": "11"}, sequence=1),
            InvalidArgument,
            "parameters.dx",
        ),
        (
            Action(player="ann", kind="move", params={"dx": "1.5"}, sequence=1),
            InvalidArgument,
            "parameters.dx",
        ),
        (
            Action(player="ann", kind="move", params={"jump": "1"}, sequence=1),
            InvalidArgument,
            "parameters.jump",
        ),
        (
            Action(player="ann", kind="attack", params={}, sequence=1),
            InvalidArgument,
            "parameters.target",
        ),
        (Action(player="ann", kind="move", sequence=0), InvalidArgument, "sequence"),
        (Action(player="bob", kind="move", sequence=1), NotJoined, "player_id"),
        (Action(player="ann", kind="join"), AlreadyExists, "player_id"),
        (Action(player="bob", kind="leave"), NotJoined, "player_id"),
    ]
    for action, error, field in cases:
        with pytest.raises(error) as raised:
            loop.submit(action)
        assert raised.value.field == field, action
    assert loop.submit(Action(player="ann", kind="move", params={"dx": "1"}, sequence=1))
    assert loop.submit(Action(player="ann", kind="move", params={"dx": "1"}, sequence=2))
    with pytest.raises(LimitExceeded, match="2 actions per second"):
        loop.submit(Action(player="ann", kind="move", params={"dx": "1"}, sequence=3))
    (state,) = loop.advance(0.1)
    assert state.players[0].last_sequence == 2
    assert [action.sequence for action in state.applied] == [0, 1, 2]
    # The bucket refills with ticks: 2 per second at 10 Hz is one action per 5 ticks.
    assert loop.advance(0.5)
    assert loop.submit(Action(player="ann", kind="move", params={"dx": "1"}, sequence=3))


def test_an_attack_in_range_kills_and_the_dead_respawn() -> None:
    arena = Arena(width=10, height=10, attack_range=100, damage=60, respawn_ticks=2)
    loop = GameLoop(arena, start=0.0, tick_hz=10.0)
    for player in ("ann", "bob"):
        loop.submit(Action(player=player, kind="join"))
    loop.advance(0.1)
    for sequence in (1, 2):
        attack = Action(player="ann", kind="attack", params={"target": "bob"}, sequence=sequence)
        loop.submit(attack)
    (state,) = loop.advance(0.2)
    assert [event.kind for event in state.events] == ["hit", "hit", "death"]
    players = as_dict(state.players)
    assert players["bob"].health == 0 and players["bob"].attribute("status") == "dead"
    assert players["ann"].attribute("kills") == "1"
    loop.submit(Action(player="bob", kind="move", params={"dx": "1"}, sequence=1))
    (state,) = loop.advance(0.3)
    assert as_dict(state.players)["bob"].x == players["bob"].x  # the dead do not move
    (state,) = loop.advance(0.4)
    assert [event.kind for event in state.events] == ["respawn"]
    bob = as_dict(state.players)["bob"]
    assert bob.health == arena.max_health and bob.attribute("deaths") == "1"
    assert bob.attribute("respawn_at") == "" and bob.last_sequence == 1


def test_join_and_leave_within_one_tick_cancel_out() -> None:
    loop = GameLoop(ARENA, start=0.0, tick_hz=10.0)
    loop.submit(Action(player="ann", kind="join"))
    loop.submit(Action(player="ann", kind="leave"))
    (state,) = loop.advance(0.1)
    assert state.players == () and state.events == ()
    loop.submit(Action(player="ann", kind="join"))
    loop.advance(0.2)
    loop.submit(Action(player="ann", kind="leave"))
    loop.submit(Action(player="ann", kind="join"))
    (state,) = loop.advance(0.3)
    assert [player.player for player in state.players] == ["ann"] and state.events == ()


def test_actions_of_a_join_cancelled_by_a_leave_leave_no_trace() -> None:
    """Found by hypothesis: the dropped action's sequence survived into the next join, so the
    state was no longer a function of the applied log."""
    loop = GameLoop(ARENA, start=0.0, tick_hz=10.0)
    loop.submit(Action(player="cy", kind="join"))
    loop.submit(Action(player="cy", kind="move", params={"dx": "1"}, sequence=1))
    loop.submit(Action(player="cy", kind="leave"))
    (state,) = loop.advance(0.1)
    assert state.applied == () and loop.statistics().actions_ignored == 1
    loop.submit(Action(player="cy", kind="join"))
    (state,) = loop.advance(0.2)
    assert state.players[0].last_sequence == 0
    assert loop.submit(Action(player="cy", kind="move", params={"dx": "1"}, sequence=1))


def test_a_delta_before_any_full_state_is_refused() -> None:
    with pytest.raises(ValueError, match="full state"):
        GameMirror().apply(tick=1, full=False, players=[])


def test_latest_state_keeps_the_newest_and_asks_for_full_after_a_loss() -> None:
    slot: LatestState[int] = LatestState()
    assert not slot.offer(1)
    assert slot.take() == (1, True)  # a new receiver starts with a full state
    assert not slot.offer(2)
    assert slot.take() == (2, False)
    assert not slot.offer(3)
    assert slot.offer(4)
    assert slot.take() == (4, True)
    assert slot.superseded == 1 and slot.taken == 3
    with pytest.raises(LookupError):
        slot.take()


@pytest.mark.parametrize("hz", [0.0, -1.0, math.inf, math.nan])
def test_a_tick_rate_must_be_a_positive_number(hz: float) -> None:
    with pytest.raises(ValueError, match="tick_hz"):
        GameLoop(ARENA, start=0.0, tick_hz=hz)
