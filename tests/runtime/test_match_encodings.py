"""What nodes send each other about a match (runtime/node_matches.py): a state and a snapshot
come back as they went, whatever the names hold, and the header is read without the players."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from interplay.core.game import Action, GameEvent, LoopSnapshot, PlayerState, TickState
from interplay.core.matches import MatchSnapshot
from interplay.runtime.node_matches import (
    decode_snapshot,
    decode_state,
    encode_snapshot,
    encode_state,
    header,
)

names = st.text(min_size=1, max_size=12)  # commas, quotes, newlines, astral characters
players = st.lists(
    st.builds(
        PlayerState,
        player=names,
        x=st.integers(0, 1000).map(float),
        y=st.integers(0, 1000).map(float),
        health=st.integers(0, 100),
        attributes=st.lists(st.tuples(names, names), max_size=3).map(tuple),
        last_sequence=st.integers(0, 2**40),
    ),
    max_size=6,
    unique_by=lambda p: p.player,
)
events = st.lists(st.builds(GameEvent, id=names, kind=names, data=names), max_size=3)


@given(
    players=players,
    events=events,
    fence=st.integers(1, 2**40),
    tick=st.integers(1, 2**40),
    node=st.text(alphabet="0123456789abcdef", min_size=1, max_size=8),
    data=st.data(),
)
def test_a_state_comes_back_as_it_went(
    players: list[PlayerState],
    events: list[GameEvent],
    fence: int,
    tick: int,
    node: str,
    data: st.DataObject,
) -> None:
    changed = tuple(p for p in players if data.draw(st.booleans()))
    state = TickState(
        tick=tick,
        players=tuple(players),
        changed=changed,
        events=tuple(events),
        periodic_full=data.draw(st.booleans()),
        applied=(),
    )
    seats = {p.player: f"{node}/{n}" for n, p in enumerate(players)}
    lines: dict[str, tuple[PlayerState, str]] = {}
    payload = encode_state(fence, node, state, 17, seats, tick - 1, lines).encode()
    assert header(payload) == (fence, node, tick)
    cache: dict[str, PlayerState] = {}
    decoded, stamp, got_seats, prev = decode_state(payload, cache)
    assert (decoded, stamp, got_seats, prev) == (state, 17, seats, tick - 1)
    # Sent again unchanged: the same lines, and the receiver keeps its PlayerState objects.
    again = encode_state(fence, node, state, 17, seats, tick - 1, lines).encode()
    assert again == payload
    second, *_ = decode_state(again, cache)
    assert all(a is b for a, b in zip(second.players, decoded.players, strict=True))


@given(players=players, data=st.data())
def test_a_snapshot_comes_back_as_it_went(players: list[PlayerState], data: st.DataObject) -> None:
    actions = st.builds(
        Action,
        player=names,
        kind=names,
        params=st.dictionaries(names, names, max_size=2),
        sequence=st.integers(0, 2**40),
    )
    pairs = st.lists(st.tuples(names, st.integers(0, 2**40)), max_size=3).map(tuple)
    loop = LoopSnapshot(
        tick=data.draw(st.integers(0, 2**40)),
        players=tuple(players),
        sequences=data.draw(pairs),
        applied_sequences=data.draw(pairs),
        tokens=tuple((p, float(t)) for p, t in data.draw(pairs)),
        joins=tuple(data.draw(st.lists(actions, max_size=2))),
        actions=tuple(data.draw(st.lists(actions, max_size=3))),
        leaves=tuple(data.draw(st.lists(actions, max_size=2))),
    )
    snapshot = MatchSnapshot(
        loop=loop, seats=data.draw(st.lists(st.tuples(names, names)).map(tuple))
    )
    assert decode_snapshot(encode_snapshot(snapshot, "12-0")) == snapshot
