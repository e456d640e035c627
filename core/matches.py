"""Matches side by side: which stream plays whom where, and one ``GameLoop`` per match.

``MatchHub.handle(command, now=...)`` takes one command from one stream (a *session*) and
either queues it in its match's loop or raises a ``CoreError`` leaving everything as it was.
``advance(now)`` runs every match's due ticks and says who receives each state; the adapter
sleeps until ``next_deadline()``.

Rules, in one place:

* A session plays one player in one match; its ``join`` binds both. An action claiming another
  player or match is refused. A player id is taken while its session plays it.
* A match is created by its first join and closed ``grace`` seconds after its last player
  left. While empty it does not tick; a player joining within the grace resumes its schedule
  (tick numbers continue).
* A session that joined gets a full state first (``TickReady.restart``); after that, what it
  gets is up to its ``LatestState``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .arena import Arena
from .errors import (
    AlreadyExists,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
    WrongIdentity,
)
from .game import JOIN, LEAVE, Action, GameLoop, LoopSnapshot, Rules, TickState
from .limits import MAX_ID_LENGTH

# Ticks per second a match may run at, at most (a faster loop would only burn the CPU).
MAX_TICK_HZ = 1000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GameSettings:
    """Per-match loop settings (see ``GameLoop``); ``grace`` in seconds."""

    tick_hz: float = 30.0
    full_every: int = 30  # ticks between full states
    max_catch_up: int = 10  # missed ticks run on a late wake-up
    grace: float = 30.0  # seconds an empty match is kept

    def __post_init__(self) -> None:
        if not 0 < self.tick_hz <= MAX_TICK_HZ:  # NaN fails too
            raise ValueError(f"tick_hz: must be in (0, {MAX_TICK_HZ:g}], got {self.tick_hz}")
        for name in ("full_every", "max_catch_up"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.grace >= 0:
            raise ValueError(f"grace: must be 0 or more seconds, got {self.grace}")


@dataclass(frozen=True, slots=True, kw_only=True)
class GameLimits:
    max_id_length: int = MAX_ID_LENGTH
    max_matches: int = 1000  # per hub
    max_players: int = 256  # per match
    actions_per_second: float = 60.0  # per player

    def __post_init__(self) -> None:
        for name in ("max_id_length", "max_matches", "max_players"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.actions_per_second > 0:  # NaN fails too
            raise ValueError(f"actions_per_second: must be positive, got {self.actions_per_second}")


# Commands


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinMatch:
    session: str
    player: str
    match: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Act:
    """An action of the session's player; ``action.player`` and ``match`` are what the message
    claims (empty: whoever this stream plays, wherever)."""

    session: str
    action: Action
    match: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveMatch:
    session: str
    player: str = ""
    match: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndSession:
    """The stream ended (half-close, error or broken connection): its player leaves."""

    session: str


Command = JoinMatch | Act | LeaveMatch | EndSession


@dataclass(frozen=True, slots=True, kw_only=True)
class TickReady:
    """One tick of one match, for every session playing in it. ``restart``: sessions that
    (re)joined since the last tick, whose next state must be full."""

    match: str
    state: TickState
    to: tuple[str, ...]
    restart: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HubStatistics:
    matches: int
    sessions: int
    matches_closed: int
    ticks_run: int
    ticks_skipped: int
    actions_applied: int
    actions_ignored: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchSnapshot:
    """A match between ticks: its loop's state and who plays whom (player, session), enough
    for another hub to go on with it (``MatchHub.attach``)."""

    loop: LoopSnapshot
    seats: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Match:
    loop: GameLoop
    seats: dict[str, str] = field(default_factory=dict)  # player -> session
    fresh: set[str] = field(default_factory=set)  # sessions to restart
    empty_since: float | None = None


@dataclass(frozen=True, slots=True)
class _Seat:
    match: str
    player: str


class MatchHub:
    def __init__(
        self,
        rules: Rules | None = None,
        *,
        settings: GameSettings | None = None,
        limits: GameLimits | None = None,
    ) -> None:
        self.rules: Rules = rules if rules is not None else Arena()
        self.settings = settings or GameSettings()
        self.limits = limits or GameLimits()
        self._matches: dict[str, _Match] = {}
        self._seats: dict[str, _Seat] = {}
        self._closed = 0
        self._closed_totals = (0, 0, 0, 0)  # ticks run, skipped, applied, ignored

    # -- reading -------------------------------------------------------------------------

    @property
    def matches(self) -> Mapping[str, object]:
        """The open matches, by name (values are internal)."""
        return self._matches

    def match_of(self, session: str) -> str | None:
        seat = self._seats.get(session)
        return seat.match if seat else None

    def player_of(self, session: str) -> str | None:
        seat = self._seats.get(session)
        return seat.player if seat else None

    def players(self, match: str) -> list[str]:
        """The players seated in ``match``, sorted (empty for a match that is not open)."""
        found = self._matches.get(match)
        return sorted(found.seats) if found else []

    def seats(self, match: str) -> Mapping[str, str]:
        """Who plays whom in ``match``: player -> session (empty for a match not open)."""
        found = self._matches.get(match)
        return found.seats if found else {}

    def loop(self, match: str) -> GameLoop | None:
        found = self._matches.get(match)
        return found.loop if found else None

    def statistics(self) -> HubStatistics:
        run, skipped, applied, ignored = self._closed_totals
        for match in self._matches.values():
            stats = match.loop.statistics()
            run += stats.ticks_run
            skipped += stats.ticks_skipped
            applied += stats.actions_applied
            ignored += stats.actions_ignored
        return HubStatistics(
            matches=len(self._matches),
            sessions=len(self._seats),
            matches_closed=self._closed,
            ticks_run=run,
            ticks_skipped=skipped,
            actions_applied=applied,
            actions_ignored=ignored,
        )

    def action_delay(self, session: str, now: float) -> float:
        """Seconds until the session's player may act again within its action rate (0: now;
        a session that plays nowhere: 0, its action is refused when handled)."""
        seat = self._seats.get(session)
        match = self._matches.get(seat.match) if seat else None
        return match.loop.action_delay(seat.player, now) if match and seat else 0.0

    def next_deadline(self) -> float | None:
        """When ``advance`` has something to do (a tick or a close); None: nothing until a join."""
        deadlines = []
        for match in self._matches.values():
            if _active(match):
                deadlines.append(match.loop.next_deadline())
            elif match.empty_since is not None:
                deadlines.append(match.empty_since + self.settings.grace)
        return min(deadlines, default=None)

    # -- moving a match between hubs (many nodes: the one that holds its lease ticks it) --

    def snapshot(self, match: str) -> MatchSnapshot:
        """``match`` as it is now (``KeyError`` if it is not open here)."""
        found = self._matches[match]
        return MatchSnapshot(loop=found.loop.snapshot(), seats=tuple(found.seats.items()))

    def detach(self, match: str) -> MatchSnapshot:
        """Stop running ``match`` here (its sessions unseated, nothing counted as closed) and
        return it as it was, for a hub that goes on with it."""
        snapshot = self.snapshot(match)
        for session in self._matches.pop(match).seats.values():
            self._seats.pop(session, None)
        return snapshot

    def attach(self, match: str, snapshot: MatchSnapshot, *, now: float, tick: int = 0) -> None:
        """Go on with ``match`` from ``snapshot``: its schedule restarts at ``now``, its next
        tick is numbered above ``tick`` and the snapshot's, and every seated session gets a
        full state next. ``ValueError`` if the match or one of its sessions is here already."""
        if match in self._matches:
            raise ValueError(f"match {match!r} is open here already")
        taken = [session for _, session in snapshot.seats if session in self._seats]
        if taken:
            raise ValueError(f"sessions {taken!r} already play here")
        loop = self._new_loop(now)
        loop.restore(snapshot.loop, now)
        loop.skip_to(tick, now)
        found = _Match(loop, seats=dict(snapshot.seats))
        found.fresh.update(found.seats.values())
        if not found.seats:
            found.empty_since = now
        self._matches[match] = found
        for player, session in found.seats.items():
            self._seats[session] = _Seat(match, player)

    # -- commands ------------------------------------------------------------------------

    def handle(self, command: Command, *, now: float) -> bool:
        """Apply one command. False: an action ignored as an old or repeated sequence."""
        if isinstance(command, Act):
            return self._act(command)
        if isinstance(command, JoinMatch):
            self._join(command, now)
        elif isinstance(command, LeaveMatch):
            seat = self._seat(command.session, command.player, command.match, "player_id")
            self._leave(command.session, seat, now)
        elif command.session in self._seats:
            self._leave(command.session, self._seats[command.session], now)
        return True

    def _join(self, cmd: JoinMatch, now: float) -> None:
        seat = self._seats.get(cmd.session)
        check_join(cmd, self.limits, None if seat is None else (seat.match, seat.player))
        match = self._matches.get(cmd.match)
        if match is not None and self._expired(match, now):
            self._close(cmd.match)
            match = None
        if match is None:
            if len(self._matches) >= self.limits.max_matches:
                raise LimitExceeded("match_id", f"at most {self.limits.max_matches} matches")
            match = _Match(self._new_loop(now))
        elif cmd.player in match.seats:
            raise AlreadyExists("player_id", f"{cmd.player!r} is already playing this match")
        elif len(match.seats) >= self.limits.max_players:
            raise LimitExceeded(
                "match_id", f"match is full ({self.limits.max_players} players at most)"
            )
        idle = not _active(match)
        match.loop.submit(Action(player=cmd.player, kind=JOIN))
        if idle:
            match.loop.resume(now)
        self._matches.setdefault(cmd.match, match)
        match.seats[cmd.player] = cmd.session
        match.fresh.add(cmd.session)
        match.empty_since = None
        self._seats[cmd.session] = _Seat(cmd.match, cmd.player)

    def _act(self, cmd: Act) -> bool:
        check_kind(cmd.action)
        seat = self._seat(cmd.session, cmd.action.player, cmd.match, "action_type")
        match = self._matches[seat.match]
        return match.loop.submit(replace(cmd.action, player=seat.player))

    def _seat(self, session: str, player: str, match: str, field: str) -> _Seat:
        """The session's seat, checked against what the command claims."""
        seat = self._seats.get(session)
        check_claim(None if seat is None else (seat.match, seat.player), player, match, field)
        assert seat is not None
        return seat

    def _leave(self, session: str, seat: _Seat, now: float) -> None:
        match = self._matches[seat.match]
        match.loop.submit(Action(player=seat.player, kind=LEAVE))
        del match.seats[seat.player]
        del self._seats[session]
        match.fresh.discard(session)
        if not match.seats:
            match.empty_since = now

    # -- time ----------------------------------------------------------------------------

    def advance(self, now: float) -> list[TickReady]:
        """Run every due tick of every match, and close matches empty for longer than grace."""
        ready: list[TickReady] = []
        for name, match in list(self._matches.items()):
            if not _active(match):
                if self._expired(match, now):
                    self._close(name)
                continue
            states = match.loop.advance(now)
            if not states:
                continue
            to = tuple(match.seats.values())
            restart = tuple(session for session in to if session in match.fresh)
            match.fresh.clear()
            for index, state in enumerate(states):
                ready.append(
                    TickReady(match=name, state=state, to=to, restart=restart if not index else ())
                )
            if self._expired(match, now):  # its last leave just applied, long after it left
                self._close(name)
        return ready

    def _expired(self, match: _Match, now: float) -> bool:
        return (
            not _active(match)
            and match.empty_since is not None
            and now - match.empty_since >= self.settings.grace
        )

    def _close(self, name: str) -> None:
        stats = self._matches.pop(name).loop.statistics()
        run, skipped, applied, ignored = self._closed_totals
        self._closed_totals = (
            run + stats.ticks_run,
            skipped + stats.ticks_skipped,
            applied + stats.actions_applied,
            ignored + stats.actions_ignored,
        )
        self._closed += 1

    def _new_loop(self, now: float) -> GameLoop:
        settings = self.settings
        return GameLoop(
            self.rules,
            start=now,
            tick_hz=settings.tick_hz,
            full_every=settings.full_every,
            max_catch_up=settings.max_catch_up,
            actions_per_second=self.limits.actions_per_second,
        )


