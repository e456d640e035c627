"""ClientPlayer: what a reconnecting player remembers. Unit tests, then a state machine that runs
players against the core's ``GameLoop`` (a full state first on every connection, deltas after)
over FIFO links that a disconnect cuts, losing whatever was in flight both ways; actions made
while disconnected are not sent (the next ``connected()`` must carry them). Throughout, the
loop applies each player's actions in sequence order, never one twice; after everything
settles, every action was applied exactly once, each client's mirror equals the match and
nothing is unconfirmed."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from interplay.core import Action, Arena, GameLoop, PlayerState
from interplay.core.game import JOIN, LEAVE, TickState
from interplay.core.game_client import (
    ActionRequest,
    ClientPlayer,
    GameRequest,
    JoinGame,
    StateUpdate,
)


def me(sequence: int, tick: int = 1) -> StateUpdate:
    state = PlayerState(player="ann", x=0, y=0, health=100, last_sequence=sequence)
    return StateUpdate(tick=tick, full=True, players=(state,))


def test_actions_are_numbered_and_resent_after_the_join_until_confirmed() -> None:
    player = ClientPlayer("ann", "m")
    assert player.connected() == [JoinGame(player="ann", match="m")]
    requests = [player.act("move", {"dx": str(n)}) for n in range(3)]
    assert [r.sequence for [r] in requests if isinstance(r, ActionRequest)] == [1, 2, 3]
    shown, replies = player.receive(me(2))
    assert shown == [player.mirror] and replies == []
    assert player.mirror.players["ann"].last_sequence == 2
    assert player.connected() == [
        JoinGame(player="ann", match="m"),
        ActionRequest(player="ann", match="m", kind="move", params={"dx": "2"}, sequence=3),
    ]
    stats = player.statistics()
    assert (stats.sent, stats.confirmed, stats.unconfirmed) == (3, 2, 1)


def test_a_state_without_the_player_or_behind_confirms_nothing() -> None:
    player = ClientPlayer("ann")
    player.act("move", {})
    player.receive(StateUpdate(tick=1, full=True))
    assert [a.sequence for a in player.unconfirmed()] == [1]
    player.receive(me(1, tick=2))
    player.receive(me(0, tick=3))  # a server that restarted empty: what we had stays confirmed
    assert player.unconfirmed() == [] and player.confirmed == 1


# -- the state machine ----------------------------------------------------------------------

PLAYERS = ["ann", "bob"]


@dataclass
class Link:
    session: str
    up: deque[GameRequest] = field(default_factory=deque)
    down: deque[StateUpdate] = field(default_factory=deque)
    full_sent: bool = False  # the first state on a connection is full


class ReconnectingPlayers(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = GameLoop(Arena(), start=0.0, tick_hz=10, actions_per_second=1e9)
        self.now = 0.0
        self.players = {name: ClientPlayer(name) for name in PLAYERS}
        self.links: dict[str, Link | None] = dict.fromkeys(PLAYERS)
        self.connections = dict.fromkeys(PLAYERS, 0)
        self.applied: dict[str, list[int]] = {name: [] for name in PLAYERS}
        self.joined: dict[str, str] = {}  # player -> session whose join the loop has
        for name in PLAYERS:
            self._connect(name)

    def _connect(self, name: str) -> None:
        self.connections[name] += 1
        link = self.links[name] = Link(f"{name}-{self.connections[name]}")
        link.up.extend(self.players[name].connected())

    @rule(name=st.sampled_from(PLAYERS), dx=st.integers(-2, 2))
    def act(self, name: str, dx: int) -> None:
        requests = self.players[name].act("move", {"dx": str(dx)})
        link = self.links[name]
        if link is not None:  # made while disconnected: the next connected() carries it
            link.up.extend(requests)

    @rule(name=st.sampled_from(PLAYERS))
    def to_server(self, name: str) -> None:
        link = self.links[name]
        if link is None or not link.up:
            return
        request = link.up.popleft()
        if isinstance(request, JoinGame):
            self.loop.submit(Action(player=name, kind=JOIN))  # (cancels a leave this tick)
            self.joined[name] = link.session
        elif self.joined.get(name) == link.session:
            self.loop.submit(
                Action(
                    player=name,
                    kind=request.kind,
                    params=request.params,
                    sequence=request.sequence,
                )
            )

    @rule(name=st.sampled_from(PLAYERS))
    def to_client(self, name: str) -> None:
        link = self.links[name]
        if link is not None and link.down:
            shown, replies = self.players[name].receive(link.down.popleft())
            assert shown == [self.players[name].mirror] and replies == []

    @rule()
    def tick(self) -> None:
        self.now += 0.1
        for state in self.loop.advance(self.now + 1e-9):
            self._broadcast(state)

    @rule(name=st.sampled_from(PLAYERS))
    def disconnect(self, name: str) -> None:
        """The connection breaks: what was in flight both ways is lost; the server takes the
        player out of the match (a reconnect within the tick keeps it in)."""
        link = self.links[name]
        if link is None:
            return
        self.links[name] = None
        if self.joined.get(name) == link.session:
            del self.joined[name]
            if name in self.loop.members():
                self.loop.submit(Action(player=name, kind=LEAVE))

    @rule(name=st.sampled_from(PLAYERS))
    def reconnect(self, name: str) -> None:
        if self.links[name] is None:
            self._connect(name)

    def _broadcast(self, state: TickState) -> None:
        for action in state.applied:
            if action.kind not in (JOIN, LEAVE):
                self.applied[action.player].append(action.sequence)
        present = {p.player for p in state.players}
        for name, session in self.joined.items():
            link = self.links[name]
            if link is None or link.session != session or name not in present:
                continue
            if link.full_sent:
                update = StateUpdate(
                    tick=state.tick, full=False, players=state.changed, events=state.events
                )
            else:
                update = StateUpdate(tick=state.tick, full=True, players=state.players)
                link.full_sent = True
            link.down.append(update)

    @invariant()
    def each_players_actions_apply_in_order_and_once(self) -> None:
        for sequences in self.applied.values():
            assert sequences == sorted(set(sequences))

    @invariant()
    def confirmed_means_applied(self) -> None:
        for name, player in self.players.items():
            assert player.confirmed <= (self.applied[name] or [0])[-1]

    def teardown(self) -> None:
        for name in PLAYERS:
            if self.links[name] is None:
                self._connect(name)
        for _ in range(3):  # a round trip confirms; one more tick brings the last state
            links = [(name, link) for name, link in self.links.items() if link is not None]
            for name, link in links:
                while link.up:
                    self.to_server(name)
            self.tick()
            for name, link in links:
                while link.down:
                    self.to_client(name)
        for name, player in self.players.items():
            assert self.applied[name] == list(range(1, player.sequence + 1)), name
            assert player.unconfirmed() == [], name
            assert player.mirror.players == dict(self.loop.players), name


ReconnectingPlayers.TestCase.settings = settings(stateful_step_count=60)
TestReconnectingPlayers = ReconnectingPlayers.TestCase
