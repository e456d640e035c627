"""Collaborative documents: editors, position-based edits, cursors, durability.

``DocumentHub.handle(command)`` takes one command from one stream (a *session*) and returns the
``Deliver`` events it causes. Edits arrive position-based, as the wire carries them
(``position``, ``deleted`` code points, ``inserted`` text, against revision ``base``); the hub
turns each into a ``TextOp`` on the document *as it was at that revision*, lets the
``ServerDocument`` rebase and apply it, records a ``SaveEdit`` write (``take_writes()``; the
runtime makes it durable before the events are delivered), then answers the sender ``Acked``
and every other editor ``Remote``: the op as applied, as splice pieces (a delete split by a
concurrent insert becomes two pieces, each relative to the text after the one before). An op that
rebasing emptied still takes a revision and reaches the others as a ``Remote`` with no pieces,
so every editor counts revisions the same way.

A stream that edits a document it has not opened opens it implicitly (snapshot first): the
original clients never sent ``join``. Editors are keyed by stream; re-sent ops are recognised by
``(user, op_id)`` so a retry after a reconnect, on a new stream, is acknowledged, not re-applied.

Storage is effects (``core/effects.py``): ``needs(command)`` names a document that must be
loaded first (``LoadDocument``), ``provide`` hands it back, ``take_writes()`` the edits to save.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .effects import DocumentRecord, LoadDocument, Read, SaveEdit, StoredEdit, Write
from .errors import InvalidArgument, LimitExceeded, WrongIdentity
from .events import Deliver
from .frozen import maker
from .limits import MAX_ID_LENGTH
from .ot import ServerDocument, TextOp
from .ot.server import Applied

# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenDocument:
    """Open a document: a snapshot, or with ``since`` (a revision the client holds, > 0) the
    edits after it, when the server still keeps them (a reconnecting client catches up).
    ``pending``: the op id of the client's edit in flight, whose fate a snapshot reports."""

    session: str
    document: str
    user: str = ""
    since: int | None = None
    pending: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EditDocument:
    session: str
    document: str
    base: int
    position: int
    deleted: int = 0
    inserted: str = ""
    op_id: str = ""
    user: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveCursor:
    session: str
    document: str
    base: int
    position: int
    length: int = 0
    user: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseSession:
    session: str


DocumentCommand = OpenDocument | EditDocument | MoveCursor | CloseSession


@dataclass(frozen=True, slots=True, kw_only=True)
class EditProposal:
    """An edit rebased onto revision ``base`` of a replica, to be committed as ``base + 1`` of
    the shared log (``DocumentHub.propose``). ``rebased``: the others' ops it was transformed
    over, past it (its sender's bridge, core/ot/server.py); ``snapshot``: the text after it,
    every ``snapshot_every`` revisions; ``keep_from``: the oldest revision still kept."""

    session: str
    document: str
    base: int
    edit: StoredEdit
    rebased: tuple[tuple[int, TextOp], ...] = ()
    rebasing: bool = False  # made against an older revision than ``base``
    snapshot: str | None = None
    keep_from: int = 0


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Piece:
    """One splice of an applied op: at ``position`` remove ``deleted``, insert ``inserted``."""

    position: int
    deleted: str
    inserted: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The text at ``revision``. ``op_id``: the join's ``pending`` edit, when the text holds
    it (empty: it never landed, and the client rebases it); either way the server ignores
    that edit's re-send."""

    document: str
    text: str
    revision: int
    op_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Acked:
    document: str
    revision: int
    op_id: str
    user: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Remote:
    document: str
    revision: int
    user: str
    op_id: str
    pieces: tuple[Piece, ...]  # empty: rebasing emptied the op (a noop revision)


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorMoved:
    document: str
    revision: int
    user: str
    position: int
    length: int


