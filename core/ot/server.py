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

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import Expired, InvalidArgument
from .gaptext import GapText
from .text import TextOp, _splice_of, splice_op

# How many trimmed op ids ``was_applied`` still recognises: per author, and authors.
RETIRED_PER_AUTHOR = 16
RETIRED_AUTHORS = 10_000


class Applied:
    """``op`` (as transformed) is revision ``revision``; ``duplicate`` if ``op_id`` was seen;
    ``removed``: the text each of ``op.splices()`` removed, when applied.

    Also the server's log entry. One applied from a single splice (``ServerDocument.splice``)
    keeps the splice and builds its general ``op`` only when something asks for it (a late
    operation rebased over it, a catch-up, the store): a document edited in turn never builds
    one. One applied as an ``op`` keeps its splice too when it is one, found once, so that
    later splices are moved past it by arithmetic (``_splice_over``). Written as a plain
    slotted class, not a frozen dataclass, because one is made per edit on the hot path and a
    frozen dataclass costs about a microsecond more to construct.
    """

    __slots__ = (
        "_op",
        "_splice",
        "author",
        "duplicate",
        "length_before",
        "op_id",
        "removed",
        "revision",
    )

    def __init__(
        self,
        *,
        revision: int,
        op: TextOp | None = None,
        author: str,
        op_id: str = "",
        duplicate: bool = False,
        removed: tuple[str, ...] = (),
        splice: tuple[int, int, str] | None = None,
        length_before: int = 0,
    ) -> None:
        if op is None and splice is None:
            raise TypeError("Applied: give op or splice")
        self.revision = revision
        self._op = op
        self._splice = splice
        self.author = author
        self.op_id = op_id
        self.duplicate = duplicate
        self.removed = removed
        self.length_before = length_before  # the document's length before it

    @property
    def op(self) -> TextOp:
        op = self._op
        if op is None:
            assert self._splice is not None
            position, deleted, inserted = self._splice
            op = self._op = splice_op(self.length_before, position, deleted, inserted)
        return op

    def pieces(self) -> list[tuple[int, str, str]]:
        """``(position, removed text, inserted)`` of each splice, each relative to the text
        after the ones before it (what the wire carries), without building ``op`` if it was
        one splice."""
        splice = self._splice
        if splice is not None:
            position, deleted, inserted = splice
            return [(position, self.removed[0], inserted)] if deleted or inserted else []
        return [
            (position, removed, inserted)
            for (position, _, inserted), removed in zip(
                self.op.splices(), self.removed, strict=True
            )
        ]

    def __repr__(self) -> str:
        what = f"splice={self._splice!r}" if self._op is None else f"op={self._op!r}"
        return (
            f"Applied(revision={self.revision}, {what}, author={self.author!r}, "
            f"op_id={self.op_id!r}, duplicate={self.duplicate}, removed={self.removed!r})"
        )


@dataclass(slots=True)
class _Bridge:
    last_own: int  # revision of the session's newest operation
    others: Sequence[tuple[int, TextOp]]  # (revision, op) of others' ops, past its own
    # Or, when that operation was a splice moved past the others' splices (``_splice_over``):
    # the splice as applied (position, deleted, inserted) and its base. ``others`` is then
    # worked out from the log, and only if a pipelined operation uses it (``_moved_past``).
    moved: tuple[int, int, str, int] | None = None


