"""The server's copy of one document: a revision log that rebases late operations.

An operation made against revision ``base`` is transformed over every operation applied after
``base``, one at a time (never over their composition: compose does not commute with the
insert tie-break), then applied; it becomes revision ``n + 1``. The incoming operation goes
*left* of an already-applied insert at the same position, as the client state machine assumes.
Only the last ``keep`` operations are kept; an operation based on an older revision gets
``Expired`` and its client re-joins from a snapshot.

Pipelining (several operations in flight from one client, as in the Jupiter protocol that ot.js
simplified to one): a client sends each operation against the newest revision it has *received*,
and the operation also follows that client's own operations still unacknowledged. Given the
``session`` (one ordered stream), the server keeps, per session, the other clients' operations
it has applied since that session's base, transformed past that session's own later operations
(its *bridge*), and rebases the next operation over those instead of over the raw log. A
session with one operation in flight never needs it (its base is at least its last own
revision), so the plain rule above is the special case. A bridge lives as long as the stream:
a reconnecting client re-joins (its unacknowledged operations are recognised by op id).
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
    removed: tuple[str, ...]


@dataclass(slots=True)
class _Bridge:
    last_own: int  # revision of the session's newest operation
    others: list[tuple[int, TextOp]]  # (revision, op) of others' ops, as seen past its own


class ServerDocument:
    def __init__(self, text: str = "", *, revision: int = 0, keep: int = 1000) -> None:
        if keep < 1:
            raise ValueError(f"keep: must be at least 1, got {keep}")
        self._text = GapText(text)
        self.revision = revision
        self._keep = keep
        self._log: deque[_Entry] = deque()
        self._ids: dict[tuple[str, str], int] = {}
        self._bridges: dict[str, _Bridge] = {}

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
            Applied(
                revision=base + 1 + i,
                op=entry.op,
                author=entry.author,
                op_id=entry.op_id,
                removed=entry.removed,
            )
            for i, entry in enumerate(list(self._log)[start:])
        ]

    def duplicate_of(self, author: str, op_id: str) -> Applied | None:
        """The earlier application of ``op_id`` by ``author``, while it is kept."""
        seen = self._ids.get((author, op_id)) if op_id else None
        if seen is None:
            return None
        entry = self._log[seen - self.oldest_base - 1]
        return Applied(revision=seen, op=entry.op, author=author, op_id=op_id, duplicate=True)

    def context_length(self, base: int, session: str = "") -> int:
        """The length of the text an operation from ``session`` made against ``base`` applies
        to: revision ``base`` plus that session's own operations applied since."""
        self.length_at(base)  # refuses revisions not kept or to come
        unseen = self._unseen(base, session)
        return unseen[0][1].base_length if unseen else len(self._text)

    def forget(self, session: str) -> None:
        """The session's stream ended: drop its bridge."""
        self._bridges.pop(session, None)

    def _unseen(self, base: int, session: str) -> list[tuple[int, TextOp]]:
        """Others' operations the session had not received when it sent an op against
        ``base``, each in the form that applies after everything before it in this list."""
        bridge = self._bridges.get(session) if session else None
        if bridge is None or bridge.last_own <= base:
            start, unseen = base, []
        else:
            start = bridge.last_own
            unseen = [(revision, op) for revision, op in bridge.others if revision > base]
        log, oldest = self._log, self.oldest_base
        unseen.extend((r, log[r - 1 - oldest].op) for r in range(start + 1, self.revision + 1))
        return unseen

    def receive(
        self, op: TextOp, *, base: int, author: str, op_id: str = "", session: str = ""
    ) -> Applied:
        """Rebase ``op`` (made against ``base``, after ``session``'s own unacknowledged ops)
        over what its sender had not seen, and apply it."""
        duplicate = self.duplicate_of(author, op_id)
        if duplicate is not None:
            return duplicate
        expected = self.context_length(base, session)
        if op.base_length != expected:
            raise InvalidArgument(
                "position",
                f"the edit spans {op.base_length} code points but revision {base} has {expected}",
            )
        rebased = []
        for revision, other in self._unseen(base, session):
            op, other = TextOp.transform(op, other)
            rebased.append((revision, other))
        length_before = len(self._text)
        removed = self._text.apply(op)
        self.revision += 1
        self._log.append(_Entry(op, author, op_id, length_before, removed))
        if op_id:
            self._ids[(author, op_id)] = self.revision
        if session:
            self._bridges[session] = _Bridge(self.revision, rebased)
        if len(self._log) > self._keep:
            dropped = self._log.popleft()
            if dropped.op_id:
                self._ids.pop((dropped.author, dropped.op_id), None)
        return Applied(revision=self.revision, op=op, author=author, op_id=op_id, removed=removed)
