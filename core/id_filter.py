"""Which message ids a room may already hold: a small filter in front of the store's index.

A TEXT re-sent with the same sender and id is recognised while the original is retained
(DESIGN §4), and a room retains far more messages than its in-memory window. Keeping every
retained id in memory would cost a room about 100 bytes per message; this keeps 2.5 to 5
bytes (its bits rounded up to a power of two): two Bloom filters, each for ``capacity`` ids
(the newest and the generation before, which between them cover the last ``capacity`` ids
whatever has been trimmed). "Not in" is certain: a new message is stored with no read.
"Maybe" (a re-send, or about 1 in 100 new messages) is answered by the store's index
(``FindMessage``).

Each filter is *blocked*: an id's bits all fall in one 64-bit word, so a check is one hash,
one word read and a mask compare, and an add one word write (seven scattered probes, in
Python, cost twice as much per TEXT: bench/README.md, issue 13). The mask is two lookups in a
fixed table of 4-bit masks, ~8 bits per id. The price is more false positives for the same
memory (~1 % at capacity, tests/core/test_id_filter.py, against ~0.3 % scattered), each an
index seek in the store that no longer holds up the group commit (``Runtime._find_message``).
"""

from __future__ import annotations

import random
from array import array

_BITS_PER_ID = 10  # rounded up to a power of two words: about 1 % false positives at capacity
_MASK_BITS = 4  # bits set by each of an id's two table lookups
_TABLE_INDEX = 12  # bits of the hash that pick one lookup
# 4 096 masks of 4 distinct bits each, the same in every process (a fixed seed).
_RANDOM = random.Random(0x1D5)
_MASKS = tuple(
    sum(1 << bit for bit in _RANDOM.sample(range(64), _MASK_BITS)) for _ in range(1 << _TABLE_INDEX)
)
_PICK = (1 << _TABLE_INDEX) - 1


class IdFilter:
    """A two-generation blocked Bloom filter of ``(sender, id)`` keys (the module docstring)."""

    __slots__ = ("_capacity", "_count", "_older", "_slot", "_words")

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 1)
        words = 1 << max(self._capacity * _BITS_PER_ID // 64 - 1, 0).bit_length()
        self._slot = words - 1  # a word's index is a mask away
        self._words = array("Q", bytes(8 * words))
        self._older: array[int] | None = None
        self._count = 0

    def add(self, sender: str, id: str) -> None:
        if self._count >= self._capacity:  # a new generation; the one before it stays
            self._older, self._words = self._words, array("Q", bytes(len(self._words) * 8))
            self._count = 0
        h = hash((sender, id))
        self._words[h & self._slot] |= _MASKS[(h >> 40) & _PICK] | _MASKS[(h >> 52) & _PICK]
        self._count += 1

    def __contains__(self, key: tuple[str, str]) -> bool:
        # Per TEXT, on the hot path: one hash, one word (two with the older generation).
        h = hash(key)
        mask = _MASKS[(h >> 40) & _PICK] | _MASKS[(h >> 52) & _PICK]
        slot = h & self._slot
        if self._words[slot] & mask == mask:
            return True
        older = self._older
        return older is not None and older[slot] & mask == mask