class ServerDocument:
    def __init__(self, text: str = "", *, revision: int = 0, keep: int = 1000) -> None:
        if keep < 1:
            raise ValueError(f"keep: must be at least 1, got {keep}")
        self._text = GapText(text)
        self.revision = revision
        self._keep = keep
        self._log: deque[Applied] = deque()  # the last ``keep`` revisions, oldest first
        self._ids: dict[tuple[str, str], int] = {}
        # Per author, the op ids the log has trimmed, newest last: a reconnecting editor whose
        # revision is no longer kept is told by its snapshot whether its op in flight landed.
        self._retired: dict[str, deque[str]] = {}
        self._bridges: dict[str, _Bridge] = {}
        # Op ids of kept revisions older than this copy's log (from the store after a restart:
        # the log starts at the last snapshot), oldest first: a retried edit is recognised.
        self._earlier: dict[tuple[str, str], int] = {}

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

    def history_since(self, base: int, limit: int | None = None) -> list[Applied]:
        """Everything applied after revision ``base`` (which must be kept), in order, or its
        first ``limit``: what a client that reconnects at ``base`` must catch up on (its own
        ops become acks)."""
        self.length_at(base)
        start = base - self.oldest_base
        return list(itertools.islice(self._log, start, None if limit is None else start + limit))

    def remember(self, author: str, op_id: str, revision: int) -> None:
        """``author``'s ``op_id`` made ``revision``, before this copy's log begins (read from
        the store): while that revision is kept, its re-send is acknowledged, not applied."""
        if op_id and revision > self.revision - self._keep:
            self._earlier[(author, op_id)] = revision

    def duplicate_of(self, author: str, op_id: str) -> Applied | None:
        """The earlier application of ``op_id`` by ``author``, while it is kept."""
        seen = self._ids.get((author, op_id)) if op_id else None
        if seen is None:
            earlier = self._earlier.get((author, op_id)) if op_id else None
            if earlier is None:
                return None
            # Only its revision is known (its op is behind the snapshot): an ack needs no more.
            return Applied(
                revision=earlier, author=author, op_id=op_id, duplicate=True, splice=(0, 0, "")
            )
        entry = self._log[seen - self.oldest_base - 1]
        return Applied(
            revision=seen,
            op=entry.op,
            author=author,
            op_id=op_id,
            duplicate=True,
            removed=entry.removed,
            length_before=entry.length_before,
        )

    def was_applied(self, author: str, op_id: str) -> bool:
        """Whether ``author``'s ``op_id`` was applied: while it is in the log, and afterwards
        among that author's last ``RETIRED_PER_AUTHOR`` trimmed ones (of the last
        ``RETIRED_AUTHORS`` authors), since this document was loaded."""
        if not op_id:
            return False
        if (author, op_id) in self._ids or (author, op_id) in self._earlier:
            return True
        retired = self._retired.get(author)
        return retired is not None and op_id in retired

    def context_length(self, base: int, session: str = "") -> int:
        """The length of the text an operation from ``session`` made against ``base`` applies
        to: revision ``base`` plus that session's own operations applied since."""
        self.length_at(base)  # refuses revisions not kept or to come
        unseen = self._unseen(base, session)
        return unseen[0][1].base_length if unseen else len(self._text)

    def check_splice(self, position: int, deleted: int, *, base: int, session: str = "") -> None:
        """Refuse, as ``splice`` would, a splice that does not fit what its sender saw (a
        revision not kept or to come, a range beyond the text), changing nothing."""
        length = self.context_length(base, session)
        if position < 0 or deleted < 0 or position + deleted > length:
            raise _beyond(position, deleted, length, base)

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
            if bridge.moved is not None:
                unseen = self._moved_past(bridge, base)
            else:
                unseen = [(revision, op) for revision, op in bridge.others if revision > base]
        log, oldest = self._log, self.oldest_base
        unseen.extend((r, log[r - 1 - oldest].op) for r in range(start + 1, self.revision + 1))
        return unseen

    def splice(
        self,
        position: int,
        deleted: int,
        inserted: str,
        *,
        base: int,
        author: str,
        op_id: str = "",
        session: str = "",
    ) -> Applied:
        """``receive`` for one position-based splice (what the wire carries): at ``position``
        of the text the sender saw, remove ``deleted`` code points and insert ``inserted``.
        Made against the current revision it has nothing to be rebased over and is applied as
        it is, without building the general operation; otherwise it takes ``receive``'s path."""
        if op_id and (author, op_id) in self._ids:
            duplicate = self.duplicate_of(author, op_id)
            assert duplicate is not None
            return duplicate
        if base != self.revision:
            self.length_at(base)  # refuses revisions not kept or to come
            moved = self._splice_over(position, deleted, inserted, base, session)
            if moved is not None:
                return self._splice_now(
                    moved,
                    deleted,
                    inserted,
                    author,
                    op_id,
                    session,
                    (moved, deleted, inserted, base),
                )
            unseen = self._unseen(base, session)
            length = unseen[0][1].base_length if unseen else len(self._text)
            if position < 0 or deleted < 0 or position + deleted > length:
                raise _beyond(position, deleted, length, base)
            op = splice_op(length, position, deleted, inserted)
            return self._rebase_and_apply(op, unseen, author, op_id, session)
        length = len(self._text)
        if position < 0 or deleted < 0 or position + deleted > length:
            raise _beyond(position, deleted, length, base)
        return self._splice_now(position, deleted, inserted, author, op_id, session, None)

    def _splice_now(
        self,
        position: int,
        deleted: int,
        inserted: str,
        author: str,
        op_id: str,
        session: str,
        moved: tuple[int, int, str, int] | None,
    ) -> Applied:
        """Apply a splice that fits the current text as the next revision, and log the splice
        itself (its general operation is built only if asked for: ``Applied.op``); ``moved``:
        it was moved past the others' splices since its base (``_Bridge.moved``)."""
        text = self._text
        length = len(text)
        removed = text.splice(position, deleted, inserted)
        self.revision += 1
        applied = Applied(
            revision=self.revision,
            author=author,
            op_id=op_id,
            removed=(removed,) if deleted or inserted else (),
            splice=(position, deleted, inserted),
            length_before=length,
        )
        self._record(applied, session, (), moved)
        return applied

    def _splice_over(
        self, position: int, deleted: int, inserted: str, base: int, session: str
    ) -> int | None:
        """A splice made against the kept revision ``base`` rebased as a splice: where it
        lands on the current text (the others' splices past it, its sender's bridge, are
        worked out later if ever needed: ``_moved_past``). What ``TextOp.transform``'s fast
        path computes for two splices that neither overlap nor touch, without building an
        operation for either side: the common case of concurrent editors, each typing in its
        own place. None (nothing done) when that does not hold for every revision since
        ``base``, or when the sender's own unacked operations are in between (a pipelining
        session's bridge): the general path then."""
        if not (deleted or inserted):
            return None
        bridge = self._bridges.get(session) if session else None
        if bridge is not None and bridge.last_own > base:
            return None
        log = self._log
        start = base - self.oldest_base
        length = log[start].length_before
        if position < 0 or deleted < 0 or position + deleted > length:
            raise _beyond(position, deleted, length, base)
        for index in range(start, len(log)):
            splice = log[index]._splice
            if splice is None:  # an operation of several splices (``_apply`` saw)
                return None
            other, other_deleted, other_inserted = splice
            if position + deleted < other:  # before it: it moves by what this one changes
                continue
            if other + other_deleted < position:  # after it: this one moves
                position += len(other_inserted) - other_deleted
            else:
                return None
        return position

    def _moved_past(self, bridge: _Bridge, base: int) -> list[tuple[int, TextOp]]:
        """The others' splices that the bridge's splice was moved past (``_splice_over``)
        and that came after revision ``base`` (kept), each past it, oldest first: read back
        from the log, newest first, from where the splice landed. Each was either after it
        (it moved by what the splice changed) or before it (the splice moved by what it
        changed); which one shows in where the splice was after it, since the two never
        touch: before it exactly when that position is below the other's."""
        assert bridge.moved is not None
        position, deleted, inserted, moved_base = bridge.moved
        grown = len(inserted) - deleted
        log, oldest = self._log, self.oldest_base
        others = []
        for revision in range(bridge.last_own - 1, max(base, moved_base), -1):
            entry = log[revision - 1 - oldest]
            assert entry._splice is not None  # _splice_over moved it past splices only
            other, other_deleted, other_inserted = entry._splice
            length = entry.length_before + grown
            if position < other:  # the splice was before this one, which moved
                op = splice_op(length, other + grown, other_deleted, other_inserted)
            else:  # after it: the splice had moved by what this one changed
                position -= len(other_inserted) - other_deleted
                op = splice_op(length, other, other_deleted, other_inserted)
            others.append((revision, op))
        others.reverse()
        return others

    def receive(
        self, op: TextOp, *, base: int, author: str, op_id: str = "", session: str = ""
    ) -> Applied:
        """Rebase ``op`` (made against ``base``, after ``session``'s own unacknowledged ops)
        over what its sender had not seen, and apply it."""
        duplicate = self.duplicate_of(author, op_id)
        if duplicate is not None:
            return duplicate
        self.length_at(base)  # refuses revisions not kept or to come
        unseen = self._unseen(base, session)
        expected = unseen[0][1].base_length if unseen else len(self._text)
        if op.base_length != expected:
            raise InvalidArgument(
                "position",
                f"the edit spans {op.base_length} code points but revision {base} has {expected}",
            )
        return self._rebase_and_apply(op, unseen, author, op_id, session)

    def rebase_splice(
        self, position: int, deleted: int, inserted: str, *, base: int, session: str = ""
    ) -> tuple[TextOp, list[tuple[int, TextOp]]]:
        """``splice``'s rebase without its apply: the splice as an op on the current text,
        and the others' ops it was transformed over, each past it (``session``'s next bridge).
        What a node proposes to the shared log (``apply_next`` once it is committed)."""
        self.check_splice(position, deleted, base=base, session=session)
        unseen = self._unseen(base, session)
        length = unseen[0][1].base_length if unseen else len(self._text)
        return self._rebase(splice_op(length, position, deleted, inserted), unseen)

    def apply_next(
        self,
        op: TextOp,
        *,
        author: str,
        op_id: str = "",
        session: str = "",
        rebased: list[tuple[int, TextOp]] | None = None,
    ) -> Applied:
        """Apply ``op``, made on the current text, as the next revision: an op the shared log
        gave this revision (another node's, or this node's own from ``rebase_splice``)."""
        if op.base_length != len(self._text):
            raise InvalidArgument(
                "position",
                f"the edit spans {op.base_length} code points but the text has {len(self._text)}",
            )
        return self._apply(op, author, op_id, session, rebased or [])

    @staticmethod
    def _rebase(
        op: TextOp, unseen: list[tuple[int, TextOp]]
    ) -> tuple[TextOp, list[tuple[int, TextOp]]]:
        """Transform ``op`` over what its sender had not seen (``_unseen``), one at a time."""
        rebased = []
        for revision, other in unseen:
            op, other = TextOp.transform(op, other)
            rebased.append((revision, other))
        return op, rebased

    def _rebase_and_apply(
        self,
        op: TextOp,
        unseen: list[tuple[int, TextOp]],
        author: str,
        op_id: str,
        session: str,
    ) -> Applied:
        """Rebase ``op`` (``_rebase``) and apply it as the next revision."""
        op, rebased = self._rebase(op, unseen)
        return self._apply(op, author, op_id, session, rebased)

    def _apply(
        self,
        op: TextOp,
        author: str,
        op_id: str,
        session: str,
        rebased: list[tuple[int, TextOp]],
    ) -> Applied:
        length_before = len(self._text)
        removed = self._text.apply(op)
        self.revision += 1
        applied = Applied(
            revision=self.revision,
            op=op,
            author=author,
            op_id=op_id,
            removed=removed,
            splice=_splice_of(op),  # once, not each time a later splice is moved past it
            length_before=length_before,
        )
        self._record(applied, session, rebased)
        return applied

    def _record(
        self,
        applied: Applied,
        session: str,
        rebased: Sequence[tuple[int, TextOp]],
        moved: tuple[int, int, str, int] | None = None,
    ) -> None:
        """Log ``applied`` (the newest revision), its op id and its sender's bridge (the
        others' ops ``rebased`` past it, or how it was ``moved`` past their splices)."""
        log = self._log
        log.append(applied)
        if applied.op_id:
            self._ids[(applied.author, applied.op_id)] = applied.revision
        if session:
            bridge = self._bridges.get(session)
            if bridge is None:
                self._bridges[session] = _Bridge(applied.revision, rebased, moved)
            else:
                bridge.last_own, bridge.others, bridge.moved = applied.revision, rebased, moved
        earlier = self._earlier
        while earlier and next(iter(earlier.values())) <= applied.revision - self._keep:
            del earlier[next(iter(earlier))]
        if len(log) > self._keep:
            dropped = log.popleft()
            if dropped.op_id:
                self._ids.pop((dropped.author, dropped.op_id), None)
                self._retire(dropped.author, dropped.op_id)

    def _retire(self, author: str, op_id: str) -> None:
        retired = self._retired.pop(author, None)  # re-inserted: the dict is oldest first
        if retired is None:
            retired = deque(maxlen=RETIRED_PER_AUTHOR)
            if len(self._retired) >= RETIRED_AUTHORS:
                del self._retired[next(iter(self._retired))]
        retired.append(op_id)
        self._retired[author] = retired


def _beyond(position: int, deleted: int, length: int, base: int) -> InvalidArgument:
    """The refusal of a splice that does not fit the text it was made against."""
    if position < 0 or deleted < 0:
        return InvalidArgument("position", "a position and a length must not be negative")
    return InvalidArgument(
        "position",
        f"{position} + length {deleted} is beyond the {length} code points of revision {base}",
    )
