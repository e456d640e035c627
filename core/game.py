"""An authoritative game tick loop: queued actions in, one state per tick out.

Time is an argument (aioquic's ``handle_timer(now)``/``get_timer()``): ``advance(now)`` runs
every tick that is due, in order, and returns their states; ``next_deadline()`` says when the
adapter should call again. Tick n is due at ``start + n / tick_hz``, computed from n rather than
by adding periods, so the schedule never drifts however late the adapter wakes. A late wake-up
gets the missed ticks, at most ``max_catch_up`` of them; older ones are skipped (counted in
``statistics()``) and the tick numbers jump, so a stalled process catches up instead of
replaying seconds of backlog.

Inputs queue until the next tick and are applied at its start in a fixed order: joins (in
arrival order), then every player's actions in sequence order (players in join order), then
leaves. The state is thus a function of what each tick applied (``TickState.applied``), not of
when within a tick it arrived: replaying that log gives the same states. An action whose
``sequence`` is not above every sequence its player had accepted is a repeat or arrived late
(clients re-send after a reconnect): it is ignored and counted, not an error.

What the game *means* is a ``Rules`` object: it parses parameters (rejecting bad ones before
anything is queued), spawns players and applies actions to a ``World``. ``Arena`` in
``interplay.core.arena`` is the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from .errors import AlreadyExists, InvalidArgument, LimitExceeded, NotJoined

JOIN = "join"
LEAVE = "leave"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerState:
    """One player as every client sees it. ``attributes`` are sorted (key, value) pairs;
    ``last_sequence`` is the highest action sequence of this player applied so far. ``x`` and
    ``y`` travel as 32-bit floats: rules keep them exactly representable (``Arena`` uses whole
    numbers) so that a client's copy equals the server's."""

    player: str
    x: float
    y: float
    health: int
    attributes: tuple[tuple[str, str], ...] = ()
    last_sequence: int = 0

    def attribute(self, key: str, default: str = "") -> str:
        for name, value in self.attributes:
            if name == key:
                return value
        return default

    def with_attributes(self, **changes: str) -> PlayerState:
        merged = dict(self.attributes)
        merged.update(changes)
        return replace(self, attributes=tuple(sorted(merged.items())))


@dataclass(frozen=True, slots=True, kw_only=True)
class GameEvent:
    """Something that happened in a tick. ``join`` and ``leave`` carry the player id in
    ``data``; a client applying a delta removes the players named by ``leave`` events."""

    id: str
    kind: str
    data: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """An input from a player: ``join``, ``leave`` or one of the rules' kinds."""

    player: str
    kind: str
    params: Mapping[str, str] = field(default_factory=dict)
    sequence: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TickState:
    """The match after one tick.

    ``players`` is everyone (join order); ``changed`` only those whose state changed in this
    tick, joiners included; a *delta* is ``changed`` + ``events``. ``periodic_full`` is set
    every ``full_every`` ticks, when every receiver should get the full state. ``applied`` is
    every input the tick applied, in order: the replay log.
    """

    tick: int
    players: tuple[PlayerState, ...]
    changed: tuple[PlayerState, ...]
    events: tuple[GameEvent, ...]
    periodic_full: bool
    applied: tuple[Action, ...]


class World:
    """What rules see and change during one tick: the players, and a way to record events."""

    __slots__ = ("_changed", "_events", "players", "tick")

    def __init__(self, players: dict[str, PlayerState], tick: int) -> None:
        self.players: Mapping[str, PlayerState] = players
        self.tick = tick
        self._changed: dict[str, None] = {}
        self._events: list[GameEvent] = []

    def update(self, state: PlayerState) -> None:
        """Replace a present player's state (it goes out in this tick's delta)."""
        players = self.players
        assert isinstance(players, dict) and state.player in players
        players[state.player] = state
        self._changed[state.player] = None

    def emit(self, kind: str, data: str = "") -> None:
        event_id = f"{self.tick}.{len(self._events) + 1}"
        self._events.append(GameEvent(id=event_id, kind=kind, data=data))


