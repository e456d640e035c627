"""The client side of GameSync: what a reconnecting player must remember so each of its actions
is applied once, in order, across connections.

``ClientPlayer`` is driven like ``ClientRooms``, with no I/O: ``act`` numbers an action (1, 2,
3, ...) and returns the request to put on the wire; after every (re)connect, ``connected()``
returns what re-establishes the session (a join, then every action not yet confirmed, in
order, under its sequence); each state from the server goes through ``receive``, which keeps
the ``GameMirror`` and confirms every action up to the player's ``last_sequence`` (the highest
sequence the server applied). The server ignores an action whose sequence it has passed, so
the re-send is idempotent. An action the server refuses (``ActionRejected``) is dropped from
the re-sends and kept in ``refused``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidArgument, Rejection
from .game import GameEvent, GameMirror, PlayerState

# -- requests: what the client puts on the wire -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinGame:
    player: str
    match: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRequest:
    player: str
    match: str
    kind: str
    params: Mapping[str, str] = field(default_factory=dict)
    sequence: int


GameRequest = JoinGame | ActionRequest

# -- what the server sends ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StateUpdate:
    """A received state: ``full``, or a delta (the players that changed, the tick's events)."""

    tick: int
    full: bool
    players: tuple[PlayerState, ...] = ()
    events: tuple[GameEvent, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRejected:
    """The server refused our action ``sequence`` (or our join, sequence 0): never re-sent."""

    sequence: int
    rejection: Rejection


GameReply = StateUpdate | ActionRejected


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerStatistics:
    sent: int  # the last sequence numbered
    confirmed: int  # the highest sequence the server said it applied
    unconfirmed: int


class ClientPlayer:
    """One player in one match, across connections."""

    def __init__(self, player: str, match: str = "") -> None:
        if not player:
            raise InvalidArgument("player", "must not be empty")
        self.player, self.match = player, match
        self.mirror = GameMirror()
        self.sequence = 0  # the last one numbered
        self.confirmed = 0
        self._unconfirmed: dict[int, ActionRequest] = {}  # sequence -> action, in order
        self.refused: list[tuple[int, Rejection]] = []  # (sequence, why): never re-sent

    # -- the application's calls ----------------------------------------------------------

    def act(self, kind: str, params: Mapping[str, str] | None = None) -> list[GameRequest]:
        """Number an action for the next tick; it is re-sent until confirmed."""
        self.sequence += 1
        request = ActionRequest(
            player=self.player,
            match=self.match,
            kind=kind,
            params=dict(params or {}),
            sequence=self.sequence,
        )
        self._unconfirmed[self.sequence] = request
        return [request]

    # -- the connection's -----------------------------------------------------------------

    def connected(self) -> list[GameRequest]:
        """What a new connection must send first: a join, then every unconfirmed action."""
        return [JoinGame(player=self.player, match=self.match), *self._unconfirmed.values()]

    def receive(self, state: GameReply) -> tuple[list[GameMirror], list[GameRequest]]:
        """Apply ``state`` to the mirror (which the application sees) and confirm what it
        says was applied; a refused action is dropped (and kept in ``refused``)."""
        if isinstance(state, ActionRejected):
            self._unconfirmed.pop(state.sequence, None)
            self.refused.append((state.sequence, state.rejection))
            return [], []
        self.mirror.apply(
            tick=state.tick, full=state.full, players=state.players, events=state.events
        )
        me = self.mirror.players.get(self.player)
        if me is not None and me.last_sequence > self.confirmed:
            self.confirmed = me.last_sequence
            for sequence in [s for s in self._unconfirmed if s <= me.last_sequence]:
                del self._unconfirmed[sequence]
        return [self.mirror], []

    def unconfirmed(self) -> list[ActionRequest]:
        return list(self._unconfirmed.values())

    def statistics(self) -> PlayerStatistics:
        return PlayerStatistics(
            sent=self.sequence, confirmed=self.confirmed, unconfirmed=len(self._unconfirmed)
        )
