"""BackpressureBuffer against a deque model: PAUSE iff it crossed high and has not yet fallen
to low; each edge reported exactly once."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interplay.core import BackpressureBuffer, Signal


class BufferMachine(RuleBasedStateMachine):
    @initialize(low=st.integers(0, 6), gap=st.integers(0, 6))
    def create(self, low: int, gap: int) -> None:
        self.buffer: BackpressureBuffer[int] = BackpressureBuffer(high=low + gap, low=low)
        self.model: deque[int] = deque()
        self.paused = False
        self.pauses = self.resumes = self.peak = 0
        self.counter = 0

    @rule(n=st.integers(1, 5))
    def push(self, n: int) -> None:
        for _ in range(n):
            self.counter += 1
            signal = self.buffer.push(self.counter)
            self.model.append(self.counter)
            self.peak = max(self.peak, len(self.model))
            crossed = not self.paused and len(self.model) > self.buffer.high
            assert signal is (Signal.PAUSE if crossed else None)
            if crossed:
                self.paused = True
                self.pauses += 1

    @precondition(lambda self: self.model)
    @rule()
    def pop(self) -> None:
        item, signal = self.buffer.pop()
        assert item == self.model.popleft()
        self._after_pop(signal)

    @rule(limit=st.integers(1, 8))
    def pop_many(self, limit: int) -> None:
        items, signal = self.buffer.pop_many(limit)
        expected = [self.model.popleft() for _ in range(min(limit, len(self.model)))]
        assert items == expected
        self._after_pop(signal)

    def _after_pop(self, signal: Signal | None) -> None:
        fell = self.paused and len(self.model) <= self.buffer.low
        assert signal is (Signal.RESUME if fell else None)
        if fell:
            self.paused = False
            self.resumes += 1

    @invariant()
    def agrees(self) -> None:
        stats = self.buffer.statistics()
        assert stats.size == len(self.model) == len(self.buffer)
        assert stats.paused == self.paused == self.buffer.paused
        assert (stats.peak, stats.pauses, stats.resumes) == (self.peak, self.pauses, self.resumes)
        assert self.pauses - self.resumes == int(self.paused)


TestBuffer = BufferMachine.TestCase


@pytest.mark.parametrize(("high", "low"), [(1, 2), (-1, -1), (3, -1)])
def test_bad_marks_are_refused(high: int, low: int) -> None:
    with pytest.raises(ValueError, match="low <= high"):
        BackpressureBuffer(high=high, low=low)


def test_pop_from_empty_raises() -> None:
    with pytest.raises(IndexError):
        BackpressureBuffer[int](high=1, low=0).pop()
