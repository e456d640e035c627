"""Snapshots of a match: what another node goes on from when the match moves (DESIGN §10).

The property: a loop restored from ``snapshot()`` (and a hub ``attach``ed from ``detach``) ticks
on exactly as the original would, whatever was queued when the snapshot was taken.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.core.arena import Arena
from interplay.core.errors import CoreError
from interplay.core.game import Action, GameLoop
from interplay.core.matches import Act, GameSettings, JoinMatch, LeaveMatch, MatchHub

PLAYERS = ("ann", "bob", "cid")
HZ = 8.0  # binary fractions: two schedules offset by a whole number agree exactly

inputs = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(PLAYERS)),
    st.tuples(st.just("leave"), st.sampled_from(PLAYERS)),
    st.tuples(
        st.just("move"),
        st.sampled_from(PLAYERS),
        st.integers(-10, 10),
        st.integers(-10, 10),
        st.integers(0, 12),
    ),
    st.tuples(st.just("attack"), st.sampled_from(PLAYERS), st.sampled_from(PLAYERS)),
    st.tuples(st.just("advance"), st.integers(0, 3)),
)


def feed(loop: GameLoop, step: tuple[object, ...], now: float, sequences: dict[str, int]) -> list:
    """Apply one generated step to ``loop``; what it returned (states or an error's name)."""
    kind = step[0]
    if kind == "advance":
        assert isinstance(step[1], int)
        return list(loop.advance(now))
    player = str(step[1])
    try:
        if kind in ("join", "leave"):
            return [loop.submit(Action(player=player, kind=str(kind)))]
        if kind == "move":
            dx, dy, back = step[2], step[3], step[4]
            sequence = sequences.get(player, 0) + 1 - int(str(back)) % 3  # repeats too
            sequences[player] = max(sequences.get(player, 0), sequence)
            params = {"dx": str(dx), "dy": str(dy)}
            return [
                loop.submit(Action(player=player, kind="move", params=params, sequence=sequence))
            ]
        sequences[player] = sequences.get(player, 0) + 1
        params = {"target": str(step[2])}
        action = Action(player=player, kind="attack", params=params, sequence=sequences[player])
        return [loop.submit(action)]
    except CoreError as error:
        return [type(error).__name__, error.field]


@given(before=st.lists(inputs, max_size=40), after=st.lists(inputs, max_size=40))
def test_a_restored_loop_ticks_on_exactly_as_the_original(
    before: list[tuple[object, ...]], after: list[tuple[object, ...]]
) -> None:
    rules = Arena(respawn_ticks=3)
    original = GameLoop(rules, start=0.0, tick_hz=HZ, full_every=4, actions_per_second=20.0)
    sequences: dict[str, int] = {}
    now = 0.0
    for step in before:
        if step[0] == "advance":
            now += int(str(step[1])) / HZ
        feed(original, step, now, sequences)
    # The copy's schedule starts elsewhere (another process's clock): ticks are relative.
    offset = 1024.0
    copy = GameLoop(rules, start=now + offset, tick_hz=HZ, full_every=4, actions_per_second=20.0)
    copy.restore(original.snapshot(), now + offset)
    assert copy.snapshot() == original.snapshot()
    copy_sequences = dict(sequences)
    for step in after:
        if step[0] == "advance":
            now += int(str(step[1])) / HZ
        mine = feed(original, step, now, sequences)
        theirs = feed(copy, step, now + offset, copy_sequences)
        assert theirs == mine
    assert copy.snapshot() == original.snapshot()


def test_skip_to_numbers_the_next_tick_above_what_players_saw() -> None:
    loop = GameLoop(Arena(), start=0.0, tick_hz=10.0)
    loop.submit(Action(player="ann", kind="join"))
    assert [s.tick for s in loop.advance(0.1)] == [1]
    loop.skip_to(7, now=5.0)
    assert [s.tick for s in loop.advance(5.1)] == [8]
    loop.skip_to(3, now=6.0)  # below: nothing changes
    assert loop.tick == 8
    assert loop.statistics().ticks_skipped == 6


def test_a_detached_match_goes_on_in_another_hub_and_its_sessions_restart() -> None:
    settings = GameSettings(tick_hz=10.0, full_every=1000)
    one, two = MatchHub(settings=settings), MatchHub(settings=settings)
    one.handle(JoinMatch(session="n1/1", player="ann", match="m"), now=0.0)
    one.handle(JoinMatch(session="n2/4", player="bob", match="m"), now=0.0)
    one.advance(0.1)
    move = Action(player="", kind="move", params={"dx": "3"}, sequence=1)
    one.handle(Act(session="n1/1", action=move), now=0.15)  # queued when it moves
    snapshot = one.detach("m")
    assert one.matches == {} and one.match_of("n1/1") is None
    assert one.statistics().matches_closed == 0

    two.attach("m", snapshot, now=50.0, tick=5)
    [ready] = two.advance(50.1)
    assert ready.state.tick == 6  # above what its players saw
    assert set(ready.restart) == {"n1/1", "n2/4"}  # full states first
    ann = next(p for p in ready.state.players if p.player == "ann")
    assert ann.last_sequence == 1  # the queued move applied there
    two.handle(LeaveMatch(session="n2/4"), now=50.15)
    [ready] = two.advance(50.2)
    assert [p.player for p in ready.state.players] == ["ann"]


def test_attach_refuses_a_match_or_session_already_here() -> None:
    hub = MatchHub()
    hub.handle(JoinMatch(session="s", player="ann", match="m"), now=0.0)
    snapshot = hub.snapshot("m")
    with pytest.raises(ValueError, match="open here already"):
        hub.attach("m", snapshot, now=1.0)
    with pytest.raises(ValueError, match="already play here"):
        hub.attach("other", snapshot, now=1.0)