def check_join(cmd: JoinMatch, limits: GameLimits, seat: tuple[str, str] | None) -> None:
    """A join's ids within ``limits``, from a stream that plays nowhere yet (``seat``: the
    (match, player) it plays). Shared with a node that forwards joins to a match's owner."""
    limit = limits.max_id_length
    if not cmd.player or len(cmd.player) > limit:
        raise InvalidArgument("player_id", f"a player id of 1 to {limit} characters")
    if len(cmd.match) > limit:
        raise InvalidArgument("match_id", f"must be at most {limit} characters")
    if seat is not None:
        raise AlreadyExists(
            "match_id", f"this stream already plays {seat[1]!r} in match {seat[0]!r}; leave first"
        )


def check_claim(seat: tuple[str, str] | None, player: str, match: str, field: str) -> None:
    """What a command claims (``player``, ``match``; empty: whatever) against the stream's
    ``seat`` (match, player)."""
    if seat is None:
        raise NotJoined(field, "join a match first (action_type join)")
    if player and player != seat[1]:
        raise WrongIdentity("player_id", f"this stream plays {seat[1]!r}")
    if match and match != seat[0]:
        raise PermissionDenied("match_id", f"this stream plays in match {seat[0]!r}")


def check_kind(action: Action) -> None:
    """Joins and leaves are commands of their own, never an ``Act``."""
    if action.kind == LEAVE:
        raise InvalidArgument("action_type", "leave is a command of its own (LeaveMatch)")
    if action.kind == JOIN:
        raise InvalidArgument("action_type", "join is a command of its own (JoinMatch)")


def _active(match: _Match) -> bool:
    """A match ticks while it has players, or leaves still to apply."""
    return bool(match.seats) or bool(match.loop.players)
