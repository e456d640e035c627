"""The default game: players move on a bounded grid, attack within range, die and respawn.

Positions are whole numbers (kept as floats) so they travel exactly as the wire's 32-bit
floats. A player's spawn point is derived from its id (CRC-32, not ``hash()``, which changes
between processes), so a replay spawns everyone where they were. All state lives in the
players' states (health, and ``attributes``: ``status``, ``kills``, ``deaths``, ``respawn_at``),
never in the rules object, so one ``Arena`` serves every match.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .errors import InvalidArgument
from .game import PlayerState, World

ALIVE = "alive"
DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Move:
    dx: int
    dy: int


@dataclass(frozen=True, slots=True)
class Attack:
    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Arena:
    """``move`` (``dx``, ``dy``: integers within ``speed``) and ``attack`` (``target``: a
    player id; hits when the target is alive and within ``attack_range``)."""

    width: int = 1000
    height: int = 1000
    speed: int = 10
    max_health: int = 100
    attack_range: int = 100
    damage: int = 10
    respawn_ticks: int = 90
    max_id_length: int = 255

    def __post_init__(self) -> None:
        if not (0 < self.width < 2**24 and 0 < self.height < 2**24):
            raise ValueError("width and height must be in (0, 2**24): exact as 32-bit floats")
        if min(self.speed, self.max_health, self.damage, self.respawn_ticks) < 1:
            raise ValueError("speed, max_health, damage and respawn_ticks must be positive")

    @property
    def kinds(self) -> tuple[str, ...]:
        return ("move", "attack")

    def parse(self, kind: str, params: Mapping[str, str]) -> Move | Attack:
        if kind == "move":
            _only(params, kind, ("dx", "dy"))
            return Move(self._step(params, "dx"), self._step(params, "dy"))
        _only(params, kind, ("target",))
        target = params.get("target", "")
        if not target or len(target) > self.max_id_length:
            raise InvalidArgument(
                "parameters.target", f"a player id of 1 to {self.max_id_length} characters"
            )
        return Attack(target)

    def _step(self, params: Mapping[str, str], name: str) -> int:
        raw = params.get(name, "0")
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or abs(value) > self.speed or len(raw) > 12:
            raise InvalidArgument(
                f"parameters.{name}", f"an integer in [-{self.speed}, {self.speed}], not {raw!r}"
            )
        return value

    def spawn(self, player: str, tick: int) -> PlayerState:
        return PlayerState(
            player=player,
            x=float(zlib.crc32(player.encode()) % (self.width + 1)),
            y=float(zlib.crc32(player.encode()[::-1]) % (self.height + 1)),
            health=self.max_health,
            attributes=(("deaths", "0"), ("kills", "0"), ("status", ALIVE)),
        )

    def act(self, world: World, player: str, command: object) -> None:
        state = world.players[player]
        if state.health <= 0:
            return  # the dead neither move nor attack
        if isinstance(command, Move):
            x = min(max(state.x + command.dx, 0.0), float(self.width))
            y = min(max(state.y + command.dy, 0.0), float(self.height))
            if (x, y) != (state.x, state.y):
                world.update(replace(state, x=x, y=y))
            return
        assert isinstance(command, Attack)
        target = world.players.get(command.target)
        if (
            target is None
            or target.player == player
            or target.health <= 0
            or (target.x - state.x) ** 2 + (target.y - state.y) ** 2 > self.attack_range**2
        ):
            world.emit("miss", f"{player}>{command.target}")
            return
        health = max(0, target.health - self.damage)
        world.emit("hit", f"{player}>{target.player}:{self.damage}")
        if health:
            world.update(replace(target, health=health))
            return
        world.update(
            replace(target, health=0).with_attributes(
                status=DEAD,
                deaths=str(int(target.attribute("deaths", "0")) + 1),
                respawn_at=str(world.tick + self.respawn_ticks),
            )
        )
        world.update(state.with_attributes(kills=str(int(state.attribute("kills", "0")) + 1)))
        world.emit("death", f"{target.player}<{player}")

    def step(self, world: World) -> None:
        for state in list(world.players.values()):
            if state.health > 0 or int(state.attribute("respawn_at", "0")) > world.tick:
                continue
            fresh = self.spawn(state.player, world.tick)
            world.update(
                replace(
                    fresh,
                    last_sequence=state.last_sequence,
                    attributes=tuple(
                        (key, value) for key, value in state.attributes if key != "respawn_at"
                    ),
                ).with_attributes(status=ALIVE)
            )
            world.emit("respawn", state.player)


def _only(params: Mapping[str, str], kind: str, allowed: tuple[str, ...]) -> None:
    for name in params:
        if name not in allowed:
            raise InvalidArgument(
                f"parameters.{name}", f"not a parameter of {kind} ({', '.join(allowed)})"
            )
