"""The client's copy of a document: the ot.js state machine, with no I/O.

At most one operation is in flight (sent, not yet acknowledged); later local edits are
composed into one buffered operation. States and what each event does:

=====================  ==============================  ==========================  ============
state                  local edit                      server op (someone else's)  ack
=====================  ==============================  ==========================  ============
synchronized           send it -> awaiting confirm     apply it                    (error)
awaiting confirm       buffer it -> awaiting w/ buffer  transform in-flight, apply  -> synchronized
awaiting with buffer   compose into the buffer         transform both, apply       send buffer
=====================  ==============================  ==========================  ============
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
    def __init__(self, text: str = "", *, revision: int = 0) -> None:
        self.text = text
        self.revision = revision
        self.outstanding: TextOp | None = None
        self.buffer: TextOp | None = None

    @property
    def state(self) -> State:
        if self.outstanding is None:
            return State.SYNCHRONIZED
        return State.AWAITING_CONFIRM if self.buffer is None else State.AWAITING_WITH_BUFFER

    def edit(self, op: TextOp) -> Send | None:
        """Apply a local edit; return what to send now, if anything."""
        self.text = op.apply(self.text)
        if self.outstanding is None:
            self.outstanding = op
            return Send(op=op, base=self.revision)
        self.buffer = op if self.buffer is None else self.buffer.compose(op)
        return None

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
        if self.outstanding is not None:
            self.outstanding, op = TextOp.transform(self.outstanding, op)
            if self.buffer is not None:
                self.buffer, op = TextOp.transform(self.buffer, op)
        self.text = op.apply(self.text)
        self.revision = self.revision + 1 if revision is None else revision
        return op

    def ack(self) -> Send | None:
        """The server applied our in-flight operation; return the buffered one to send next."""
        if self.outstanding is None:
            raise RuntimeError("ack: nothing is awaiting confirmation")
        self.revision += 1
        self.outstanding, self.buffer = self.buffer, None
        if self.outstanding is None:
            return None
        return Send(op=self.outstanding, base=self.revision)

    def resend(self) -> Send | None:
        """After a reconnect: the in-flight operation again (its op id makes it idempotent)."""
        if self.outstanding is None:
            return None
        return Send(op=self.outstanding, base=self.revision)