DocumentEvent = Snapshot | Acked | Remote | CursorMoved


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentLimits:
    max_inserted_chars: int = 64 * 1024  # code points per insert
    max_id_length: int = MAX_ID_LENGTH
    max_documents: int = 64  # per stream
    max_length: int = 10_000_000  # code points per document

    def __post_init__(self) -> None:
        for name in ("max_inserted_chars", "max_id_length", "max_documents", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentStatistics:
    """What ``DocumentHub.statistics()`` reports: now (sessions, documents, editors) and
    since the hub started (the counters)."""

    sessions: int
    documents_loaded: int
    editors: int
    edits_applied: int  # new revisions
    edits_rebased: int  # of those, made against an older revision: transformed first
    duplicates: int  # re-sent edits acknowledged again, not applied
    snapshots: int  # sent to a joining stream (each rejoin that could not catch up too)
    catch_ups: int  # rejoins answered with the edits missed instead


@dataclass(slots=True)
class _Editor:
    user: str
    cursor: tuple[int, int] | None = None
    # The op id of the edit in flight that this stream's join named and its snapshot answered
    # for (landed or not): its re-send, made against a revision the client has since left, is
    # not applied again. The client took the snapshot's word: an ack if it landed, else it
    # rebases the edit onto the snapshot and sends it again under a new op id.
    answered: str = ""


@dataclass(slots=True)
class _Open:
    document: ServerDocument
    editors: dict[str, _Editor] = field(default_factory=dict)  # session -> editor
    # Per sending session: who gets its ack (itself, if an editor) and who the op; built
    # once per change of the editors, not once per edit.
    recipients: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    carets: bool = False  # an editor has shared a caret: edits move carets

    def recipients_of(self, session: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``((session,), the other editors)``; ``()`` first if ``session`` is not one."""
        found = self.recipients.get(session)
        if found is None:
            editors = self.editors
            own = (session,) if session in editors else ()
            found = self.recipients[session] = (own, tuple(s for s in editors if s != session))
        return found

    def changed(self) -> None:
        """The editors changed: the recipients are built again."""
        self.recipients.clear()


@dataclass(slots=True)
class _Session:
    user: str
    documents: set[str] = field(default_factory=set)


class DocumentHub:
    def __init__(
        self,
        *,
        keep: int = 1000,
        snapshot_every: int = 100,
        limits: DocumentLimits | None = None,
    ) -> None:
        self._keep = keep
        self._snapshot_every = snapshot_every
        self.limits = limits or DocumentLimits()
        self._docs: dict[str, _Open] = {}
        self._sessions: dict[str, _Session] = {}
        self._staged: dict[str, _Open] = {}  # provided for the next command, not yet open
        self._writes: list[Write] = []
        self._edits_applied = self._edits_rebased = self._duplicates = 0
        self._snapshots = self._catch_ups = 0

    # -- storage effects -----------------------------------------------------------------

    def needs(self, command: DocumentCommand) -> Read | None:
        """What must be read before ``handle(command)``: a document not open in memory."""
        if isinstance(command, CloseSession):
            return None
        document = command.document
        if not document or len(document) > self.limits.max_id_length:
            return None  # handle() refuses it
        if document in self._docs or document in self._staged:
            return None
        return LoadDocument(document=document)

    def provide(self, read: Read, result: DocumentRecord | None) -> None:
        """Hand back the stored document ``needs`` asked for (None: never edited)."""
        if not isinstance(read, LoadDocument):
            raise TypeError(f"not a document read: {read!r}")
        if read.document not in self._docs:  # opened meanwhile by another stream: keep that
            self._staged[read.document] = _Open(self._load(result))

    def take_writes(self) -> list[Write]:
        """The writes the commands handled so far made, oldest first; each only once."""
        writes, self._writes = self._writes, []
        return writes

    def documents_of(self, session: str) -> frozenset[str]:
        state = self._sessions.get(session)
        return frozenset(state.documents) if state else frozenset()

    def statistics(self) -> DocumentStatistics:
        return DocumentStatistics(
            sessions=len(self._sessions),
            documents_loaded=len(self._docs),
            editors=sum(len(opened.editors) for opened in self._docs.values()),
            edits_applied=self._edits_applied,
            edits_rebased=self._edits_rebased,
            duplicates=self._duplicates,
            snapshots=self._snapshots,
            catch_ups=self._catch_ups,
        )

    def user_of(self, session: str) -> str | None:
        state = self._sessions.get(session)
        return state.user if state else None

    def is_open(self, document: str) -> bool:
        return document in self._docs

    def snapshot(self, document: str, stored: DocumentRecord | None = None) -> Snapshot:
        """The document's text and revision: from memory while it is open, else from what
        the store holds (``stored``, read with ``LoadDocument``; None: never edited)."""
        opened = self._docs.get(document)
        if opened is None:
            loaded = self._load(stored)
            return Snapshot(document=document, text=loaded.text, revision=loaded.revision)
        doc = opened.document
        return Snapshot(document=document, text=doc.text, revision=doc.revision)

    def history(self, document: str, after: int, limit: int) -> list[Remote] | None:
        """Up to ``limit`` edits of an open ``document`` after revision ``after``, in order,
        as every other editor received them: what a receiver that fell behind reads instead
        of live delivery. None: the document is not open, or ``after`` is no longer kept
        (its reader can only re-join)."""
        opened = self._docs.get(document)
        if opened is None:
            return None
        doc = opened.document
        if not doc.oldest_base <= after <= doc.revision:
            return None
        return [_remote(document, applied) for applied in doc.history_since(after, limit)]

    def text(self, document: str) -> str | None:
        """The text of a document open in memory (tests and tools)."""
        opened = self._docs.get(document)
        return opened.document.text if opened else None

    def handle(self, command: DocumentCommand) -> list[Deliver[DocumentEvent]]:
        try:
            return self._handle(command)
        finally:
            self._staged.clear()  # what was provided served this command, or nothing

    def _handle(self, command: DocumentCommand) -> list[Deliver[DocumentEvent]]:
        if isinstance(command, EditDocument):
            return self._edit(command)
        if isinstance(command, MoveCursor):
            return self._cursor(command)
        if isinstance(command, OpenDocument):
            events: list[Deliver[DocumentEvent]] = []
            self._open(
                command.session,
                command.document,
                command.user,
                events,
                again=True,
                since=command.since,
                pending=command.pending,
            )
            return events
        if isinstance(command, CloseSession):
            self._close(command.session)
            return []
        raise TypeError(f"not a document command: {command!r}")

    def _open(
        self,
        name: str,
        document: str,
        claimed: str,
        events: list[Deliver[DocumentEvent]],
        *,
        again: bool = False,
        since: int | None = None,
        pending: str = "",
    ) -> tuple[_Open, _Editor]:
        """Make ``name`` an editor of ``document`` (snapshot or catch-up into ``events`` if it
        was not, or if it asks ``again``)."""
        opened, user, editor = self._lookup(name, document, claimed)
        if editor is None:
            return opened, self._join(name, document, opened, user, events, since, pending)
        if again:
            events.extend(self._catch_up(name, document, opened, editor, since, pending))
        return opened, editor

    def _lookup(self, name: str, document: str, claimed: str) -> tuple[_Open, str, _Editor | None]:
        """Check that ``name`` may edit ``document``, changing nothing: the document (loaded
        if need be, not yet registered), the user, and the editor if it already is one."""
        if not document:
            raise InvalidArgument("document", "must not be empty")
        if len(document) > self.limits.max_id_length:
            raise InvalidArgument(
                "document", f"must be at most {self.limits.max_id_length} characters"
            )
        if len(claimed) > self.limits.max_id_length:
            raise InvalidArgument("user", f"must be at most {self.limits.max_id_length} characters")
        session = self._sessions.get(name)
        user = claimed or (session.user if session else "") or name
        if session is not None and user != session.user:
            raise WrongIdentity("user", f"this stream is bound to {session.user!r}")
        opened = self._docs.get(document)
        if opened is not None and name in opened.editors:
            return opened, user, opened.editors[name]
        if session is not None and len(session.documents) >= self.limits.max_documents:
            raise LimitExceeded(
                "document", f"at most {self.limits.max_documents} documents per stream"
            )
        opened = opened or self._staged.get(document)
        if opened is None:
            raise RuntimeError(f"document {document!r} is not loaded: provide needs() first")
        return opened, user, None

    def _join(
        self,
        name: str,
        document: str,
        opened: _Open,
        user: str,
        events: list[Deliver[DocumentEvent]],
        since: int | None = None,
        pending: str = "",
    ) -> _Editor:
        self._docs[document] = opened
        session = self._sessions.get(name) or self._sessions.setdefault(name, _Session(user=user))
        session.documents.add(document)
        editor = opened.editors[name] = _Editor(user=user)
        opened.changed()
        events.extend(self._catch_up(name, document, opened, editor, since, pending))
        return editor

    def _catch_up(
        self,
        name: str,
        document: str,
        opened: _Open,
        editor: _Editor,
        since: int | None,
        pending: str = "",
    ) -> list[Deliver[DocumentEvent]]:
        """The edits after ``since``, as ``Remote``s in revision order (its own among them,
        which the client takes as acks by op id); a snapshot when ``since`` is not given,
        no longer kept, or ahead of the server (which lost edits), saying whether the
        ``pending`` edit is in it (the client rebases what is not onto it)."""
        doc = opened.document
        if since is None or not doc.oldest_base <= since <= doc.revision:
            landed = doc.was_applied(editor.user, pending)
            editor.answered = pending
            self._snapshots += 1
            snapshot = Snapshot(
                document=document,
                text=doc.text,
                revision=doc.revision,
                op_id=pending if landed else "",
            )
            return [Deliver(to=(name,), message=snapshot)]
        self._catch_ups += 1
        return [
            Deliver(to=(name,), message=_remote(document, applied))
            for applied in doc.history_since(since)
        ]

    def _load(self, record: DocumentRecord | None) -> ServerDocument:
        """The stored snapshot, replayed forward through the stored edits: their op ids are
        recognised again and their revisions are valid bases, even across a restart."""
        if record is None:
            return ServerDocument(keep=self._keep)
        doc = ServerDocument(record.text, revision=record.revision, keep=self._keep)
        for author, op_id, revision in record.earlier:
            doc.remember(author, op_id, revision)
        for edit in record.edits:
            doc.receive(edit.op, base=doc.revision, author=edit.author, op_id=edit.op_id)
        return doc

    def _edit(self, cmd: EditDocument) -> list[Deliver[DocumentEvent]]:
        events: list[Deliver[DocumentEvent]] = []
        found = self._prepare(cmd, events)
        if found is None:
            return events
        opened, editor = found
        doc = opened.document
        current = cmd.base == doc.revision
        applied = doc.splice(
            cmd.position,
            cmd.deleted,
            cmd.inserted,
            base=cmd.base,
            author=editor.user,
            op_id=cmd.op_id,
            session=cmd.session,
        )
        self._edits_rebased += not current
        revision = applied.revision
        self._writes.append(
            _save_edit(
                cmd.document,
                revision,
                _stored_edit(applied.op, editor.user, cmd.op_id),
                doc.text if revision % self._snapshot_every == 0 else None,
                revision - self._keep + 1,
            )
        )
        self._applied(cmd.document, opened, applied, cmd.session, events)
        return events

    def _prepare(
        self, cmd: EditDocument, events: list[Deliver[DocumentEvent]]
    ) -> tuple[_Open, _Editor] | None:
        """Check an edit and make its sender an editor (snapshot first, into ``events``);
        None when it needs no new revision: a re-send (its ack into ``events``) or the edit a
        join's snapshot answered for."""
        if cmd.position < 0:
            raise InvalidArgument("position", "must not be negative")
        if cmd.deleted < 0:
            raise InvalidArgument("length", "must not be negative")
        if len(cmd.inserted) > self.limits.max_inserted_chars:
            raise LimitExceeded(
                "content", f"must be at most {self.limits.max_inserted_chars} characters"
            )
        if len(cmd.op_id) > self.limits.max_id_length:
            raise InvalidArgument(
                "op_id", f"must be at most {self.limits.max_id_length} characters"
            )
        if not (cmd.deleted or cmd.inserted):
            raise InvalidArgument("content", "an edit must delete or insert something")
        opened, user, editor = self._lookup(cmd.session, cmd.document, cmd.user)
        if editor is not None and editor.answered and cmd.op_id == editor.answered:
            editor.answered = ""  # sent before its snapshot answered for it (see _Editor)
            return None
        doc = opened.document
        duplicate = doc.duplicate_of(user, cmd.op_id)
        if duplicate is not None:
            if editor is None:
                self._join(cmd.session, cmd.document, opened, user, events)
            self._duplicates += 1
            ack = Acked(
                document=cmd.document, revision=duplicate.revision, op_id=cmd.op_id, user=user
            )
            events.append(Deliver(to=(cmd.session,), message=ack))
            return None
        if len(cmd.inserted) - cmd.deleted + doc.length > self.limits.max_length:
            raise LimitExceeded("content", f"documents hold at most {self.limits.max_length}")
        if editor is None:  # an edit without join: join first (snapshot before the ack),
            # once the edit is known to fit (``splice`` checks that itself, changing nothing)
            doc.check_splice(cmd.position, cmd.deleted, base=cmd.base, session=cmd.session)
            editor = self._join(cmd.session, cmd.document, opened, user, events)
        return opened, editor

    def _applied(
        self,
        document: str,
        opened: _Open,
        applied: Applied,
        session: str,
        events: list[Deliver[DocumentEvent]],
    ) -> list[Deliver[DocumentEvent]]:
        """What a new revision tells the editors, into ``events``: the ack to its sender's
        ``session`` (if it is one here), the op to every other; carets move past it."""
        self._edits_applied += 1
        if opened.carets:
            for other in opened.editors.values():
                if other.cursor is not None:
                    start, size = other.cursor
                    end = applied.op.transform_index(start + size)
                    start = applied.op.transform_index(start)
                    other.cursor = (start, max(0, end - start))
        own, others = opened.recipients_of(session)
        if own:
            ack = _acked(document, applied.revision, applied.op_id, applied.author)
            events.append(_deliver(own, ack))
        if others:
            events.append(_deliver(others, _remote(document, applied)))
        return events

    # -- many nodes: edits proposed to a shared log, observed in its order ----------------

    def propose(
        self, cmd: EditDocument
    ) -> tuple[list[Deliver[DocumentEvent]], EditProposal | None]:
        """Check an edit and rebase it onto this replica's head without applying it: many
        nodes share one revision log (DESIGN §10), so the next revision is whichever the log
        commits first. The events (a snapshot for an implicit join; the ack of a re-send)
        come first; the proposal, None when nothing is to be committed, goes to the log,
        and once committed at ``base + 1`` to ``observe_edit``. Refused as ``handle`` would."""
        events: list[Deliver[DocumentEvent]] = []
        found = self._prepare(cmd, events)
        if found is None:
            return events, None
        opened, editor = found
        doc = opened.document
        op, rebased = doc.rebase_splice(
            cmd.position, cmd.deleted, cmd.inserted, base=cmd.base, session=cmd.session
        )
        revision = doc.revision + 1
        snapshot = op.apply(doc.text) if revision % self._snapshot_every == 0 else None
        proposal = EditProposal(
            session=cmd.session,
            document=cmd.document,
            base=doc.revision,
            edit=StoredEdit(op=op, author=editor.user, op_id=cmd.op_id),
            rebased=tuple(rebased),
            rebasing=cmd.base != doc.revision,
            snapshot=snapshot,
            keep_from=revision - self._keep + 1,
        )
        return events, proposal

    def observe_edit(
        self, document: str, revision: int, edit: StoredEdit, proposal: EditProposal | None = None
    ) -> list[Deliver[DocumentEvent]]:
        """The shared log's ``revision`` of ``document`` is ``edit`` (made on ``revision - 1``):
        apply it to this replica and tell the editors here (its ``proposal``, if this node
        proposed it: acked to its sender). Revisions arrive in order (``core/follow.py``);
        one this replica has is ignored, and a document not open here is not followed."""
        opened = self._docs.get(document)
        if opened is None or revision <= opened.document.revision:
            return []
        doc = opened.document
        if revision != doc.revision + 1:
            raise ValueError(f"revision {revision} of {document!r} observed at {doc.revision}")
        session = ""
        rebased: list[tuple[int, TextOp]] = []
        if proposal is not None and proposal.session in opened.editors:
            session, rebased = proposal.session, list(proposal.rebased)
            self._edits_rebased += proposal.rebasing
        applied = doc.apply_next(
            edit.op, author=edit.author, op_id=edit.op_id, session=session, rebased=rebased
        )
        return self._applied(document, opened, applied, session, [])

    def editors_of(self, document: str) -> tuple[str, ...]:
        """The sessions editing ``document`` here."""
        opened = self._docs.get(document)
        return tuple(opened.editors) if opened else ()

    def revision(self, document: str) -> int | None:
        """The revision of a document open here (None: not open)."""
        opened = self._docs.get(document)
        return opened.document.revision if opened else None

    def _cursor(self, cmd: MoveCursor) -> list[Deliver[DocumentEvent]]:
        if cmd.position < 0 or cmd.length < 0:
            raise InvalidArgument("position", "a cursor's position and length must not be negative")
        events: list[Deliver[DocumentEvent]] = []
        opened, user, editor = self._lookup(cmd.session, cmd.document, cmd.user)
        doc = opened.document
        length = doc.length_at(cmd.base)
        if cmd.position + cmd.length > length:
            raise InvalidArgument(
                "position", f"the cursor is beyond the {length} code points of revision {cmd.base}"
            )
        if editor is None:
            editor = self._join(cmd.session, cmd.document, opened, user, events)
        start, end = cmd.position, cmd.position + cmd.length
        for op in doc.ops_since(cmd.base):
            start, end = op.transform_index(start), op.transform_index(end)
        editor.cursor = (start, end - start)
        opened.carets = True
        others = opened.recipients_of(cmd.session)[1]
        if others:
            moved = CursorMoved(
                document=cmd.document,
                revision=doc.revision,
                user=editor.user,
                position=start,
                length=end - start,
            )
            events.append(Deliver(to=others, message=moved))
        return events

    def _close(self, name: str) -> None:
        session = self._sessions.pop(name, None)
        if session is None:
            return
        for document in session.documents:
            opened = self._docs[document]
            del opened.editors[name]
            opened.changed()
            opened.document.forget(name)
            if not opened.editors:
                del self._docs[document]  # stored; the next open reloads it


# The events and writes every edit makes, built without the dataclasses' keyword ``__init__``
# (core/frozen.py): positional, every field, in declaration order.
_acked = maker(Acked)
_remote_event = maker(Remote)
_piece = maker(Piece)
_deliver = maker(Deliver)
_save_edit = maker(SaveEdit)
_stored_edit = maker(StoredEdit)


def _remote(document: str, applied: Applied) -> Remote:
    """An applied op as the other editors receive it: its splices, each with what it removed."""
    splices = applied.pieces()
    if len(splices) == 1:  # the common case: one splice, without a generator
        pieces: tuple[Piece, ...] = (_piece(*splices[0]),)
    else:
        pieces = tuple(_piece(*splice) for splice in splices)
    return _remote_event(document, applied.revision, applied.author, applied.op_id, pieces)
