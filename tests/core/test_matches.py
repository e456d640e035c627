"""MatchHub: seats, several matches, refusals that change nothing, idle matches and grace."""

from __future__ import annotations

import pytest

from interplay.core.errors import (
    AlreadyExists,
    CoreError,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
)
from interplay.core.game import Action
from interplay.core.matches import (
    Act,
    EndSession,
    GameLimits,
    GameSettings,
    JoinMatch,
    LeaveMatch,
    MatchHub,
)

SETTINGS = GameSettings(tick_hz=10.0, full_every=1000, grace=5.0)


def move(session: str, sequence: int, dx: int = 1, player: str = "", match: str = "") -> Act:
    action = Action(player=player, kind="move", params={"dx": str(dx)}, sequence=sequence)
    return Act(session=session, action=action, match=match)


def test_matches_tick_side_by_side_and_each_state_goes_to_its_players() -> None:
    hub = MatchHub(settings=SETTINGS)
    hub.handle(JoinMatch(session="s1", player="ann", match="m1"), now=0.0)
    hub.handle(JoinMatch(session="s2", player="bob", match="m1"), now=0.0)
    hub.handle(JoinMatch(session="s3", player="ann", match="m2"), now=0.05)
    assert hub.next_deadline() == pytest.approx(0.1)
    ready = hub.advance(0.1)
    assert [(r.match, r.state.tick, r.to, r.restart) for r in ready] == [
        ("m1", 1, ("s1", "s2"), ("s1", "s2"))
    ]
    ready = hub.advance(0.151)
    assert [(r.match, r.state.tick, r.to) for r in ready] == [("m2", 1, ("s3",))]
    hub.handle(move("s1", 1), now=0.16)
    (m1,) = hub.advance(0.2)
    assert [p.player for p in m1.state.changed] == ["ann"] and m1.restart == ()
    assert hub.statistics().actions_applied == 1


def test_refused_commands_name_the_field_and_change_nothing() -> None:
    hub = MatchHub(settings=SETTINGS, limits=GameLimits(max_matches=1, max_players=2))
    hub.handle(JoinMatch(session="s1", player="ann", match="m1"), now=0.0)
    hub.handle(JoinMatch(session="s2", player="bob", match="m1"), now=0.0)
    cases: list[tuple[object, type[CoreError], str]] = [
        (JoinMatch(session="s3", player="", match="m1"), InvalidArgument, "player_id"),
        (JoinMatch(session="s3", player="x" * 300, match="m1"), InvalidArgument, "player_id"),
        (JoinMatch(session="s3", player="cy", match="m" * 300), InvalidArgument, "match_id"),
        (JoinMatch(session="s3", player="ann", match="m1"), AlreadyExists, "player_id"),
        (JoinMatch(session="s1", player="cy", match="m1"), AlreadyExists, "match_id"),
        (JoinMatch(session="s3", player="cy", match="m1"), LimitExceeded, "match_id"),
        (JoinMatch(session="s3", player="cy", match="m2"), LimitExceeded, "match_id"),
        (move("s3", 1), NotJoined, "action_type"),
        (move("s1", 1, player="bob"), PermissionDenied, "player_id"),
        (move("s1", 1, match="m2"), PermissionDenied, "match_id"),
        (move("s1", 1, dx=99), InvalidArgument, "parameters.dx"),
        (Act(session="s1", action=Action(player="", kind="leave")), InvalidArgument, "action_type"),
        (LeaveMatch(session="s3"), NotJoined, "player_id"),
    ]
    for command, error, field in cases:
        before = hub.statistics()
        with pytest.raises(error) as raised:
            hub.handle(command, now=0.01)  # type: ignore[arg-type]
        assert raised.value.field == field, command
        assert hub.statistics() == before
    (state,) = hub.advance(0.1)
    assert [p.player for p in state.state.players] == ["ann", "bob"]
    assert state.state.changed == state.state.players  # joins only: nothing else got through


def test_a_stream_that_ends_leaves_and_an_empty_match_closes_after_grace() -> None:
    hub = MatchHub(settings=SETTINGS)
    hub.handle(JoinMatch(session="s1", player="ann"), now=0.0)
    hub.advance(0.1)
    hub.handle(EndSession(session="s1"), now=0.12)
    (ready,) = hub.advance(0.2)
    assert ready.to == () and [e.kind for e in ready.state.events] == ["leave"]
    assert hub.next_deadline() == pytest.approx(5.12)  # nothing to tick: only the close
    assert hub.advance(5.0) == []
    assert hub.statistics().matches == 1
    # Back within the grace: the schedule resumes from now and tick numbers continue.
    hub.handle(JoinMatch(session="s2", player="ann"), now=5.0)
    assert hub.next_deadline() == pytest.approx(5.1)
    (ready,) = hub.advance(5.1)
    assert ready.state.tick == 3 and ready.restart == ("s2",)
    assert hub.statistics().ticks_skipped == 0
    hub.handle(LeaveMatch(session="s2"), now=5.1)
    hub.advance(5.2)
    hub.advance(10.2)
    stats = hub.statistics()
    assert (stats.matches, stats.matches_closed, stats.sessions) == (0, 1, 0)
    assert stats.ticks_run == 4
    assert hub.next_deadline() is None


def test_a_player_id_is_free_again_once_its_stream_left() -> None:
    hub = MatchHub(settings=SETTINGS)
    hub.handle(JoinMatch(session="s1", player="ann"), now=0.0)
    hub.handle(move("s1", 1), now=0.0)
    hub.advance(0.1)
    hub.handle(EndSession(session="s1"), now=0.1)
    hub.handle(JoinMatch(session="s2", player="ann"), now=0.1)  # a reconnect, same tick
    assert not hub.handle(move("s2", 1), now=0.1)  # its re-sent action: already applied
    (ready,) = hub.advance(0.2)
    assert ready.to == ("s2",) and ready.restart == ("s2",)
    assert [p.last_sequence for p in ready.state.players] == [1]


def test_a_match_whose_last_leave_applies_after_the_grace_closes_in_that_advance() -> None:
    """Found by the state machine: the leave's tick ran, the grace was over, but the match
    stayed open and ``next_deadline()`` was already in the past."""
    hub = MatchHub(settings=SETTINGS)
    hub.handle(JoinMatch(session="s1", player="ann"), now=0.0)
    hub.advance(0.1)
    hub.handle(LeaveMatch(session="s1"), now=0.1)
    ready = hub.advance(6.0)  # the adapter woke late: the leave applies, grace is over
    assert [e.kind for e in ready[0].state.events] == ["leave"]
    stats = hub.statistics()
    assert (stats.matches, stats.matches_closed) == (0, 1)
    assert hub.next_deadline() is None
