"""The client's copy of a document: the ot.js state machine, with no I/O.

At most one operation is in flight (sent, not yet acknowledged); later local edits are
composed into one buffered operation. With ``max_in_flight`` above 1 the client pipelines:
up to that many operations are in flight, each sent against the newest revision received
(the server rebases it past this stream's earlier ones: ``ServerDocument`` bridges), so a
client on a slow link is not held to one operation per round trip; only then does it buffer.
Undo and redo are local too (ot.js UndoManager): each step is an inverse operation, transformed
against every remote operation that arrives, and consecutive typing is one step. States and
what each event does (one in flight):

=====================  ==============================  ==========================  ============
state                  local edit                      server op (someone else's)  ack
=====================  ==============================  ==========================  ============
synchronized           send it -> awaiting confirm     apply it                    (error)
awaiting confirm       buffer it -> awaiting w/ buffer  transform in-flight, apply  -> synchronized
awaiting with buffer   compose into the buffer         transform both, apply       send buffer*
=====================  ==============================  ==========================  ============

(*) Every operation sent is one splice, as the position-based wire requires: a buffer (or an
undo step) that touches several places goes out a splice at a time, one per ack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .text import TextOp


class State(enum.Enum):
    SYNCHRONIZED = "synchronized"
    AWAITING_CONFIRM = "awaiting confirm"
    AWAITING_WITH_BUFFER = "awaiting with buffer"


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send ``op``, made against revision ``base``, to the server."""

    op: TextOp
    base: int


