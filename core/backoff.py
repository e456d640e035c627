"""Reconnect delays: gRPC's connection backoff (doc/connection-backoff.md in grpc/grpc).

The first retry waits ``initial``; each later one ``multiplier`` times the last, capped at
``cap``; every delay is then moved by a uniform random ±``jitter`` fraction so that clients cut
off together do not come back together. A connection that worked resets the schedule. The
random source is an argument: the transport passes ``random.random``, tests pass their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffPolicy:
    initial: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    cap: float = 120.0

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.multiplier >= 1 and 0 <= self.jitter < 1):
            raise ValueError(
                "backoff: need initial > 0, multiplier >= 1 and 0 <= jitter < 1, got "
                f"{self.initial}, {self.multiplier}, {self.jitter}"
            )
        if self.cap < self.initial:
            raise ValueError(f"backoff: cap {self.cap} is below initial {self.initial}")

    def bounds(self, attempt: int) -> tuple[float, float]:
        """The range the delay before retry ``attempt`` (0 = the first) falls in."""
        base = min(self.cap, self.initial * self.multiplier ** min(attempt, 1000))
        return base * (1 - self.jitter), base * (1 + self.jitter)


class Backoff:
    """The delays before successive reconnect attempts."""

    def __init__(self, policy: BackoffPolicy, random: Callable[[], float]) -> None:
        self.policy = policy
        self._random = random
        self.attempt = 0

    def next_delay(self) -> float:
        low, high = self.policy.bounds(self.attempt)
        self.attempt += 1
        return low + (high - low) * self._random()

    def reset(self) -> None:
        """The connection worked: the next failure starts the schedule again."""
        self.attempt = 0
