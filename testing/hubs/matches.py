"""MatchHub against a plain model: seats, sequences accepted and applied per player, what each
tick applies, who receives each state, full states on (re)join, mirrors that follow the server
from fulls and deltas, idle matches and grace, refusals that change nothing.

    from interplay.testing.hubs import MatchHubConformance

    class TestMyMatchHub(MatchHubConformance):
        def make_hub(self, **options):
            return MyMatchHub(**options)      # a MatchHub subclass, or a wrapper

``make_hub`` gets ``settings`` and ``limits`` (pass them on); the hub plays the default
``Arena``'s rules (the machine sends its moves and attacks).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from interplay.core import (
    Act,
    Action,
    AlreadyExists,
    CoreError,
    EndSession,
    GameLimits,
    GameMirror,
    GameSettings,
    InvalidArgument,
    JoinMatch,
    LeaveMatch,
    LimitExceeded,
    MatchHub,
    NotJoined,
    PermissionDenied,
    TickReady,
)

from .run import run_hub_machine

SESSIONS = ["s0", "s1", "s2", "s3"]
PLAYERS = ["ann", "bob", "cé😀"]
MATCHES = ["m0", "m1", "m2"]
# Binary fractions throughout, so the fake clock adds up exactly.
SETTINGS = GameSettings(tick_hz=8.0, full_every=4, max_catch_up=3, grace=2.0)
LIMITS = GameLimits(max_matches=2, max_players=2, actions_per_second=1e6)  # no rate limiting
STEPS = [0.0, 0.0625, 0.125, 0.125, 0.25, 0.3125, 1.0, 2.5]  # seconds the clock moves on


@dataclass
class ModelMatch:
    seats: dict[str, str] = field(default_factory=dict)  # player -> session
    present: dict[str, None] = field(default_factory=dict)  # players in the state, join order
    joins: dict[str, None] = field(default_factory=dict)  # queued for the next tick
    leaves: dict[str, None] = field(default_factory=dict)
    queues: dict[str, list[Action]] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)  # highest sequence queued
    applied: dict[str, int] = field(default_factory=dict)  # highest sequence applied
    fresh: set[str] = field(default_factory=set)  # sessions whose next state must be full
    tick: int = 0
    empty_since: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.seats) or bool(self.present)

    def members(self) -> set[str]:
        return (set(self.present) | set(self.joins)) - set(self.leaves)


class MatchHubMachine(RuleBasedStateMachine):
    def make_hub(self, **options: Any) -> MatchHub:
        """The hub under test (``MatchHubConformance.make_hub`` replaces it)."""
        return MatchHub(**options)

    @initialize()
    def create(self) -> None:
        self.hub = self.make_hub(settings=SETTINGS, limits=LIMITS)
        self.now = 0.0
        self.matches: dict[str, ModelMatch] = {}
        self.seats: dict[str, tuple[str, str]] = {}  # session -> (match, player)
        self.mirrors: dict[str, GameMirror] = {}  # session -> its copy of its match
        self.closed = 0
        self.applied_count = 0
        self.ignored_count = 0

    # -- the hub: the only places that touch it directly -----------------------------------

    def _handle(self, command: object) -> bool:
        return self.hub.handle(command, now=self.now)  # type: ignore[arg-type]

    def _advance(self) -> list[TickReady]:
        return self.hub.advance(self.now)

    # -- model helpers ---------------------------------------------------------------------

    def _expired(self, match: ModelMatch) -> bool:
        return (
            not match.active
            and match.empty_since is not None
            and self.now - match.empty_since >= SETTINGS.grace
        )

    def _close(self, name: str) -> None:
        del self.matches[name]
        self.closed += 1

    def _observe(self) -> object:
        return (
            self.hub.statistics(),
            {s: self.hub.match_of(s) for s in SESSIONS},
            {m: sorted(loop.members()) for m in MATCHES if (loop := self.hub.loop(m))},
            self.hub.next_deadline(),
        )

    def _refused(self, command: object, error: type[CoreError], field: str) -> None:
        before = self._observe()
        with pytest.raises(error) as raised:
            self._handle(command)
        assert raised.value.field == field, (command, raised.value)
        assert self._observe() == before

    # -- rules -----------------------------------------------------------------------------

    @rule(
        session=st.sampled_from(SESSIONS),
        player=st.sampled_from(PLAYERS),
        name=st.sampled_from(MATCHES),
    )
    def join(self, session: str, player: str, name: str) -> None:
        command = JoinMatch(session=session, player=player, match=name)
        if session in self.seats:
            return self._refused(command, AlreadyExists, "match_id")
        match = self.matches.get(name)
        if match is not None and self._expired(match):
            self._close(name)  # closed now, and a new match starts under the name
            match = None
        if match is None:
            if len(self.matches) >= LIMITS.max_matches:
                return self._refused(command, LimitExceeded, "match_id")
            match = self.matches[name] = ModelMatch()
        elif player in match.seats:
            return self._refused(command, AlreadyExists, "player_id")
        elif len(match.seats) >= LIMITS.max_players:
            return self._refused(command, LimitExceeded, "match_id")
        idle = not match.active
        assert self._handle(command) is True
        if idle:  # a new match, or one back within the grace: its schedule starts now
            loop = self.hub.loop(name)
            assert loop is not None
            assert loop.next_deadline() == self.now + 1 / SETTINGS.tick_hz
        if player in match.leaves:  # left and came back within one tick: it never left
            del match.leaves[player]
        else:
            match.joins[player] = None
        match.seats[player] = session
        match.fresh.add(session)
        match.empty_since = None
        self.seats[session] = (name, player)
        self.mirrors[session] = GameMirror()

    @rule(
        session=st.sampled_from(SESSIONS),
        how=st.sampled_from(
            ["move", "move", "attack", "bad dx", "bad param", "unknown", "join", "leave"]
        ),
        offset=st.integers(-2, 3),  # the sequence, relative to the highest accepted
        claim=st.sampled_from(["", "", "self", "other player", "other match"]),
        dx=st.integers(-10, 10),
        victim=st.sampled_from(PLAYERS),
    )
    def act(self, session: str, how: str, offset: int, claim: str, dx: int, victim: str) -> None:
        seat = self.seats.get(session)
        name, player = seat if seat else ("", "")
        match = self.matches[name] if seat else None
        sequence = (match.accepted.get(player, 0) if match else 0) + offset
        params = {
            "move": {"dx": str(dx), "dy": str(-dx)},
            "attack": {"target": victim},
            "bad dx": {"dx": "11"},
            "bad param": {"dz": "1"},
        }.get(how, {})
        kind = {"bad dx": "move", "bad param": "move", "unknown": "fly"}.get(how, how)
        claimed_player = {"self": player, "other player": "mallory"}.get(claim, "")
        claimed_match = {"self": name, "other match": "elsewhere"}.get(claim, "")
        action = Action(player=claimed_player, kind=kind, params=params, sequence=sequence)
        command = Act(session=session, action=action, match=claimed_match)
        if how in ("join", "leave"):
            return self._refused(command, InvalidArgument, "action_type")
        if match is None:
            return self._refused(command, NotJoined, "action_type")
        if claim == "other player":
            return self._refused(command, PermissionDenied, "player_id")
        if claim == "other match":
            return self._refused(command, PermissionDenied, "match_id")
        if how == "unknown":
            return self._refused(command, InvalidArgument, "action_type")
        if sequence <= 0:
            return self._refused(command, InvalidArgument, "sequence")
        if how == "bad dx":
            return self._refused(command, InvalidArgument, "parameters.dx")
        if how == "bad param":
            return self._refused(command, InvalidArgument, "parameters.dz")
        if sequence <= match.accepted.get(player, 0):  # a repeat, or late: ignored
            before = self._observe()
            assert self._handle(command) is False
            self.ignored_count += 1
            assert self._observe()[1:] == before[1:]  # type: ignore[index]
            return
        assert self._handle(command) is True
        match.accepted[player] = sequence
        match.queues.setdefault(player, []).append(replace(action, player=player))

    @precondition(lambda self: self.seats)
    @rule(data=st.data())
    def play(self, data: st.DataObject) -> None:
        """Seated players send the next actions of their sequences (sometimes skipping some:
        sequences need only increase), now and then a re-send of an old one."""
        for _ in range(data.draw(st.integers(1, 6))):
            session = data.draw(st.sampled_from(sorted(self.seats)))
            how = data.draw(st.sampled_from(["move", "move", "move", "attack"]))
            offset = data.draw(st.sampled_from([1, 1, 1, 2, 0]))
            dx = data.draw(st.integers(-10, 10))
            victim = data.draw(st.sampled_from(PLAYERS))
            self.act(session, how, offset, "", dx, victim)

    @rule(
        session=st.sampled_from(SESSIONS),
        claim=st.sampled_from(["", "", "self", "other player", "other match"]),
    )
    def leave(self, session: str, claim: str) -> None:
        seat = self.seats.get(session)
        name, player = seat if seat else ("", "")
        command = LeaveMatch(
            session=session,
            player={"self": player, "other player": "mallory"}.get(claim, ""),
            match={"self": name, "other match": "elsewhere"}.get(claim, ""),
        )
        if seat is None:
            return self._refused(command, NotJoined, "player_id")
        if claim == "other player":
            return self._refused(command, PermissionDenied, "player_id")
        if claim == "other match":
            return self._refused(command, PermissionDenied, "match_id")
        assert self._handle(command) is True
        self._leave(session)

    @rule(session=st.sampled_from(SESSIONS))
    def end_session(self, session: str) -> None:
        """The stream ended: its player leaves; a session with no seat changes nothing."""
        before = self._observe()
        assert self._handle(EndSession(session=session)) is True
        if session in self.seats:
            self._leave(session)
        else:
            assert self._observe() == before

    def _leave(self, session: str) -> None:
        name, player = self.seats.pop(session)
        del self.mirrors[session]
        match = self.matches[name]
        del match.seats[player]
        match.fresh.discard(session)
        if player in match.joins:  # joined and left within one tick: it never appeared
            del match.joins[player]
            self.ignored_count += len(match.queues.pop(player, ()))
            match.accepted[player] = match.applied.get(player, 0)
        else:
            match.leaves[player] = None
        if not match.seats:
            match.empty_since = self.now

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: float) -> None:
        self.now += step
        ready = self._advance()
        by_match: dict[str, list[TickReady]] = {}
        for item in ready:
            by_match.setdefault(item.match, []).append(item)
        for name, match in list(self.matches.items()):
            batch = by_match.pop(name, [])
            if not match.active:
                assert batch == []
                if self._expired(match):
                    self._close(name)
                continue
            if batch:
                self._check_batch(name, match, batch)
                if self._expired(match):  # its last leave applied after the grace
                    self._close(name)
        assert by_match == {}, "a state for a match the model does not have"
        deadline = self.hub.next_deadline()
        assert deadline is None or deadline > self.now  # nothing due is left undone
        if deadline is None:
            assert not self.matches

    def _check_batch(self, name: str, match: ModelMatch, batch: list[TickReady]) -> None:
        ticks = [item.state.tick for item in batch]
        assert ticks[0] > match.tick, f"match {name!r}: tick {ticks[0]} after tick {match.tick}"
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), (
            f"match {name!r}: ticks {ticks} in one advance (they follow each other)"
        )
        assert len(ticks) <= SETTINGS.max_catch_up
        loop = self.hub.loop(name)
        if loop is not None:  # (None: it closed right after, see advance)
            assert loop.deadline(ticks[-1]) <= self.now < loop.next_deadline()
        sessions = set(match.seats.values())
        # The first state of the batch applies what was queued, in the documented order.
        expected = [Action(player=p, kind="join") for p in match.joins]
        present = {**match.present, **match.joins}
        for player in present:
            queue = match.queues.get(player, [])
            expected.extend(queue)
            if queue:
                match.applied[player] = queue[-1].sequence
                self.applied_count += len(queue)
        expected.extend(Action(player=p, kind="leave") for p in match.leaves)
        applied = [(a.player, a.kind, a.sequence) for a in batch[0].state.applied]
        assert applied == [(a.player, a.kind, a.sequence) for a in expected]
        for player in match.leaves:
            del present[player]
        match.present = present
        match.joins, match.leaves, match.queues = {}, {}, {}
        restart, match.fresh = match.fresh, set()
        for index, item in enumerate(batch):
            state = item.state
            assert set(item.to) == sessions and len(item.to) == len(sessions)
            assert set(item.restart) == (restart if index == 0 else set())
            assert [p.player for p in state.players] == list(present)
            for player_state in state.players:
                assert player_state.last_sequence == match.applied.get(player_state.player, 0)
            assert state.periodic_full == (state.tick % SETTINGS.full_every == 0)
            if index:
                assert state.applied == ()
            server = {p.player: p for p in state.players}
            for session in item.to:
                full = session in item.restart or state.periodic_full
                mirror = self.mirrors[session]
                mirror.apply(
                    tick=state.tick,
                    full=full,
                    players=state.players if full else state.changed,
                    events=state.events,
                )
                assert mirror.players == server, (
                    f"match {name!r}, tick {state.tick}: {session} following "
                    f"{'a full state' if full else 'deltas'} holds {mirror.players}, the hub "
                    f"{server} (a player that changed must be in the tick's delta)"
                )
        match.tick = ticks[-1]

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def seats_match(self) -> None:
        for session in SESSIONS:
            seat = self.seats.get(session)
            assert self.hub.match_of(session) == (seat[0] if seat else None)
        assert set(self.hub.matches) == set(self.matches)

    @invariant()
    def members_and_sequences_match(self) -> None:
        for name, match in self.matches.items():
            loop = self.hub.loop(name)
            assert loop is not None
            assert loop.members() == match.members()
            assert loop.tick == match.tick
            assert list(loop.players) == list(match.present)
            for player, state in loop.players.items():
                assert state.last_sequence == match.applied.get(player, 0)

    @invariant()
    def statistics_match(self) -> None:
        stats = self.hub.statistics()
        assert (stats.matches, stats.sessions, stats.matches_closed) == (
            len(self.matches),
            len(self.seats),
            self.closed,
        )
        assert (stats.actions_applied, stats.actions_ignored) == (
            self.applied_count,
            self.ignored_count,
        )


class MatchHubConformance:
    """Subclass it as ``Test<YourHub>`` and override ``make_hub``."""

    def make_hub(self, *, settings: GameSettings, limits: GameLimits) -> MatchHub:
        """A hub with these options, playing the default Arena (a fresh one each call)."""
        return MatchHub(settings=settings, limits=limits)

    def test_match_hub_keeps_every_promise(self) -> None:
        run_hub_machine(MatchHubMachine, self.make_hub, f"{type(self).__name__} (MatchHub)")