class Rules(Protocol):
    """Pluggable game logic. Must be deterministic (no clock, no unseeded randomness) and keep
    no state of its own: everything lives in the players' states, so one object can serve many
    matches and a replay reproduces every tick."""

    @property
    def kinds(self) -> tuple[str, ...]:
        """Action kinds besides ``join`` and ``leave``."""
        ...

    def parse(self, kind: str, params: Mapping[str, str]) -> object:
        """The action's parameters, checked; ``InvalidArgument("parameters.<name>", ...)``."""
        ...

    def spawn(self, player: str, tick: int) -> PlayerState:
        """A joining player's first state."""
        ...

    def act(self, world: World, player: str, command: object) -> None:
        """Apply one parsed action of a present player."""
        ...

    def step(self, world: World) -> None:
        """End of tick: whatever happens without input (respawns, timers)."""
        ...


def check_action(rules: Rules, action: Action) -> object:
    """A rules' action (not a join or leave) checked on its own, parsed; a ``CoreError``
    names the field. (A node that forwards actions to another checks them first.)"""
    if action.kind not in rules.kinds:
        kinds = ", ".join((JOIN, LEAVE, *rules.kinds))
        raise InvalidArgument("action_type", f"must be one of {kinds}, not {action.kind!r}")
    if action.sequence <= 0:
        raise InvalidArgument("sequence", "must be positive (1, 2, 3, ... per player)")
    return rules.parse(action.kind, action.params)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopStatistics:
    tick: int
    players: int
    ticks_run: int
    ticks_skipped: int
    actions_applied: int
    actions_ignored: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopSnapshot:
    """Everything a loop needs to tick on as it would have (``GameLoop.snapshot``): the last
    tick, the players, each player's highest accepted and applied sequence and action tokens,
    and the inputs queued for the next tick (joins, every player's actions, leaves). Not the
    schedule (a restored loop starts its own where it is restored) nor the counters."""

    tick: int
    players: tuple[PlayerState, ...]
    sequences: tuple[tuple[str, int], ...]
    applied_sequences: tuple[tuple[str, int], ...]
    tokens: tuple[tuple[str, float], ...]
    joins: tuple[Action, ...]
    actions: tuple[Action, ...]
    leaves: tuple[Action, ...]


