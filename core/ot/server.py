"""The server's copy of one document: a revision log that rebases late operations.

An operation made against revision ``base`` is transformed over every operation applied after
``base``, one at a time (never over their composition: compose does not commute with the
insert tie-break), then applied; it becomes revision ``n + 1``. The incoming operation goes
*left* of an already-applied insert at the same position, as the client state machine assumes.
Only the last ``keep`` operations are kept; an operation based on an older revision gets
``Expired`` and its client re-joins from a snapshot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..errors import Expired, InvalidArgument
from .gaptext import GapText
from .text import TextOp


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """``op`` (as transformed) is revision ``revision``; ``duplicate`` if ``op_id`` was seen."""

    revision: int
    op: TextOp
    author: str
    op_id: str = ""
    duplicate: bool = False
    removed: tuple[str, ...] = ()  # the text each of ``op.splices()`` removed, when applied


@dataclass(frozen=True, slots=True)
class _Entry:
    op: TextOp
    author: str
    op_id: str
    length_before: int


class ServerDocument:
    def __init__(self, text: str = "", *, revision: int = 0, keep: int = 1000) -> None:
        if keep < 1:
            raise ValueError(f"keep: must be at least 1, got {keep}")
        self._text = GapText(text)
        self.revision = revision
        self._keep = keep
        self._log: deque[_Entry] = deque()
        self._ids: dict[tuple[str, str], int] = {}

    @property
    def text(self) -> str:
        """The current text (a copy: O(length))."""
        return str(self._text)

    @property
    def length(self) -> int:
        return len(self._text)

    @property
    def oldest_base(self) -> int:
        """The oldest revision an incoming operation may be based on."""
        return self.revision - len(self._log)

    def length_at(self, base: int) -> int:
        """The document's length at revision ``base``; refuses revisions not kept or to come."""
        if base < 0:
            raise InvalidArgument("version", "must not be negative")
        if base > self.revision:
            raise InvalidArgument(
                "version", f"revision {base} is in the future: the document is at {self.revision}"
            )
        oldest = self.oldest_base
        if base < oldest:
            raise Expired(
                "version", f"revision {base} is no longer kept (oldest is {oldest}): join again"
            )
        return self._log[base - oldest].length_before if base < self.revision else len(self._text)

    def ops_since(self, base: int) -> list[TextOp]:
        """The operations applied after revision ``base`` (which must be kept)."""
        return [applied.op for applied in self.history_since(base)]

    def history_since(self, base: int) -> list[Applied]:
        """Everything applied after revision ``base`` (which must be kept), in order: what a
        client that reconnects at ``base`` must catch up on (its own ops become acks)."""
        self.length_at(base)
        start = base - self.oldest_base
        return [
            Applied(revision=base + 1 + i, op=entry.op, author=entry.author, op_id=entry.op_id)
            for i, entry in enumerate(list(self._log)[start:])
        ]

    def duplicate_of(self, author: str, op_id: str) -> Applied | None:
        """The earlier application of ``op_id`` by ``author``, while it is kept."""
        seen = self._ids.get((author, op_id)) if op_id else None
        if seen is None:
            return None
        entry = self._log[seen - self.oldest_base - 1]
        return Applied(revision=seen, op=entry.op, author=author, op_id=op_id, duplicate=True)

    def receive(self, op: TextOp, *, base: int, author: str, op_id: str = "") -> Applied:
        duplicate = self.duplicate_of(author, op_id)
        if duplicate is not None:
            return duplicate
        expected = self.length_at(base)
        oldest = self.oldest_base
        if op.base_length != expected:
            raise InvalidArgument(
                "position",
                f"the edit spans {op.base_length} code points but revision {base} has {expected}",
            )
        for index in range(base - oldest, len(self._log)):
            op, _ = TextOp.transform(op, self._log[index].op)
        length_before = len(self._text)
        removed = self._text.apply(op)
        self.revision += 1
        self._log.append(_Entry(op, author, op_id, length_before))
        if op_id:
            self._ids[(author, op_id)] = self.revision
        if len(self._log) > self._keep:
            dropped = self._log.popleft()
            if dropped.op_id:
                self._ids.pop((dropped.author, dropped.op_id), None)
        return Applied(revision=self.revision, op=op, author=author, op_id=op_id, removed=removed)
