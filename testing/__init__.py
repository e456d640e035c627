"""interplay's property-based test kit, for your own rules, operation types, backends and apps.

    pip install 'interplay[testing]'

- ``strategies``: text operations and position-based edits over astral-heavy text, chat
  scripts (joins, posts, retries, disconnects), action logs for any game ``Rules``.
- ``traces``: the real editing histories shipped with the kit, as data and as a strategy.
- ``ot_laws.check_ot_laws(OpType)``: the laws a text operation type must keep (apply, TP1,
  compose, invert, the insert tie-break), checked by Hypothesis, for any type with
  ``interplay.core.ot.TextOp``'s interface.
- ``rules.check_rules(rules, invariants=...)``: a state machine driving a ``GameLoop`` with your
  ``Rules``, checking the loop's promises (ticks increase, a replay of the applied log gives the
  same states, full + delta mirrors equal the server) and your invariants.
- ``backend.BackendConformance``: every check a backend must pass, as a test class to
  subclass with a factory for yours.
- ``transport.TransportConformance``: every RPC behaviour, end to end, over your transport
  (subclass it with your transport's ``listen``; ``transport.calls`` is the neutral client).
- ``hubs.RoomHubConformance`` (``DocumentHubConformance``, ``MatchHubConformance``): the hub
  state machines against plain models, on the hubs your ``make_hub`` builds.

Each check fails with a message that says which promise broke and how to read the example
Hypothesis found. The kit is what interplay's own test suite runs on its own code.
"""

import pytest

from .ot_laws import OTLawBroken, check_ot_laws
from .rules import RulesBroken, check_rules, rules_machine

# The suites' modules are not test modules: without this, pytest would not rewrite their
# asserts, and a failing check would say only "AssertionError" instead of what it compared.
# (Before any of them is imported: importing one imports this package first.)
pytest.register_assert_rewrite(
    "interplay.testing.backend", "interplay.testing.hubs", "interplay.testing.transport"
)

__all__ = ["OTLawBroken", "RulesBroken", "check_ot_laws", "check_rules", "rules_machine"]
