"""The kit on our own code, and on deliberately broken code: each broken thing fails it with a
message that says what broke (mutation checks)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import strategies as st

from interplay.core.arena import Arena
from interplay.core.game import PlayerState, World
from interplay.core.ot import TextOp
from interplay.testing import OTLawBroken, RulesBroken, check_ot_laws, check_rules

ARENA = Arena(width=40, height=30, speed=10, attack_range=25, damage=40, respawn_ticks=3)
PLAYERS = ("ann", "bob", "cy")
# A mutation must be found, whatever the profile: up to this many runs (stopping at the first
# failure, unshrunk: the test checks the message, not the smallest example).
HUNT = {"max_examples": 2000, "shrink": False}
ARENA_PARAMS = {
    "move": st.fixed_dictionaries(
        {"dx": st.integers(-11, 11).map(str), "dy": st.integers(-11, 11).map(str)}
    ),
    "attack": st.fixed_dictionaries({"target": st.sampled_from([*PLAYERS, "ghost"])}),
}


def in_bounds(state: object) -> bool:
    return all(
        0 <= p.health <= ARENA.max_health and 0 <= p.x <= ARENA.width and 0 <= p.y <= ARENA.height
        for p in state.players  # type: ignore[attr-defined]
    )


def test_our_text_operations_keep_every_law() -> None:
    check_ot_laws(TextOp)


def test_our_arena_keeps_every_promise() -> None:
    check_rules(ARENA, params=ARENA_PARAMS, invariants=[in_bounds])


class RightBiasedOp(TextOp):
    """Transforms with the arguments swapped: converges, but b's insert goes left of a's."""

    @staticmethod
    def transform(a: TextOp, b: TextOp) -> tuple[TextOp, TextOp]:
        b2, a2 = TextOp.transform(b, a)
        return a2, b2


def test_a_wrong_tie_break_fails_the_ot_laws() -> None:
    with pytest.raises(OTLawBroken, match="RightBiasedOp breaks the insert tie-break") as broken:
        check_ot_laws(RightBiasedOp, max_examples=200, shrink=False)  # any two inserts break it
    assert "goes left" in str(broken.value)


class DiceArena(Arena):
    """Spawns players where the dice say: not a function of the applied log."""

    def spawn(self, player: str, tick: int) -> PlayerState:
        state = super().spawn(player, tick)
        return replace(state, x=float(random.randrange(self.width)))


def test_non_deterministic_rules_fail_the_replay() -> None:
    with pytest.raises(RulesBroken, match="must be deterministic"):
        check_rules(DiceArena(width=40, height=30), params=ARENA_PARAMS, **HUNT)


class SneakyArena(Arena):
    """Heals everyone at the end of each tick without telling the delta."""

    def step(self, world: World) -> None:
        super().step(world)
        players = world.players
        assert isinstance(players, dict)
        for name, state in players.items():
            players[name] = replace(state, health=min(self.max_health, state.health + 1))


def test_rules_that_change_players_behind_the_delta_fail_the_mirrors() -> None:
    with pytest.raises(RulesBroken, match="changed without being in the tick's delta"):
        check_rules(SneakyArena(width=40, height=30, damage=40), params=ARENA_PARAMS, **HUNT)


def test_an_invariant_the_rules_break_is_named() -> None:
    def nobody_is_hurt(state: object) -> bool:
        return all(p.health == ARENA.max_health for p in state.players)  # type: ignore[attr-defined]

    with pytest.raises(RulesBroken, match="nobody_is_hurt"):
        check_rules(ARENA, params=ARENA_PARAMS, invariants=[nobody_is_hurt], **HUNT)


def test_every_kind_needs_a_parameter_strategy() -> None:
    params: Mapping[str, st.SearchStrategy[Mapping[str, str]]] = {"move": ARENA_PARAMS["move"]}
    with pytest.raises(ValueError, match="attack"):
        check_rules(ARENA, params=params)


@pytest.mark.slow
def test_the_custom_rules_example_project_passes_its_own_tests() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "custom_rules"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=example,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed" in run.stdout
