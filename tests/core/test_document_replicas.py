"""Documents on many nodes, sans I/O: hubs as replicas of one revision log (DESIGN §10).

Each hub proposes its editors' edits (``DocumentHub.propose``); the test is the shared log,
committing a proposal only if it was made on the log's head (compare-and-set), as the Redis
script does; a hub that lost catches up (``observe_edit``) and proposes again. Whatever the
interleaving, every replica ends with the log's text, every edit is acked once to its sender
and reaches every other editor once, and a re-send through another hub is applied once.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from interplay.core.documents import (
    Acked,
    DocumentHub,
    EditDocument,
    OpenDocument,
    Remote,
)
from interplay.core.effects import DocumentRecord, LoadDocument, StoredEdit
from interplay.core.ot import ServerDocument


class Log:
    """The shared log: commits by compare-and-set, op ids known across hubs."""

    def __init__(self) -> None:
        self.edits: list[StoredEdit] = []
        self.ids: dict[tuple[str, str], int] = {}

    def commit(self, base: int, edit: StoredEdit) -> tuple[str, int]:
        key = (edit.author, edit.op_id)
        if key in self.ids:
            return "DUP", self.ids[key]
        if base != len(self.edits):
            return "CONFLICT", len(self.edits)
        self.edits.append(edit)
        self.ids[key] = len(self.edits)
        return "OK", len(self.edits)


class Replica:
    def __init__(self, log: Log, sessions: list[str], users: dict[str, str] | None = None):
        self.hub, self.log = DocumentHub(), log
        self.hub.provide(LoadDocument(document="d"), DocumentRecord(text="", revision=0, edits=[]))
        self.received: dict[str, list[object]] = {s: [] for s in sessions}
        for session in sessions:
            user = (users or {}).get(session, session)
            self._take(self.hub.handle(OpenDocument(session=session, document="d", user=user)))

    def _take(self, events: list) -> None:  # type: ignore[type-arg]
        for event in events:
            for to in event.to:
                self.received[to].append(event.message)

    def catch_up(self, until: int | None = None) -> None:
        log = self.log.edits[: until if until is not None else len(self.log.edits)]
        while (revision := self.hub.revision("d")) is not None and revision < len(log):
            self._take(self.hub.observe_edit("d", revision + 1, log[revision]))

    def edit(self, command: EditDocument) -> None:
        """What ``runtime/node_documents.py`` does, minus the I/O."""
        while True:
            events, proposal = self.hub.propose(command)
            self._take(events)
            if proposal is None:
                return
            outcome, revision = self.log.commit(proposal.base, proposal.edit)
            if outcome == "OK":
                self._take(self.hub.observe_edit("d", revision, proposal.edit, proposal))
                return
            if outcome == "DUP":
                self.catch_up(revision - 1)
                log_edit = self.log.edits[revision - 1]
                self._take(self.hub.observe_edit("d", revision, log_edit, proposal))
                return
            self.catch_up()


STEPS = st.lists(
    st.tuples(
        st.integers(0, 3),  # editor (0, 1 on hub A; 2, 3 on hub B)
        st.integers(0, 30),  # position (clamped to what the editor's hub shows)
        st.sampled_from(["a", "bc", "😀", ""]),  # "" deletes one
        st.booleans(),  # the other hub catches up first
    ),
    max_size=40,
)


@given(steps=STEPS)
def test_replicas_of_one_log_converge_and_ack_each_edit_once(
    steps: list[tuple[int, int, str, bool]],
) -> None:
    log = Log()
    hubs = [Replica(log, ["e0", "e1"]), Replica(log, ["e2", "e3"])]
    sent: dict[str, int] = {}
    for editor, position, inserted, sync in steps:
        mine = hubs[editor // 2]
        if sync:
            hubs[1 - editor // 2].catch_up()
        text = mine.hub.text("d") or ""
        if not inserted and not text:
            continue
        position = min(position, len(text) - (0 if inserted else 1))
        session = f"e{editor}"
        sent[session] = sent.get(session, 0) + 1
        # Made on what this editor's hub shows, which may be behind the log.
        mine.edit(
            EditDocument(
                session=session,
                document="d",
                base=mine.hub.revision("d") or 0,
                position=position,
                deleted=0 if inserted else 1,
                inserted=inserted,
                op_id=f"{session}-{sent[session]}",
                user=session,
            )
        )
    for replica in hubs:
        replica.catch_up()
    expected = ServerDocument()
    for edit in log.edits:
        expected.receive(edit.op, base=expected.revision, author=edit.author, op_id=edit.op_id)
    assert {replica.hub.text("d") for replica in hubs} == {expected.text}
    for replica in hubs:
        for session, received in replica.received.items():
            acks = [m.op_id for m in received if isinstance(m, Acked)]
            assert acks == [f"{session}-{n}" for n in range(1, sent.get(session, 0) + 1)]
            remotes = [m.revision for m in received if isinstance(m, Remote)]
            ours = {m.revision for m in received if isinstance(m, Acked)}
            # every other revision, once each, in order
            assert remotes == [r for r in range(1, len(log.edits) + 1) if r not in ours]


def test_a_re_send_through_the_other_hub_is_acked_with_its_revision_not_applied() -> None:
    log = Log()
    a, b = Replica(log, ["ann"]), Replica(log, ["bob", "ann2"], {"ann2": "ann"})
    first = EditDocument(
        session="ann", document="d", base=0, position=0, inserted="x", op_id="o1", user="ann"
    )
    a.edit(first)
    again = EditDocument(
        session="ann2", document="d", base=0, position=0, inserted="x", op_id="o1", user="ann"
    )
    b.edit(again)  # hub B has not caught up: the log answers DUP, B applies it as ann2's ack
    assert [type(m).__name__ for m in b.received["ann2"]] == ["Snapshot", "Acked"]
    assert b.received["bob"][-1] == Remote(
        document="d", revision=1, user="ann", op_id="o1", pieces=b.received["bob"][-1].pieces
    )
    b.edit(again)  # and once it knows it: acked again by its own replica
    assert [m for m in b.received["ann2"] if isinstance(m, Acked)] == [
        Acked(document="d", revision=1, op_id="o1", user="ann")
    ] * 2
    assert len(log.edits) == 1 and b.hub.text("d") == a.hub.text("d") == "x"
