"""Which message ids a room may already hold: a small filter in front of the store's index.

A TEXT re-sent with the same sender and id is recognised while the original is retained
(DESIGN §4), and a room retains far more messages than its in-memory window. Keeping every
retained id in memory would cost a room about 100 bytes per message; this keeps about 2.5
bytes: two Bloom filters, each for ``capacity`` ids (the newest and the generation before,
which between them cover the last ``capacity`` ids whatever has been trimmed). "Not in" is
certain: a new message is stored with no read. "Maybe" (a re-send, or about 1 in 100 new
messages) is answered by the store's index (``FindMessage``).
"""

from __future__ import annotations

_BITS_PER_ID = 10  # with 7 probes: about 1 % false positives at capacity
_PROBES = 7


class IdFilter:
    """A two-generation Bloom filter of ``(sender, id)`` keys (see the module docstring)."""

    __slots__ = ("_bits", "_capacity", "_count", "_older", "_size")

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 1)
        self._size = self._capacity * _BITS_PER_ID
        self._bits = bytearray((self._size + 7) // 8)
        self._older: bytearray | None = None
        self._count = 0

    def add(self, sender: str, id: str) -> None:
        if self._count >= self._capacity:  # a new generation; the one before it stays
            self._older, self._bits = self._bits, bytearray(len(self._bits))
            self._count = 0
        bits = self._bits
        for position in self._positions(sender, id):
            bits[position >> 3] |= 1 << (position & 7)
        self._count += 1

    def __contains__(self, key: tuple[str, str]) -> bool:
        positions = self._positions(*key)
        if all(self._bits[p >> 3] & (1 << (p & 7)) for p in positions):
            return True
        older = self._older
        return older is not None and all(older[p >> 3] & (1 << (p & 7)) for p in positions)

    def _positions(self, sender: str, id: str) -> list[int]:
        first = hash((sender, id))
        step = hash((id, sender)) | 1
        size = self._size
        return [(first + probe * step) % size for probe in range(_PROBES)]
