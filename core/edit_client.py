"""The client side of CollaborativeEdit: what a reconnecting editor must remember so its edits
land once and its text converges, across connections.

``ClientEditor`` wraps the ot.js state machine (``ClientDocument``) with what the wire and the
reconnects add, driven like ``ClientRooms``, with no I/O: the application's calls (``edit``,
``undo``, ``redo``) apply at once to the local text and return the requests to put on the wire;
after every (re)connect, ``connected()`` returns what re-establishes the session; each message
from the server goes through ``receive``, which returns what the application should see and any
requests to send.

- Every operation sent carries an op id (``<prefix>-<n>``); the one in flight (one at a time)
  keeps its id across connections, so the server applies a re-send at most once.
- ``connected()`` joins *at the revision held* (0 before the first snapshot: a snapshot), then
  re-sends the operation in flight under its id.
- Joining at a revision makes the server send the edits missed; our own in-flight operation
  among them (ours, under its op id) is its acknowledgement, and the further pieces of that
  operation (a rebased op may travel as several, with one revision) are skipped. The ack that
  answers the re-send then comes for an op no longer in flight and is ignored.
- A snapshot after the first (the server no longer kept what we missed, or lost edits, or we
  held revision 0) says whether our operation in flight (named by the join) is in it. Every
  local edit that is not is *rebased* onto it: the server's change since our base, as an
  operation (a character diff of the text we last knew the server to hold, with our landed
  operation applied, against the snapshot), is transformed against them, and they go out
  again as usual, under new op ids (the server ignores the re-send of the op its snapshot
  answered for). No local edit is lost: the application sees a ``rebase``.
- An operation the server refused (``EditRejected``: out of range, outside the token's claims)
  is never re-sent: the application sees a ``refused`` change with the rejection, and the
  editor asks for a snapshot and starts over from it (a ``reset``, ``lost``): its local text
  holds an edit the server will never have, and the edits made on top of it with it.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass

from .documents import DocumentLimits
from .errors import LimitExceeded, NotJoined, Rejection
from .ot.client import ClientDocument, Send
from .ot.gaptext import GapText
from .ot.text import TextOp

# -- requests: what the client puts on the wire -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinDocument:
    """Open ``document``: a snapshot when ``revision`` is 0, else the edits after it.
    ``pending``: the op id of our operation in flight (a snapshot says whether it landed)."""

    document: str
    user: str
    revision: int = 0
    pending: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SendEdit:
    """One splice against revision ``base``: at ``position`` remove ``deleted`` code points,
    insert ``inserted``."""

    document: str
    user: str
    position: int
    deleted: int
    inserted: str
    base: int
    op_id: str


EditRequest = JoinDocument | SendEdit

# -- what the server sends ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentSnapshot:
    """The server's text at ``revision``; ``op_id``: the join's pending op, if it is in it."""

    text: str
    revision: int
    op_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EditAck:
    """The server applied (or had applied) our operation ``op_id`` as ``revision``."""

    op_id: str
    revision: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerEdit:
    """One piece of an operation the server applied as ``revision``, by ``user`` under
    ``op_id``; positions refer to the text after the previous piece. A piece that changes
    nothing (``deleted`` 0, ``inserted`` empty) is a noop revision."""

    user: str
    op_id: str
    revision: int
    position: int = 0
    deleted: int = 0
    inserted: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EditRejected:
    """The server refused our operation ``op_id``: it applied nothing."""

    op_id: str
    rejection: Rejection


EditReply = DocumentSnapshot | EditAck | ServerEdit | EditRejected

# -- what the application sees --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentChange:
    """The document changed: ``kind`` is "snapshot" (the first), "edit" (someone else's),
    "rebase" (a later snapshot, with our unacknowledged edits rebased onto it), "refused"
    (the server refused an edit of ours: ``rejection`` says why; a reset follows) or "reset"
    (the snapshot after a refusal: the text is the server's, and ``lost`` local edits, made
    on top of the refused one, are gone)."""

    kind: str
    user: str
    revision: int
    text: str
    lost: bool = False
    rejection: Rejection | None = None


class ClientEditor:
    """One user's editor of one document, across connections. ``id_prefix`` makes this
    client's op ids unique (a random one by default)."""

    def __init__(
        self,
        user: str,
        document: str,
        *,
        id_prefix: str | None = None,
        limits: DocumentLimits | None = None,
    ) -> None:
        self.user, self.document = user, document
        self.limits = limits or DocumentLimits()
        self.id_prefix = secrets.token_hex(6) if id_prefix is None else id_prefix
        self.doc = ClientDocument()
        self.synced = False  # a snapshot has arrived
        # The server's text at our revision, as we know it: what a later snapshot is diffed
        # against to rebase our unacknowledged edits.
        self._confirmed = GapText()
        self._ids: list[str] = []  # op id of each in-flight op (one: the ot.js client)
        self._counter = itertools.count(1)
        self._skip: tuple[int, str] | None = None  # (revision, op id) of ours, acked by catch-up
        self._awaiting_snapshot = False  # see connected()
        self._start_over = False  # an op was refused: the next snapshot is a reset
        # The in-flight op as it first went out: what a reconnect re-sends (see connected()).
        self._first_sent: SendEdit | None = None
        self._resent_first = ""  # the op id of the first-sent form re-sent on a reconnect

    # -- reading --------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self.doc.text

    @property
    def revision(self) -> int:
        return self.doc.revision

    @property
    def in_flight(self) -> str | None:
        """The op id of the operation awaiting its ack, if any."""
        return self._ids[0] if self._ids else None

    @property
    def settled(self) -> bool:
        """Synced, and every local edit acknowledged."""
        return self.synced and self.doc.outstanding is None and self.doc.buffer is None

    # -- the application's calls ----------------------------------------------------------

    def edit(self, position: int, deleted: int, inserted: str) -> list[EditRequest]:
        """Replace ``deleted`` code points at ``position`` of the local text with ``inserted``
        (applied at once); raises ValueError if the range does not fit the text."""
        if not self.synced:
            raise NotJoined("document", "wait for the snapshot before editing")
        limit = self.limits.max_inserted_chars
        if len(inserted) > limit:  # the server's default limit: refused at once, not sent
            raise LimitExceeded("content", f"must be at most {limit} characters")
        op = TextOp.splice(len(self.doc.text), position, deleted, inserted)
        return self._sent(self.doc.edit(op))

    def undo(self) -> list[EditRequest]:
        return self._sent(self.doc.undo())

    def redo(self) -> list[EditRequest]:
        return self._sent(self.doc.redo())

    # -- the connection's -----------------------------------------------------------------

    def connected(self) -> list[EditRequest]:
        """What a new connection must send first: a join at the revision held, naming the
        operation in flight, then that operation under its op id. If the join is answered
        by the edits we missed, the re-send lands once (op ids); if by a snapshot, the
        snapshot says whether it had landed, and the server ignores the re-send.

        At revision 0 the join is a snapshot request (the wire's ``version`` 0), so a snapshot
        will answer it: until it does, edits stay local (sent against revision 0 they would
        be applied after it, and rebased onto it as well)."""
        if self._start_over:  # a snapshot to start over from; nothing of ours goes again
            return [JoinDocument(document=self.document, user=self.user)]
        revision = self.doc.revision if self.synced else 0
        resend = self.doc.resend() if self.synced else None
        join = JoinDocument(
            document=self.document,
            user=self.user,
            revision=revision,
            pending=self._ids[0] if resend is not None else "",
        )
        self._awaiting_snapshot = revision == 0
        if resend is None or self._awaiting_snapshot:
            return [join]
        if len(list(resend.op.splices())) != 1:
            # Remote edits split it (an insert inside a range it deletes) or emptied it: no
            # single wire edit carries it rebased, so it goes as it first went out, at its
            # first base, and the server rebases it over the same edits we did; or, never
            # sent, it waits for a snapshot to be rebased onto.
            # Once: if that connection ends too before the ack (its base no longer kept, the
            # server ends the call "join again"), sending it so again would loop forever.
            first = self._first_sent
            if first is not None and first.op_id == self._ids[0] != self._resent_first:
                self._resent_first = first.op_id
                return [join, first]
            self._awaiting_snapshot = True
            return [JoinDocument(document=self.document, user=self.user, pending=self._ids[0])]
        return [join, self._request(resend, self._ids[0])]

    def receive(self, message: EditReply) -> tuple[list[DocumentChange], list[EditRequest]]:
        """What the application sees of ``message``, and what to send in reply."""
        if isinstance(message, DocumentSnapshot):
            return self._snapshot(message)
        if isinstance(message, EditRejected):
            return self._refused(message)
        if isinstance(message, EditAck):
            if self._ids and message.op_id == self._ids[0]:
                return [], self._acked()
            return [], []  # a second ack for an op the catch-up already acknowledged
        ours = message.user == self.user
        if ours and self._ids and message.op_id == self._ids[0]:
            # Our in-flight op, applied before we reconnected: the catch-up is its ack.
            self._skip = (message.revision, message.op_id)
            return [], self._acked()
        if ours and self._skip == (message.revision, message.op_id):
            return [], []  # a further piece of that op, already counted
        self._apply_remote(message)
        return [self._change("edit", message.user)], []

    # -- internals ------------------------------------------------------------------------

    def _snapshot(
        self, message: DocumentSnapshot
    ) -> tuple[list[DocumentChange], list[EditRequest]]:
        self._skip = None
        self._awaiting_snapshot = False
        if self._start_over:
            self._start_over = False
            lost = bool(self._ids) or self.doc.buffer is not None
            self._confirmed = GapText(message.text)
            self.doc = ClientDocument(message.text, revision=message.revision)
            self._ids.clear()
            return [self._change("reset", "", lost=lost)], []
        if not self.synced:
            self._confirmed = GapText(message.text)
            self.doc = ClientDocument(message.text, revision=message.revision)
            self.synced = True
            return [self._change("snapshot", "")], []
        doc = self.doc
        before = (doc.text, doc.revision)
        landed = 1 if self._ids and message.op_id == self._ids[0] else 0
        base = str(self._confirmed)
        if landed:
            base = doc.in_flight[0].apply(base)
        change = TextOp.diff(base, message.text)
        send = doc.rebase(message.text, revision=message.revision, change=change, landed=landed)
        self._confirmed = GapText(message.text)
        self._ids.clear()
        requests = self._sent(send)
        if (doc.text, doc.revision) == before:
            return [], requests  # e.g. a rejoin at revision 0 that nothing had changed
        return [self._change("rebase", "")], requests

    def _refused(self, message: EditRejected) -> tuple[list[DocumentChange], list[EditRequest]]:
        change = DocumentChange(
            kind="refused",
            user=self.user,
            revision=self.doc.revision,
            text=self.doc.text,
            rejection=message.rejection,
        )
        if not self._ids or message.op_id != self._ids[0] or self._start_over:
            return [change], []  # not the op in flight (or already starting over)
        self._start_over = True
        return [change], [JoinDocument(document=self.document, user=self.user)]

    def _sent(self, send: Send | None) -> list[EditRequest]:
        if send is None:
            return []
        op_id = f"{self.id_prefix}-{next(self._counter)}"
        self._ids.append(op_id)
        if self._awaiting_snapshot:
            return []  # in flight as far as the document goes; the snapshot's rebase sends it
        request = self._first_sent = self._request(send, op_id)
        return [request]

    def _request(self, send: Send, op_id: str) -> SendEdit:
        [(position, deleted, inserted)] = send.op.splices()
        return SendEdit(
            document=self.document,
            user=self.user,
            position=position,
            deleted=deleted,
            inserted=inserted,
            base=send.base,
            op_id=op_id,
        )

    def _acked(self) -> list[EditRequest]:
        self._ids.pop(0)
        self._confirmed.apply(self.doc.in_flight[0])
        return self._sent(self.doc.ack())

    def _apply_remote(self, message: ServerEdit) -> None:
        doc = self.doc
        if not message.deleted and not message.inserted:
            op = TextOp.identity(doc.server_length)
        else:
            op = TextOp.splice(
                doc.server_length, message.position, message.deleted, message.inserted
            )
        self._confirmed.apply(op)
        doc.receive(op, revision=message.revision)

    def _change(self, kind: str, user: str, *, lost: bool = False) -> DocumentChange:
        doc = self.doc
        return DocumentChange(kind=kind, user=user, revision=doc.revision, text=doc.text, lost=lost)
