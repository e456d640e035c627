"""Which message ids a room may already hold: a small filter in front of the store's index.

A TEXT re-sent with the same sender and id is recognised while the original is retained
(DESIGN §4), and a room retains far more messages than its in-memory window. Keeping every
retained id in memory would cost a room about 100 bytes per message; this keeps 2.5 to 5
bytes (its bits rounded up to a power of two): two Bloom filters, each for ``capacity`` ids
(the newest and the generation before, which between them cover the last ``capacity`` ids
whatever has been trimmed). "Not in" is certain: a new message is stored with no read.
"Maybe" (a re-send, or about 1 in 100 new messages) is answered by the store's index
(``FindMessage``).
"""

from __future__ import annotations

_BITS_PER_ID = 10  # with 7 probes: about 1 % false positives at capacity
_PROBES = 7


class IdFilter:
    """A two-generation Bloom filter of ``(sender, id)`` keys (see the module docstring)."""

    __slots__ = ("_bits", "_capacity", "_count", "_older", "_size")

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 1)
        # A power of two (up to twice the bits asked for): a probe's position is a mask away.
        self._size = 1 << (self._capacity * _BITS_PER_ID - 1).bit_length()
        self._bits = bytearray((self._size + 7) // 8)
        self._older: bytearray | None = None
        self._count = 0

    def add(self, sender: str, id: str) -> None:
        if self._count >= self._capacity:  # a new generation; the one before it stays
            self._older, self._bits = self._bits, bytearray(len(self._bits))
            self._count = 0
        bits, mask = self._bits, self._size - 1
        position, step = self._start((sender, id))
        for _ in range(_PROBES):
            bits[position >> 3] |= 1 << (position & 7)
            position = (position + step) & mask
        self._count += 1

    def __contains__(self, key: tuple[str, str]) -> bool:
        # Per TEXT, on the hot path: one hash, and the probes stop at the first clear bit
        # (a new id, the common case, is told apart in a probe or two).
        start, step = self._start(key)
        if _all_set(self._bits, start, step, self._size):
            return True
        older = self._older
        return older is not None and _all_set(older, start, step, self._size)

    def _start(self, key: tuple[str, str]) -> tuple[int, int]:
        """The first probe and the step between probes (double hashing: the two halves of
        one 64-bit hash, Kirsch and Mitzenmacher's construction)."""
        h = hash(key)
        mask = self._size - 1
        return h & mask, ((h >> 32) | 1) & mask  # (odd: every probe differs)


def _all_set(bits: bytearray, position: int, step: int, size: int) -> bool:
    mask = size - 1
    for _ in range(_PROBES):
        if not bits[position >> 3] & (1 << (position & 7)):
            return False
        position = (position + step) & mask
    return True
