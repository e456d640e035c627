"""The readers of a runtime state machine (``tests/runtime/test_lagging*_machine.py``): each
pauses (its peer stops reading), resumes, stops for good, or changes speed."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule
from memory_transport import SlowCall


class ReaderRules(RuleBasedStateMachine):
    """A subclass names its ``readers`` and fills ``calls`` (user -> ``SlowCall``), ``paused``
    and ``stopped`` in its ``initialize``; its portal runs each step."""

    readers: tuple[str, ...] = ()
    calls: dict[str, SlowCall]
    paused: set[str]
    stopped: set[str]
    portal: Any

    def _reading(self) -> list[str]:
        return sorted(set(self.readers) - self.paused - self.stopped)

    @precondition(lambda self: self._reading())
    @rule(data=st.data())
    def pause(self, data: st.DataObject) -> None:
        user = data.draw(st.sampled_from(self._reading()))
        self.portal.call(self.calls[user].block)
        self.paused.add(user)

    @precondition(lambda self: self.paused)
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        user = data.draw(st.sampled_from(sorted(self.paused)))
        self.portal.call(self.calls[user].unblock)
        self.paused.discard(user)

    @precondition(lambda self: set(self.readers) - self.stopped)
    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        """It never reads again."""
        user = data.draw(st.sampled_from(sorted(set(self.readers) - self.stopped)))
        self.portal.call(self.calls[user].block)
        self.paused.discard(user)
        self.stopped.add(user)

    @rule(data=st.data(), delay=st.sampled_from([0.0, 0.001, 0.004]))
    def speed(self, data: st.DataObject, delay: float) -> None:
        self.calls[data.draw(st.sampled_from(self.readers))].delay = delay
