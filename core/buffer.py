"""A FIFO with high/low water marks that reports backpressure edges.

The buffer never refuses an item and never drops one: it only *says* when its owner should
stop producing (``Signal.PAUSE``, once, when the size rises above ``high``) and when it may start
again (``Signal.RESUME``, once, when the size falls back to ``low``). The hysteresis between the
marks keeps a producer from flapping. What to do with the signals (stop reading a socket,
disconnect a slow consumer) is the owner's policy.

The items are a list, not a deque: an empty deque holds a 64-slot block (760 bytes), and one
that has grown keeps up to 16 freed blocks for reuse, so every idle outbox of a server with
10 000 streams would keep one or more; an emptied list frees its storage. Taking a whole
batch hands the list over without a copy; taking part of it moves the rest, which a
buffer kept near its water marks (its owner's job) makes cheap.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class Signal(enum.Enum):
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferStatistics:
    size: int
    high: int
    low: int
    paused: bool
    peak: int
    pauses: int
    resumes: int


class BackpressureBuffer(Generic[T]):
    """FIFO of ``T`` with edge-triggered PAUSE/RESUME signals (see module docstring)."""

    __slots__ = ("_items", "_paused", "_pauses", "_peak", "_resumes", "high", "low")

    def __init__(self, *, high: int, low: int) -> None:
        if not 0 <= low <= high:
            raise ValueError(f"water marks: need 0 <= low <= high, got low={low}, high={high}")
        self.high = high
        self.low = low
        self._items: list[T] = []
        self._paused = False
        self._peak = 0
        self._pauses = 0
        self._resumes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        """The items, oldest first (without removing them)."""
        return iter(self._items)

    @property
    def paused(self) -> bool:
        return self._paused

    def push(self, item: T) -> Signal | None:
        """Append ``item``; return PAUSE if this push took the size above ``high``."""
        items = self._items
        items.append(item)
        size = len(items)
        if size > self._peak:
            self._peak = size
        if size > self.high and not self._paused:
            self._paused = True
            self._pauses += 1
            return Signal.PAUSE
        return None

    def pop(self) -> tuple[T, Signal | None]:
        """Remove the oldest item; RESUME comes with it if the size fell to ``low``.

        Raises IndexError when empty.
        """
        item = self._items.pop(0)
        return item, self._after_pop()

    def pop_many(self, limit: int) -> tuple[list[T], Signal | None]:
        """Remove up to ``limit`` items, oldest first (a writer sends them in one write)."""
        items = self._items
        if limit >= len(items):
            batch, self._items = items, []
        else:
            batch = items[:limit]
            del items[:limit]
        return batch, self._after_pop()

    def remove_if(self, predicate: Callable[[T], bool]) -> tuple[list[T], Signal | None]:
        """Take out every item ``predicate`` picks, keeping the others' order (an owner that
        can fetch them again elsewhere lets them go); RESUME as ``pop`` would."""
        removed: list[T] = []
        kept: list[T] = []
        for item in self._items:
            (removed if predicate(item) else kept).append(item)
        self._items = kept
        return removed, self._after_pop()

    def _after_pop(self) -> Signal | None:
        if self._paused and len(self._items) <= self.low:
            self._paused = False
            self._resumes += 1
            return Signal.RESUME
        return None

    def statistics(self) -> BufferStatistics:
        return BufferStatistics(
            size=len(self._items),
            high=self.high,
            low=self.low,
            paused=self._paused,
            peak=self._peak,
            pauses=self._pauses,
            resumes=self._resumes,
        )
