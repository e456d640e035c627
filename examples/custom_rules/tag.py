"""A tiny game with its own rules: tag. Whoever is "it" tags a player next to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from interplay.core.errors import InvalidArgument
from interplay.core.game import PlayerState, World

SIZE = 10


@dataclass(frozen=True)
class Tag:
    """``step`` (``dir``: n, s, e or w) and ``tag`` (``target``: a player one square away)."""

    @property
    def kinds(self) -> tuple[str, ...]:
        return ("step", "tag")

    def parse(self, kind: str, params: Mapping[str, str]) -> object:
        if kind == "step":
            if params.get("dir") not in ("n", "s", "e", "w"):
                raise InvalidArgument("parameters.dir", "must be n, s, e or w")
            return params["dir"]
        return params.get("target", "")

    def spawn(self, player: str, tick: int) -> PlayerState:
        start = sum(map(ord, player)) % SIZE  # a function of the id: a replay agrees
        it = "yes" if tick == 1 else "no"
        return PlayerState(player=player, x=start, y=start, health=1, attributes=(("it", it),))

    def act(self, world: World, player: str, command: object) -> None:
        me = world.players[player]
        if command in ("n", "s", "e", "w"):
            dx, dy = {"n": (0, -1), "s": (0, 1), "e": (1, 0), "w": (-1, 0)}[command]
            x, y = min(SIZE, max(0, me.x + dx)), min(SIZE, max(0, me.y + dy))
            world.update(replace(me, x=x, y=y))
            return
        target = world.players.get(str(command))
        if (
            target
            and me.attribute("it") == "yes"
            and abs(me.x - target.x) + abs(me.y - target.y) <= 1
        ):
            world.update(me.with_attributes(it="no"))
            world.update(target.with_attributes(it="yes"))
            world.emit("tagged", target.player)

    def step(self, world: World) -> None:
        pass
