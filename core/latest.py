"""One receiver's outbound game states: only the newest waits.

A game state is worth sending only until the next tick replaces it, so a receiver that falls
behind does not queue them: a new state *supersedes* the one still waiting (counted). A delta
is relative to the state before it, so once a receiver has missed one (or has just joined), the
next state it takes must be a full one; ``take`` says so. Loss here is by design (DESIGN §5),
and this is the only place it happens.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class LatestState(Generic[T]):
    __slots__ = ("_full_next", "_pending", "superseded", "taken")

    def __init__(self) -> None:
        self._pending: T | None = None
        self._full_next = True  # a new receiver has nothing to apply a delta to
        self.superseded = 0
        self.taken = 0

    def __bool__(self) -> bool:
        return self._pending is not None

    def offer(self, state: T) -> bool:
        """Make ``state`` the one waiting; True when it superseded one never taken."""
        superseded = self._pending is not None
        if superseded:
            self.superseded += 1
            self._full_next = True
        self._pending = state
        return superseded

    def take(self) -> tuple[T, bool]:
        """The waiting state, and whether the receiver must get it in full."""
        state = self._pending
        if state is None:
            raise LookupError("no state waiting")
        full = self._full_next
        self._pending = None
        self._full_next = False
        self.taken += 1
        return state, full

    def restart(self) -> None:
        """The receiver starts over (it rejoined): its next state is full."""
        self._full_next = True