class ClientDocument:
    def __init__(
        self, text: str = "", *, revision: int = 0, undo_limit: int = 100, max_in_flight: int = 1
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be at least 1, got {max_in_flight}")
        self.text = text
        self.max_in_flight = max_in_flight
        # Every remote op is transformed through both stacks, so they are bounded (ot.js: 50).
        self.undo_limit = undo_limit
        self.revision = revision
        self.in_flight: list[TextOp] = []  # sent, oldest first; acks come in this order
        self.buffer: TextOp | None = None
        # Undo and redo stacks hold inverse operations against the current local text; every
        # remote operation is transformed through them, so undo only takes back our own edits.
        self._undo: list[TextOp] = []
        self._redo: list[TextOp] = []
        self._last_splice: tuple[int, int, str] | None = None  # for grouping typing

    @property
    def outstanding(self) -> TextOp | None:
        """The oldest operation awaiting its ack."""
        return self.in_flight[0] if self.in_flight else None

    @property
    def state(self) -> State:
        if self.outstanding is None:
            return State.SYNCHRONIZED
        return State.AWAITING_CONFIRM if self.buffer is None else State.AWAITING_WITH_BUFFER

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def edit(self, op: TextOp, *, group: bool | None = None) -> Send | None:
        """Apply a local edit; return what to send now, if anything.

        The edit joins the previous one as a single undo step if ``group`` is true, or, when
        ``group`` is None, if it continues it: typing on where the last insert ended,
        deleting on where the last delete was (backspace or forward delete).
        """
        inverse = op.invert(self.text)
        splices = list(op.splices())
        splice = splices[0] if len(splices) == 1 else None
        if group is None:
            group = _continues(self._last_splice, splice)
        if group and self._undo:
            self._undo[-1] = inverse.compose(self._undo[-1])
        else:
            self._push(self._undo, inverse)
        self._redo.clear()
        self._last_splice = splice
        return self._apply_local(op)

    def undo(self) -> Send | None:
        """Take back the last undo step (remote edits made since stay)."""
        if not self._undo:
            return None
        inverse = self._undo.pop()
        self._push(self._redo, inverse.invert(self.text))
        self._last_splice = None
        return self._apply_local(inverse)

    def redo(self) -> Send | None:
        if not self._redo:
            return None
        op = self._redo.pop()
        self._push(self._undo, op.invert(self.text))
        self._last_splice = None
        return self._apply_local(op)

    def _push(self, stack: list[TextOp], step: TextOp) -> None:
        stack.append(step)
        if len(stack) > self.undo_limit:
            del stack[0]  # the oldest step is forgotten

    def _apply_local(self, op: TextOp) -> Send | None:
        self.text = op.apply(self.text)
        if self.buffer is not None:
            self.buffer = self.buffer.compose(op)
            return None
        self.buffer = op
        return self._send_buffered() if len(self.in_flight) < self.max_in_flight else None

    def _send_buffered(self) -> Send | None:
        """Put the buffer's first splice in flight; the rest stays buffered. Every operation
        sent is one splice: the wire's position-based edits carry no more (DESIGN §3)."""
        if self.buffer is None:
            return None
        head, self.buffer = _split_first(self.buffer)
        if head is None:
            return None
        self.in_flight.append(head)
        return Send(op=head, base=self.revision)

    @property
    def server_length(self) -> int:
        """The length of the server's text as this client knows it (what incoming server
        operations, and wire positions from the server, refer to)."""
        return self.outstanding.base_length if self.outstanding is not None else len(self.text)

    def receive(self, op: TextOp, *, revision: int | None = None) -> TextOp:
        """Apply another client's operation; return it as applied here.

        It is the next revision, or ``revision``: a rebased op that reaches the wire as several
        pieces carries one revision, and each piece is received in turn.
        """
        in_flight = self.in_flight
        for index, mine in enumerate(in_flight):
            in_flight[index], op = TextOp.transform(mine, op)
        if self.buffer is not None:
            self.buffer, op = TextOp.transform(self.buffer, op)
        self.text = op.apply(self.text)
        self.revision = self.revision + 1 if revision is None else revision
        self._rebase_steps(op)
        return op

    def rebase(self, text: str, *, revision: int, change: TextOp, landed: int = 0) -> Send | None:
        """Start over from the server's ``text`` at ``revision``, keeping every local edit not
        in it. ``change`` turns the server's text as this client knows it, after the first
        ``landed`` operations in flight (which ``text`` holds already), into ``text``. The
        other operations in flight and the buffer are transformed over it as one operation
        (the server's change goes right of a local insert at the same position, as a remote
        op does) and become the buffer; undo steps move past ``change`` as past a remote op.
        Returns the first splice to send."""
        mine = TextOp.identity(change.base_length)
        for op in self.in_flight[landed:]:
            mine = mine.compose(op)
        if self.buffer is not None:
            mine = mine.compose(self.buffer)
        mine, theirs = TextOp.transform(mine, change)
        self.text = mine.apply(text)
        self.revision = revision
        self.in_flight = []
        self.buffer = mine
        self._rebase_steps(theirs)
        return self._send_buffered()

    def _rebase_steps(self, op: TextOp) -> None:
        """The undo and redo steps, moved past ``op`` (applied after the local text)."""
        for stack in (self._undo, self._redo):
            remote = op
            for index in range(len(stack) - 1, -1, -1):
                stack[index], remote = TextOp.transform(stack[index], remote)
        self._last_splice = None

    def ack(self) -> Send | None:
        """The server applied our oldest in-flight operation; return the buffered one to send
        next, if any."""
        if not self.in_flight:
            raise RuntimeError("ack: nothing is awaiting confirmation")
        self.revision += 1
        del self.in_flight[0]
        return self._send_buffered()

    def resend(self) -> Send | None:
        """After a reconnect: the in-flight operation again (its op id makes it idempotent).
        A pipelining client (several in flight) re-joins instead: a new stream has no bridge."""
        if len(self.in_flight) > 1:
            raise RuntimeError("resend: several operations in flight; join the document again")
        if not self.in_flight:
            return None
        return Send(op=self.in_flight[0], base=self.revision)


def _continues(last: tuple[int, int, str] | None, new: tuple[int, int, str] | None) -> bool:
    """Does edit ``new`` carry on the typing or deleting of edit ``last`` (both splices)?"""
    if last is None or new is None:
        return False
    last_at, last_deleted, last_inserted = last
    at, deleted, inserted = new
    if inserted and not deleted and last_inserted and not last_deleted:
        return at == last_at + len(last_inserted)
    if deleted and not inserted and last_deleted and not last_inserted:
        return at + deleted == last_at or at == last_at  # backspace, forward delete
    return False


def _split_first(op: TextOp) -> tuple[TextOp | None, TextOp | None]:
    """``op`` as its first splice and the rest (which applies after it); ``(None, None)``
    for an operation that changes nothing."""
    length = op.base_length
    head: TextOp | None = None
    rest: TextOp | None = None
    for position, deleted, inserted in op.splices():
        piece = TextOp.splice(length, position, deleted, inserted)
        length = piece.target_length
        if head is None:
            head = piece
        else:
            rest = piece if rest is None else rest.compose(piece)
    return head, rest
