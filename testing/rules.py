"""A state machine for any game ``Rules``: the tick loop's promises, and yours.

    from interplay.testing import check_rules
    check_rules(
        MyRules(),
        params={"move": st.fixed_dictionaries({"dx": st.sampled_from(["-1", "0", "1"])})},
        invariants=[lambda state: all(0 <= p.health <= 100 for p in state.players)],
    )

Hypothesis drives a ``GameLoop`` running your rules with joins, leaves and actions (some of them
wrong: unknown kinds, repeated sequences, actions before a join) and clock steps, and checks
after every step what the loop promises every client:

- a refused input changes nothing (no member, no queued action);
- ticks strictly increase;
- two receivers that each follow the states at their own pace (full states, deltas, newest-only
  slots, as the server's outboxes do) hold exactly the server's players;
- each of ``invariants`` holds for every ``TickState`` (its ``players``, ``events``, ``tick``);
- replaying the log of what each tick applied into a fresh loop gives the same states: your
  rules must be deterministic and keep no state of their own (``interplay.core.game.Rules``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from interplay.core.errors import CoreError
from interplay.core.game import JOIN, LEAVE, Action, GameLoop, GameMirror, Rules, TickState
from interplay.core.latest import LatestState

from .ot_laws import _settings

Invariant = Callable[[TickState], object]


class RulesBroken(AssertionError):
    """The rules (or the loop with them) broke a promise; the message says which."""


def rules_machine(
    rules: Rules,
    *,
    params: Mapping[str, st.SearchStrategy[Mapping[str, str]]],
    invariants: Iterable[Invariant] = (),
    players: Sequence[str] = ("ann", "bob", "cy"),
    tick_hz: float = 30.0,
    full_every: int = 5,
) -> type[RuleBasedStateMachine]:
    """The machine class for ``rules`` (``params``: each action kind -> a strategy of its
    parameters). Run it with ``check_rules``, or as a test: ``TestMine = machine.TestCase``."""
    checks = tuple(invariants)
    missing = set(rules.kinds) - set(params)
    if missing:
        raise ValueError(f"params: give a strategy for every kind of the rules: {sorted(missing)}")
    actions = st.one_of(
        st.builds(Action, player=st.sampled_from(players), kind=st.sampled_from([JOIN, LEAVE])),
        *(
            st.builds(
                Action,
                player=st.sampled_from(players),
                kind=st.just(kind),
                params=strategy,
                sequence=st.integers(-1, 40),
            )
            for kind, strategy in params.items()
        ),
        st.builds(Action, player=st.sampled_from(players), kind=st.just("no-such-kind")),
    )
    step = (max(1, 10 // full_every)) / tick_hz

    class RulesMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = GameLoop(
                rules, start=0.0, tick_hz=tick_hz, full_every=full_every, actions_per_second=1e6
            )
            self.now = 0.0
            self.states: list[TickState] = []
            self.slots: list[LatestState[TickState]] = [LatestState(), LatestState()]
            self.mirrors = [GameMirror(), GameMirror()]

        @rule(action=actions)
        def submit(self, action: Action) -> None:
            loop = self.loop
            before = (loop.members(), loop.statistics())
            try:
                loop.submit(action)
            except CoreError:
                if (loop.members(), loop.statistics()) != before:
                    raise RulesBroken(f"refusing {action} changed the match") from None

        @rule(dt=st.floats(0, step), takes=st.tuples(st.booleans(), st.booleans()))
        def advance(self, dt: float, takes: tuple[bool, bool]) -> None:
            self.now += dt
            for state in self.loop.advance(self.now):
                if self.states and state.tick <= self.states[-1].tick:
                    raise RulesBroken(f"tick {state.tick} after tick {self.states[-1].tick}")
                self.states.append(state)
                for check in checks:
                    if not check(state):
                        raise RulesBroken(
                            f"an invariant ({_name(check)}) is false at tick {state.tick}: "
                            f"players {list(state.players)}"
                        )
                for slot, mirror, take in zip(self.slots, self.mirrors, takes, strict=True):
                    slot.offer(state)
                    if take:
                        taken, full = slot.take()
                        full = full or taken.periodic_full
                        mirror.apply(
                            tick=taken.tick,
                            full=full,
                            players=taken.players if full else taken.changed,
                            events=taken.events,
                        )
                        server = {p.player: p for p in taken.players}
                        if mirror.players != server:
                            raise RulesBroken(
                                f"at tick {taken.tick} a client following "
                                f"{'a full state' if full else 'deltas'} holds {mirror.players}, "
                                f"the server {server}: a player changed without being in the "
                                "tick's delta (change players only through World.update)"
                            )

        @invariant()
        def ticks_only_move_forward(self) -> None:
            if self.states and self.loop.tick != self.states[-1].tick:
                raise RulesBroken("the loop's tick is not the last state's")

        def teardown(self) -> None:
            replay = GameLoop(
                rules, start=0.0, tick_hz=tick_hz, full_every=full_every, actions_per_second=1e6
            )
            for state in self.states:
                for action in state.applied:
                    replay.submit(action)
                again = replay.advance(replay.deadline(state.tick))[-1:]
                if not again or _fingerprint(again[0]) != _fingerprint(state):
                    raise RulesBroken(
                        f"replaying what tick {state.tick} applied gave another state: "
                        f"{again[0].players if again else None} instead of {state.players}. "
                        "Rules must be deterministic (no clock, no unseeded randomness, no "
                        "iteration over unordered sets) and keep no state of their own."
                    )

    RulesMachine.__name__ = f"{type(rules).__name__}Machine"
    return RulesMachine


def check_rules(
    rules: Rules,
    *,
    params: Mapping[str, st.SearchStrategy[Mapping[str, str]]],
    invariants: Iterable[Invariant] = (),
    max_examples: int | None = None,
    stateful_step_count: int | None = None,
    shrink: bool = True,
    **options: Any,
) -> None:
    """Run ``rules_machine`` (under the current Hypothesis profile unless told otherwise);
    raise ``RulesBroken`` with the smallest failing run (the first found, ``shrink=False``)."""
    machine = rules_machine(rules, params=params, invariants=invariants, **options)
    chosen = _settings(
        max_examples=max_examples, stateful_step_count=stateful_step_count, shrink=shrink
    )
    try:
        run_state_machine_as_test(machine, settings=chosen)
    except RulesBroken as broken:
        notes = "\n".join(getattr(broken, "__notes__", ()))
        raise RulesBroken(f"{type(rules).__name__}: {broken}\n{notes}") from None


def _fingerprint(state: TickState) -> tuple[object, ...]:
    return (state.tick, state.players, state.changed, state.events, state.periodic_full)


def _name(check: Callable[..., object]) -> str:
    return getattr(check, "__qualname__", repr(check))
