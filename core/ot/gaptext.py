"""A document's text with a movable editing window.

Python strings are immutable, so a naive splice copies the whole document on every edit. Real
editing is local (people type where they typed last), so the text is kept as ``head + window +
tail`` and an edit that falls inside the small window rebuilds only the window; an edit
elsewhere (or a window grown too large) re-centres the window on it, one full copy. On the
editing traces this is several times faster than splicing the whole string
(``bench/ot_traces.py``).
"""

from __future__ import annotations

from .text import TextOp


class GapText:
    __slots__ = ("_head", "_length", "_margin", "_start", "_tail", "_window")

    def __init__(self, text: str = "", *, margin: int = 64) -> None:
        self._margin = margin  # code points kept either side of an edit when re-centring
        self._head = ""
        self._window = text
        self._tail = ""
        self._start = 0  # == len(self._head)
        self._length = len(text)

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        return self._head + self._window + self._tail

    def slice(self, start: int, end: int) -> str:
        offset = start - self._start
        if offset >= 0 and end - self._start <= len(self._window):
            return self._window[offset : end - self._start]
        return str(self)[start:end]

    def splice(self, position: int, deleted: int, inserted: str) -> str:
        """Replace ``deleted`` code points at ``position`` by ``inserted``; return what was
        removed. Raises ValueError if the range does not fit."""
        if position < 0 or deleted < 0 or position + deleted > self._length:
            raise ValueError(
                f"splice at {position} deleting {deleted} does not fit a text of {self._length}"
            )
        offset = position - self._start
        window = self._window
        if offset < 0 or offset + deleted > len(window) or len(window) > 8 * self._margin:
            self._recentre(position, deleted)
            offset = position - self._start
            window = self._window
        removed = window[offset : offset + deleted]
        self._window = window[:offset] + inserted + window[offset + deleted :]
        self._length += len(inserted) - deleted
        return removed

    def apply(self, op: TextOp) -> tuple[str, ...]:
        """Apply ``op``; return the text each of its splices removed, in order."""
        if op.base_length != self._length:
            raise ValueError(
                f"operation expects a text of {op.base_length} code points, got {self._length}"
            )
        return tuple(self.splice(p, d, i) for p, d, i in op.splices())

    def _recentre(self, position: int, deleted: int) -> None:
        text = str(self)
        start = max(0, position - self._margin)
        end = min(len(text), position + deleted + self._margin)
        self._head, self._window, self._tail = text[:start], text[start:end], text[end:]
        self._start = start
