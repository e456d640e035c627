"""A token bucket that says how long to wait, never refuses: rate limits shape (DESIGN §4).

The runtime asks ``delay(now)`` before it handles a stream's next message and sleeps that long
if it is not zero; flow control then slows that one sender. Time is an argument.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; each message takes one. ``rate`` 0: no limit."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, *, now: float) -> None:
        if rate < 0 or (rate and burst < 1):
            raise ValueError(f"rate: need rate >= 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def delay(self, now: float) -> float:
        """Seconds until a token is there (0: take it now). Taking is the caller's next step:
        ``take(now)`` once that time has come."""
        if not self.rate:
            return 0.0
        tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, now: float) -> None:
        """Spend one token (the bucket may go below zero if called early: the debt is waited
        out by later ``delay``s)."""
        if not self.rate:
            return
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate) - 1
        self._at = now
