"""ClientEditor: what a reconnecting editor remembers. Unit tests for each rule, then a state
machine that runs editors against a server (the core's ``ServerDocument``, with the wire's
join-at-revision catch-up and op-id idempotency) over in-memory FIFO links that a disconnect
cuts, losing whatever was in flight both ways. Edits made while disconnected are not sent (the
reconnect loop's rule: the next ``connected()`` must carry them). After everything settles,
every editor holds the server's text, nothing is awaiting an ack, and (inserts only) every
character typed is in the text exactly once."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interplay.core import NotJoined
from interplay.core.edit_client import (
    ClientEditor,
    DocumentChange,
    DocumentSnapshot,
    EditAck,
    EditReply,
    EditRequest,
    JoinDocument,
    SendEdit,
    ServerEdit,
)
from interplay.core.errors import Expired
from interplay.core.ot import ServerDocument, TextOp


def synced(text: str = "", revision: int = 0) -> ClientEditor:
    editor = ClientEditor("ann", "d", id_prefix="p")
    editor.connected()
    editor.receive(DocumentSnapshot(text=text, revision=revision))
    return editor


def test_first_connection_joins_for_a_snapshot_and_edits_carry_op_ids() -> None:
    editor = ClientEditor("ann", "d", id_prefix="p")
    assert editor.connected() == [JoinDocument(document="d", user="ann", revision=0)]
    with pytest.raises(NotJoined):
        editor.edit(0, 0, "x")  # before the snapshot: it would be overwritten
    shown, replies = editor.receive(DocumentSnapshot(text="hello", revision=4))
    assert shown == [DocumentChange(kind="snapshot", user="", revision=4, text="hello")]
    assert replies == [] and editor.synced and editor.settled
    assert editor.edit(5, 0, "!") == [
        SendEdit(document="d", user="ann", position=5, deleted=0, inserted="!", base=4, op_id="p-1")
    ]
    assert editor.text == "hello!" and editor.in_flight == "p-1" and not editor.settled
    assert editor.edit(0, 1, "H") == []  # buffered behind the one in flight
    [send] = editor.receive(EditAck(op_id="p-1", revision=5))[1]
    assert send == SendEdit(
        document="d", user="ann", position=0, deleted=1, inserted="H", base=5, op_id="p-2"
    )
    assert editor.receive(EditAck(op_id="p-2", revision=6)) == ([], [])
    assert editor.settled and editor.revision == 6 and editor.text == "Hello!"


def test_a_reconnect_joins_at_the_revision_and_resends_the_op_in_flight_under_its_id() -> None:
    editor = synced("abc", 2)
    [sent] = editor.edit(3, 0, "d")
    editor.edit(0, 0, ">")  # buffered
    assert editor.connected() == [
        JoinDocument(document="d", user="ann", revision=2, pending="p-1"),
        sent,
    ]
    # Someone else's edit in the catch-up moves ours; a later re-send is rebased on it.
    editor.receive(ServerEdit(user="bob", op_id="b-1", revision=3, position=0, inserted="z"))
    assert editor.text == ">zabcd"
    [_, resend] = editor.connected()
    assert isinstance(resend, SendEdit)
    assert (resend.op_id, resend.base, resend.position) == ("p-1", 3, 4)


def test_our_own_op_in_the_catch_up_is_its_ack_and_its_pieces_and_second_ack_are_skipped() -> None:
    editor = synced("abcdef", 1)
    [sent] = editor.edit(1, 4, "")  # delete "bcde"
    editor.edit(0, 0, "X")  # buffered: goes out once p-1 is acknowledged
    editor.connected()
    # Applied before we reconnected, split in two by bob's concurrent insert at 3 (rev 2).
    bob = ServerEdit(user="bob", op_id="b-1", revision=2, position=3, inserted="__")
    assert editor.receive(bob)[0][0].text == "Xa__f"
    shown, replies = editor.receive(
        ServerEdit(user="ann", op_id="p-1", revision=3, position=1, deleted=2)
    )
    assert shown == [] and [r.op_id for r in replies if isinstance(r, SendEdit)] == ["p-2"]
    piece = ServerEdit(user="ann", op_id="p-1", revision=3, position=3, deleted=2)
    assert editor.receive(piece) == ([], [])  # the rest of the same op
    assert editor.receive(EditAck(op_id="p-1", revision=3)) == ([], [])  # the re-send's ack
    assert editor.in_flight == "p-2" and editor.revision == 3 and editor.text == "Xa__f"
    assert sent.op_id == "p-1"


def test_a_later_snapshot_rebases_the_unacknowledged_edits_onto_it() -> None:
    editor = synced("abc def", 5)
    [first] = editor.edit(7, 0, "!")  # in flight
    editor.edit(0, 1, "A")  # buffered
    assert editor.connected()[0] == JoinDocument(
        document="d", user="ann", revision=5, pending="p-1"
    )
    # The server trimmed revision 5; meanwhile someone turned "abc def" into "abc, def".
    shown, requests = editor.receive(DocumentSnapshot(text="abc, def", revision=9))
    assert shown == [DocumentChange(kind="rebase", user="", revision=9, text="Abc, def!")]
    [send] = requests  # the rebased edits, one splice at a time, under new op ids
    assert isinstance(send, SendEdit) and send.base == 9 and send.op_id == "p-2"
    assert (send.position, send.deleted, send.inserted) == (0, 1, "A")
    assert editor.receive(EditAck(op_id="p-1", revision=7)) == ([], [])  # the old id: ignored
    [then] = editor.receive(EditAck(op_id="p-2", revision=10))[1]
    assert isinstance(then, SendEdit) and (then.position, then.inserted) == (8, "!")
    editor.receive(EditAck(op_id=then.op_id, revision=11))
    assert editor.settled and editor.text == "Abc, def!" and first.op_id == "p-1"


def test_a_snapshot_holding_the_op_in_flight_rebases_only_the_rest() -> None:
    editor = synced("abc", 5)
    editor.edit(3, 0, "d")  # in flight, and it landed before the connection broke
    editor.edit(0, 0, ">")  # buffered
    editor.connected()
    shown, requests = editor.receive(DocumentSnapshot(text="xabcd", revision=9, op_id="p-1"))
    assert shown == [DocumentChange(kind="rebase", user="", revision=9, text=">xabcd")]
    [send] = requests
    assert isinstance(send, SendEdit) and (send.position, send.inserted, send.base) == (0, ">", 9)


def test_a_snapshot_that_changes_nothing_shows_nothing_and_resends() -> None:
    editor = synced("", 0)
    [sent] = editor.edit(0, 0, "x")
    assert editor.connected() == [JoinDocument(document="d", user="ann", revision=0, pending="p-1")]
    assert editor.edit(1, 0, "y") == []  # until the snapshot answers, edits stay local
    shown, [again] = editor.receive(DocumentSnapshot(text="", revision=0))
    assert shown == [] and isinstance(again, SendEdit) and sent.op_id == "p-1"
    assert (again.inserted, again.base, again.op_id) == ("xy", 0, "p-2")


def test_a_noop_revision_advances_and_undo_takes_back_only_our_edit() -> None:
    editor = synced("ab", 1)
    editor.receive(ServerEdit(user="bob", op_id="b-1", revision=2))
    assert editor.revision == 2 and editor.text == "ab"
    editor.edit(2, 0, "c")
    editor.receive(EditAck(op_id="p-1", revision=3))
    editor.receive(ServerEdit(user="bob", op_id="b-2", revision=4, position=0, inserted="<"))
    [undo] = editor.undo()
    assert isinstance(undo, SendEdit) and (undo.position, undo.deleted, undo.base) == (3, 1, 4)
    assert editor.text == "<ab"


@given(data=st.data(), size=st.integers(0, 12))
def test_a_rebase_keeps_every_local_insert_and_what_of_the_snapshot_they_did_not_delete(
    data: st.DataObject, size: int
) -> None:
    """Every character is unique: the base's, the server's (its snapshot deleted some of the
    base and inserted others) and the editor's own (unacknowledged: in flight and buffered).
    After the rebase the text is exactly the snapshot without the base characters the editor
    deleted, plus every character the editor inserted and still holds, each once and in
    order."""
    base = "".join(chr(0x100 + i) for i in range(size))
    editor = synced(base, 1)
    for n in range(data.draw(st.integers(1, 5))):
        text = editor.text
        position = data.draw(st.integers(0, len(text)))
        deleted = data.draw(st.integers(0, len(text) - position))
        inserted = "".join(chr(0x4E00 + 8 * n + i) for i in range(data.draw(st.integers(0, 3))))
        if deleted or inserted:
            editor.edit(position, deleted, inserted)
    local = editor.text
    kept = data.draw(st.lists(st.booleans(), min_size=size, max_size=size))
    snapshot = list(c for c, keep in zip(base, kept, strict=True) if keep)
    for n in range(data.draw(st.integers(0, 4))):
        snapshot.insert(data.draw(st.integers(0, len(snapshot))), chr(0x3040 + n))
    server_text = "".join(snapshot)
    editor.connected()
    editor.receive(DocumentSnapshot(text=server_text, revision=9))
    deleted_by_editor = set(base) - set(local)
    mine = [c for c in local if c not in base]
    expected_server = [c for c in server_text if c not in deleted_by_editor]
    assert sorted(editor.text) == sorted(expected_server + mine)  # each exactly once
    assert [c for c in editor.text if c in server_text] == expected_server  # in order
    assert [c for c in editor.text if c in mine] == mine


# -- the state machine ----------------------------------------------------------------------

USERS = ["ann", "bob", "cé"]


@dataclass
class Link:
    session: str
    up: deque[EditRequest] = field(default_factory=deque)
    down: deque[EditReply] = field(default_factory=deque)


class Server:
    """The wire contract of CollaborativeEdit (DESIGN §4), on the core's ``ServerDocument``,
    keeping the last ``keep`` revisions."""

    def __init__(self, keep: int = 10_000) -> None:
        self.doc = ServerDocument(keep=keep)
        self.sessions: dict[str, str] = {}  # session -> user, joined
        self.answered: dict[str, str] = {}  # session -> the op id its snapshot answered for

    def handle(self, session: str, request: EditRequest) -> list[tuple[str, EditReply]]:
        doc = self.doc
        if isinstance(request, JoinDocument):
            self.sessions[session] = request.user
            if request.revision == 0 or not doc.oldest_base <= request.revision <= doc.revision:
                landed = doc.was_applied(request.user, request.pending)
                self.answered[session] = request.pending
                snapshot = DocumentSnapshot(
                    text=doc.text, revision=doc.revision, op_id=request.pending if landed else ""
                )
                return [(session, snapshot)]
            return [
                (session, piece)
                for applied in doc.history_since(request.revision)
                for piece in self._pieces(applied.op, applied.removed, applied)
            ]
        if request.op_id and self.answered.get(session) == request.op_id:
            del self.answered[session]  # sent before its snapshot answered for it
            return []
        self.sessions.setdefault(session, request.user)  # an edit joins implicitly
        op = TextOp.splice(
            doc.length_at(request.base), request.position, request.deleted, request.inserted
        )
        applied = doc.receive(op, base=request.base, author=request.user, op_id=request.op_id)
        out: list[tuple[str, EditReply]] = [
            (session, EditAck(op_id=request.op_id, revision=applied.revision))
        ]
        if not applied.duplicate:
            for other in self.sessions:
                if other != session:
                    out += [(other, p) for p in self._pieces(applied.op, applied.removed, applied)]
        return out

    @staticmethod
    def _pieces(op: TextOp, removed: tuple[str, ...], applied: object) -> list[EditReply]:
        assert hasattr(applied, "revision") and hasattr(applied, "author")
        common = {"user": applied.author, "op_id": applied.op_id, "revision": applied.revision}
        pieces: list[EditReply] = [
            ServerEdit(**common, position=position, deleted=len(gone), inserted=inserted)
            for (position, _, inserted), gone in zip(op.splices(), removed, strict=True)
        ]
        return pieces or [ServerEdit(**common)]  # an op rebasing emptied: a noop revision


class ReconnectingEditors(RuleBasedStateMachine):
    destructive = True  # deletes and undo/redo too (else inserts only: exactly-once is checked)
    seeded = False  # the document starts at revision 1 (else a new one, at 0)
    keep = 10_000  # revisions the server keeps (few: rejoins get snapshots, edits are rebased)

    def __init__(self) -> None:
        super().__init__()
        self.server = Server(self.keep)
        if self.seeded:
            self.server.doc.receive(TextOp.splice(0, 0, 0, "·"), base=0, author="seed")
        self.joined_at: dict[str, int] = {}  # the revision of each editor's last join
        self.editors = {user: ClientEditor(user, "d", id_prefix=user) for user in USERS}
        self.links: dict[str, Link | None] = dict.fromkeys(USERS)
        self.connections = dict.fromkeys(USERS, 0)
        self.typed: list[str] = []
        self.rebases = 0
        for user in USERS:
            self._connect(user)

    def _connect(self, user: str) -> None:
        self.connections[user] += 1
        requests = self.editors[user].connected()
        join = requests[0]
        assert isinstance(join, JoinDocument)
        self.joined_at[user] = join.revision  # 0: a snapshot request
        link = self.links[user] = Link(f"{user}-{self.connections[user]}")
        link.up.extend(requests)

    def _send(self, user: str, requests: list[EditRequest]) -> None:
        link = self.links[user]
        if link is not None:  # made while disconnected: the next connected() carries it
            link.up.extend(requests)

    def _deliver_up(self, user: str) -> None:
        link = self.links[user]
        assert link is not None
        try:
            replies = self.server.handle(link.session, link.up.popleft())
        except Expired:
            # Its base is no longer kept: the server ends the stream (ABORTED, "join again"),
            # a transient status, so the client reconnects (and rebases onto the snapshot).
            self.disconnect(user)
            return
        for to, reply in replies:
            owner = to.rsplit("-", 1)[0]
            target = self.links[owner]
            if target is not None and target.session == to:
                target.down.append(reply)

    def _deliver_down(self, user: str) -> None:
        link = self.links[user]
        assert link is not None
        shown, replies = self.editors[user].receive(link.down.popleft())
        for change in shown:
            if change.kind == "rebase":
                # Only a rejoin at revision 0 (the wire's snapshot request) or at a revision
                # the server no longer keeps gets a snapshot; any other is a bug.
                joined = self.joined_at[user]
                assert joined == 0 or joined < self.server.doc.oldest_base
                self.rebases += 1
        self._send(user, replies)

    @rule(user=st.sampled_from(USERS), data=st.data())
    def type(self, user: str, data: st.DataObject) -> None:
        editor = self.editors[user]
        if not editor.synced:
            return
        count = data.draw(st.integers(1, 3))
        text = "".join(chr(0x4E00 + len(self.typed) + i) for i in range(count))
        position = data.draw(st.integers(0, len(editor.text)))
        self.typed.extend(text)
        self._send(user, editor.edit(position, 0, text))

    @precondition(lambda self: self.destructive)
    @rule(user=st.sampled_from(USERS), data=st.data())
    def delete(self, user: str, data: st.DataObject) -> None:
        editor = self.editors[user]
        if not editor.synced or not editor.text:
            return
        position = data.draw(st.integers(0, len(editor.text) - 1))
        length = data.draw(st.integers(1, len(editor.text) - position))
        self._send(user, editor.edit(position, length, ""))

    @precondition(lambda self: self.destructive)
    @rule(user=st.sampled_from(USERS), redo=st.booleans())
    def undo(self, user: str, redo: bool) -> None:
        editor = self.editors[user]
        self._send(user, editor.redo() if redo else editor.undo())

    @rule(user=st.sampled_from(USERS))
    def to_server(self, user: str) -> None:
        link = self.links[user]
        if link is not None and link.up:
            self._deliver_up(user)

    @rule(user=st.sampled_from(USERS))
    def to_client(self, user: str) -> None:
        link = self.links[user]
        if link is not None and link.down:
            self._deliver_down(user)

    @rule(user=st.sampled_from(USERS))
    def disconnect(self, user: str) -> None:
        """The connection breaks: what was in flight both ways is lost."""
        link = self.links[user]
        if link is not None:
            self.server.sessions.pop(link.session, None)
            self.links[user] = None

    @rule(user=st.sampled_from(USERS))
    def reconnect(self, user: str) -> None:
        if self.links[user] is None:
            self._connect(user)

    @invariant()
    def a_kept_history_is_caught_up_not_rebased(self) -> None:
        if self.seeded and self.keep >= 10_000:
            assert self.rebases == 0  # every revision kept, none at 0: catch-up works

    @invariant()
    def an_editor_in_sync_holds_the_server_text(self) -> None:
        for user, editor in self.editors.items():
            link = self.links[user]
            idle = link is not None and not link.up and not link.down
            if idle and editor.settled and self._quiet():
                assert editor.text == self.server.doc.text, user

    def _quiet(self) -> bool:
        return all(
            link is not None and not link.up and not link.down for link in self.links.values()
        )

    def teardown(self) -> None:
        for _ in range(100_000):
            moved = False
            for user in USERS:
                if self.links[user] is None:
                    self._connect(user)
                link = self.links[user]
                assert link is not None
                while link.up and self.links[user] is link:
                    self._deliver_up(user)
                    moved = True
                while link.down and self.links[user] is link:
                    self._deliver_down(user)
                    moved = True
            if not moved:
                break
        text = self.server.doc.text
        for user, editor in self.editors.items():
            assert editor.settled, user
            assert editor.text == text, user
            assert editor.revision == self.server.doc.revision, user
        if not self.destructive:
            typed = sorted(["·", *self.typed])
            assert sorted(text) == typed, "a typed character was lost or doubled"


class InsertingEditors(ReconnectingEditors):
    destructive = False
    seeded = True


class TrimmedEditors(ReconnectingEditors):
    """The server keeps 1 revision: a rejoin after anyone else's edit gets a snapshot and
    rebases what it holds; an edit that arrives after two others is refused ("join again")."""

    keep = 1


class TrimmedInsertingEditors(TrimmedEditors):
    """... and with inserts only, every character typed lands exactly once, across rebases
    (the op in flight when the connection broke may or may not have landed)."""

    destructive = False
    seeded = True


for machine in (ReconnectingEditors, InsertingEditors, TrimmedEditors, TrimmedInsertingEditors):
    machine.TestCase.settings = settings(stateful_step_count=60)
TestReconnectingEditors = ReconnectingEditors.TestCase
TestInsertingEditors = InsertingEditors.TestCase
TestTrimmedEditors = TrimmedEditors.TestCase
TestTrimmedInsertingEditors = TrimmedInsertingEditors.TestCase