class GameLoop:
    """One match's simulation. Not thread-safe; one adapter task drives it."""

    def __init__(
        self,
        rules: Rules,
        *,
        start: float,
        tick_hz: float = 30.0,
        full_every: int = 30,
        max_catch_up: int = 10,
        actions_per_second: float = 60.0,
    ) -> None:
        if not (tick_hz > 0 and math.isfinite(tick_hz)):
            raise ValueError("tick_hz must be a positive number")
        if full_every < 1 or max_catch_up < 1 or actions_per_second <= 0:
            raise ValueError("full_every, max_catch_up and actions_per_second must be positive")
        self.rules = rules
        self.tick_hz = tick_hz
        self.full_every = full_every
        self.max_catch_up = max_catch_up
        self.actions_per_second = actions_per_second
        self._start = start
        self._tick = 0
        self._players: dict[str, PlayerState] = {}
        self._sequences: dict[str, int] = {}  # highest accepted, kept after a leave
        self._applied_sequences: dict[str, int] = {}  # highest applied, kept after a leave
        self._tokens: dict[str, float] = {}
        self._joins: dict[str, Action] = {}
        self._leaves: dict[str, Action] = {}
        self._queues: dict[str, list[tuple[Action, object]]] = {}
        self._ticks_run = 0
        self._ticks_skipped = 0
        self._applied = 0
        self._ignored = 0

    # -- reading -------------------------------------------------------------------------

    @property
    def tick(self) -> int:
        """The last tick run (0 before the first)."""
        return self._tick

    @property
    def players(self) -> Mapping[str, PlayerState]:
        return self._players

    def members(self) -> set[str]:
        """Players present once the queued joins and leaves are applied."""
        return (set(self._players) | set(self._joins)) - set(self._leaves)

    def _member(self, player: str) -> bool:
        return (player in self._players or player in self._joins) and player not in self._leaves

    def deadline(self, tick: int) -> float:
        return self._start + tick / self.tick_hz

    def next_deadline(self) -> float:
        """When the next tick is due: call ``advance`` then."""
        return self.deadline(self._tick + 1)

    def statistics(self) -> LoopStatistics:
        return LoopStatistics(
            tick=self._tick,
            players=len(self._players),
            ticks_run=self._ticks_run,
            ticks_skipped=self._ticks_skipped,
            actions_applied=self._applied,
            actions_ignored=self._ignored,
        )

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> LoopSnapshot:
        """The loop's state between ticks (pure: a match moving to another node takes it)."""
        return LoopSnapshot(
            tick=self._tick,
            players=tuple(self._players.values()),
            sequences=tuple(self._sequences.items()),
            applied_sequences=tuple(self._applied_sequences.items()),
            tokens=tuple(self._tokens.items()),
            joins=tuple(self._joins.values()),
            actions=tuple(action for queue in self._queues.values() for action, _ in queue),
            leaves=tuple(self._leaves.values()),
        )

    def restore(self, snapshot: LoopSnapshot, now: float) -> None:
        """Go on from ``snapshot`` exactly as the snapshotted loop would (called on a new
        loop, with the match's settings): its schedule restarts at ``now``, tick numbers
        continue. Queued actions are parsed again (rules are deterministic); a ``CoreError``
        means the snapshot is not the rules'."""
        self._tick = snapshot.tick
        self.resume(now)
        self._players = {state.player: state for state in snapshot.players}
        self._sequences = dict(snapshot.sequences)
        self._applied_sequences = dict(snapshot.applied_sequences)
        self._tokens = dict(snapshot.tokens)
        self._joins = {action.player: action for action in snapshot.joins}
        self._leaves = {action.player: action for action in snapshot.leaves}
        self._queues = {}
        for action in snapshot.actions:
            command = self.rules.parse(action.kind, action.params)
            self._queues.setdefault(action.player, []).append((action, command))

    def skip_to(self, tick: int, now: float) -> None:
        """Number the next tick ``tick + 1`` (counted as skipped), its schedule restarted at
        ``now``: a match that moved on from an older snapshot never repeats a tick number
        its players already saw. A tick at or below the current one changes nothing."""
        if tick > self._tick:
            self._ticks_skipped += tick - self._tick
            self._tick = tick
            self.resume(now)

    # -- input ---------------------------------------------------------------------------

    def submit(self, action: Action) -> bool:
        """Queue an input for the next tick. False: an old or repeated sequence, ignored.
        Raises a ``CoreError`` (nothing queued) for an input that breaks a rule."""
        player = action.player
        if action.kind == JOIN:
            self._join(player, action)
            return True
        if action.kind == LEAVE:
            self._leave(player, action)
            return True
        if not self._member(player):
            raise NotJoined("player_id", f"{player!r} has not joined this match")
        command = check_action(self.rules, action)
        if action.sequence <= self._sequences.get(player, 0):
            self._ignored += 1
            return False
        tokens = self._tokens.get(player, self.actions_per_second)
        if tokens < 1:
            raise LimitExceeded(
                "actions", f"at most {self.actions_per_second:g} actions per second per player"
            )
        self._tokens[player] = tokens - 1
        self._sequences[player] = action.sequence
        self._queues.setdefault(player, []).append((action, command))
        return True

    def _join(self, player: str, action: Action) -> None:
        if player in self._leaves:  # left and came back within one tick: it never left
            del self._leaves[player]
            return
        if player in self._players or player in self._joins:
            raise AlreadyExists("player_id", f"{player!r} is already in this match")
        self._joins[player] = action

    def _leave(self, player: str, action: Action) -> None:
        if player in self._joins:  # joined and left within one tick: it never appeared
            del self._joins[player]
            self._ignored += len(self._queues.pop(player, ()))
            self._sequences[player] = self._applied_sequences.get(player, 0)
            return
        if player not in self._players or player in self._leaves:
            raise NotJoined("player_id", f"{player!r} is not in this match")
        self._leaves[player] = action

    def action_delay(self, player: str, now: float) -> float:
        """Seconds until ``player`` may act again without passing ``actions_per_second`` (its
        tokens refill each tick): the runtime waits that long instead of refusing the action."""
        tokens = self._tokens.get(player, self.actions_per_second)
        if tokens >= 1:
            return 0.0
        ticks = math.ceil((1 - tokens) / (self.actions_per_second / self.tick_hz))
        # At least a moment: a tick that is due but not yet run still has to refill them.
        return max(self.deadline(self._tick + ticks) - now, 0.001)

    # -- time ----------------------------------------------------------------------------

    def resume(self, now: float) -> None:
        """Restart the schedule at ``now`` (tick numbers continue): for a match that was
        idle and not advanced, so its first tick back is not a burst of catch-up."""
        self._start = now - self._tick / self.tick_hz

    def advance(self, now: float) -> list[TickState]:
        """Run every tick due at ``now``, oldest first (at most ``max_catch_up``)."""
        due = self._due(now)
        if due <= self._tick:
            return []
        first = self._tick + 1
        if due - self._tick > self.max_catch_up:
            first = due - self.max_catch_up + 1
            self._ticks_skipped += first - self._tick - 1
        refill = self.actions_per_second / self.tick_hz
        elapsed = first - self._tick  # skipped ticks refill the buckets too
        states = []
        for tick in range(first, due + 1):
            self._refill(refill * elapsed)
            elapsed = 1
            states.append(self._run(tick))
        return states

    def _due(self, now: float) -> int:
        """The newest tick whose deadline is not after ``now``."""
        tick = max(0, math.floor((now - self._start) * self.tick_hz))
        while self.deadline(tick + 1) <= now:
            tick += 1
        while tick > 0 and self.deadline(tick) > now:
            tick -= 1
        return tick

    def _refill(self, amount: float) -> None:
        cap = self.actions_per_second
        tokens = self._tokens
        for player, value in tokens.items():
            tokens[player] = min(cap, value + amount)

    def _run(self, tick: int) -> TickState:
        self._tick = tick
        self._ticks_run += 1
        players = self._players
        world = World(players, tick)
        applied: list[Action] = []
        rules = self.rules
        for player, action in self._joins.items():
            state = rules.spawn(player, tick)
            players[player] = replace(state, last_sequence=self._applied_sequences.get(player, 0))
            world._changed[player] = None
            world.emit(JOIN, player)
            applied.append(action)
        self._joins = {}
        if self._queues:
            queues = self._queues
            self._queues = {}
            for player in list(players):
                queue = queues.get(player)
                if not queue:
                    continue
                for action, command in queue:
                    rules.act(world, player, command)
                    applied.append(action)
                last = queue[-1][0].sequence
                world.update(replace(players[player], last_sequence=last))
                self._applied_sequences[player] = last
                self._applied += len(queue)
        for player, action in self._leaves.items():
            del players[player]
            self._tokens.pop(player, None)
            world._changed.pop(player, None)
            world.emit(LEAVE, player)
            applied.append(action)
        self._leaves = {}
        rules.step(world)
        return TickState(
            tick=tick,
            players=tuple(players.values()),
            changed=tuple(players[name] for name in world._changed),
            events=tuple(world._events),
            periodic_full=tick % self.full_every == 0,
            applied=tuple(applied),
        )


class GameMirror:
    """A client's copy of a match, built from the states it receives: a full state replaces
    everything; a delta removes the players its ``leave`` events name, then updates the players
    it carries. Receiving every delta since the last full state (or a full state after a gap)
    keeps the copy equal to the server's."""

    def __init__(self) -> None:
        self.tick: int | None = None
        self.players: dict[str, PlayerState] = {}

    def apply(
        self,
        *,
        tick: int,
        full: bool,
        players: tuple[PlayerState, ...] | list[PlayerState],
        events: tuple[GameEvent, ...] | list[GameEvent] = (),
    ) -> None:
        if full:
            self.players = {state.player: state for state in players}
        else:
            if self.tick is None:
                raise ValueError("a delta state before any full state")
            for event in events:
                if event.kind == LEAVE:
                    self.players.pop(event.data, None)
            for state in players:
                self.players[state.player] = state
        self.tick = tick
