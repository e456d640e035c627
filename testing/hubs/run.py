"""Running a hub machine with a user's factory, and what a failure says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test


class HubBroken(AssertionError):
    """A hub broke a promise its machine checks; the message says which, and the steps."""


def run_hub_machine(
    machine: type[RuleBasedStateMachine], make_hub: Callable[..., Any], suite: str
) -> None:
    """Run ``machine`` (under the current Hypothesis profile, with no deadline: a step's time
    is no promise) with hubs built by ``make_hub``; raise ``HubBroken`` naming ``suite``."""

    class Checked(machine):  # type: ignore[valid-type,misc]
        def make_hub(self, **options: Any) -> Any:
            return make_hub(**options)

    Checked.__name__ = Checked.__qualname__ = machine.__name__
    try:
        run_state_machine_as_test(Checked, settings=settings(deadline=None))
    except AssertionError as broken:
        steps = "\n".join(getattr(broken, "__notes__", ()))
        raise HubBroken(f"{suite}: {broken}\n{steps}") from broken
