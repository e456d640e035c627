"""DocumentHub: position-based edits in, acks and rebased pieces out; cursors; durability."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.backends import MemoryBackend, SQLiteBackend
from interplay.core import (
    Acked,
    CloseSession,
    CursorMoved,
    DocumentLimits,
    EditDocument,
    InvalidArgument,
    LimitExceeded,
    MoveCursor,
    OpenDocument,
    Piece,
    Remote,
    Snapshot,
)
from interplay.core.errors import Expired, PermissionDenied
from interplay.testing.hubs.stored import stored_documents
from interplay.testing.strategies import texts


def edit(session: str, base: int, position: int, deleted: int = 0, inserted: str = "", **kw):  # type: ignore[no-untyped-def]
    return EditDocument(
        session=session,
        document="d",
        base=base,
        position=position,
        deleted=deleted,
        inserted=inserted,
        **kw,
    )


def apply_pieces(text: str, pieces: tuple[Piece, ...]) -> str:
    for piece in pieces:
        assert text[piece.position : piece.position + len(piece.deleted)] == piece.deleted
        text = text[: piece.position] + piece.inserted + text[piece.position + len(piece.deleted) :]
    return text


def test_open_gives_a_snapshot_and_an_edit_opens_implicitly() -> None:
    hub = stored_documents()
    [snap] = hub.handle(OpenDocument(session="a", document="d", user="ann"))
    assert snap.to == ("a",) and snap.message == Snapshot(document="d", text="", revision=0)
    events = hub.handle(edit("b", 0, 0, inserted="hi", user="bob", op_id="b1"))
    assert [e.message for e in events] == [
        Snapshot(document="d", text="", revision=0),  # implicit join: snapshot first
        Acked(document="d", revision=1, op_id="b1", user="bob"),
        Remote(
            document="d",
            revision=1,
            user="bob",
            op_id="b1",
            pieces=(Piece(position=0, deleted="", inserted="hi"),),
        ),
    ]
    assert [e.to for e in events] == [("b",), ("b",), ("a",)]


def test_a_concurrent_insert_splits_a_stale_delete_into_pieces() -> None:
    hub = stored_documents()
    hub.handle(edit("a", 0, 0, inserted="abcdef"))
    hub.handle(OpenDocument(session="b", document="d"))
    hub.handle(edit("a", 1, 3, inserted="XY"))  # abcXYdef
    events = hub.handle(edit("b", 1, 1, deleted=4))  # b deletes "bcde", based on revision 1
    remote = events[-1].message
    assert isinstance(remote, Remote) and remote.revision == 3
    assert apply_pieces("abcXYdef", remote.pieces) == "aXYf" == hub.text("d")
    assert len(remote.pieces) == 2


def test_an_edit_emptied_by_rebasing_still_takes_a_revision() -> None:
    hub = stored_documents()
    hub.handle(edit("a", 0, 0, inserted="abc"))
    hub.handle(OpenDocument(session="b", document="d"))
    hub.handle(edit("a", 1, 0, deleted=3))
    events = hub.handle(edit("b", 1, 1, deleted=1))  # "b" is already gone
    assert events[-1].message == Remote(document="d", revision=3, user="b", op_id="", pieces=())
    assert hub.text("d") == ""


def test_a_resent_op_is_acknowledged_again_never_applied_twice() -> None:
    hub = stored_documents()
    hub.handle(edit("a", 0, 0, inserted="x", user="ann", op_id="o1"))
    hub.handle(CloseSession(session="a"))
    hub.handle(OpenDocument(session="watch", document="d"))
    events = hub.handle(edit("a2", 0, 0, inserted="x", user="ann", op_id="o1"))
    assert events[-1].message == Acked(document="d", revision=1, op_id="o1", user="ann")
    assert events[-1].to == ("a2",) and hub.text("d") == "x"


@pytest.mark.parametrize(
    ("command", "error", "text"),
    [
        (edit("a", 0, -1, inserted="x"), InvalidArgument, "position: must not be negative"),
        (edit("a", 1, 3, deleted=1), InvalidArgument, r"position: 3 \+ length 1 is beyond the 3"),
        (edit("a", 0, 0, deleted=-2), InvalidArgument, "length: must not be negative"),
        (edit("a", 5, 0, inserted="x"), InvalidArgument, "version: revision 5 is in the future"),
        (edit("a", 1, 0), InvalidArgument, "content: an edit must delete or insert"),
        (edit("a", 1, 0, inserted="x", user="mallory"), PermissionDenied, "user: this stream"),
        (edit("b", 1, 0, inserted="x", user="u" * 256), InvalidArgument, "user: must be at most"),
    ],
)
def test_bad_edits_leave_the_document_untouched(command, error, text) -> None:  # type: ignore[no-untyped-def]
    hub = stored_documents()
    hub.handle(edit("a", 0, 0, inserted="abc", user="ann"))
    with pytest.raises(error, match=text):
        hub.handle(command)
    assert hub.text("d") == "abc"


def test_cursors_follow_later_edits_and_reach_the_others() -> None:
    hub = stored_documents()
    hub.handle(edit("a", 0, 0, inserted="hello world", user="ann"))
    hub.handle(OpenDocument(session="b", document="d", user="bob"))
    [moved] = hub.handle(MoveCursor(session="b", document="d", base=1, position=6, length=5))
    assert moved.to == ("a",)
    assert moved.message == CursorMoved(document="d", revision=1, user="bob", position=6, length=5)
    hub.handle(edit("a", 1, 0, inserted=">> ", user="ann"))
    # a stale cursor is rebased too
    [moved] = hub.handle(MoveCursor(session="b", document="d", base=1, position=0, length=5))
    assert (moved.message.position, moved.message.length) == (3, 5)  # type: ignore[union-attr]


def test_documents_survive_a_restart_and_old_revisions_expire(tmp_path: Path) -> None:
    path = tmp_path / "docs.db"
    store = SQLiteBackend(path)
    hub = stored_documents(store, snapshot_every=3)
    for n in range(7):
        hub.handle(edit("a", n, n, inserted="😀"))
    store.close()
    again = stored_documents(SQLiteBackend(path), snapshot_every=3)
    [snap] = again.handle(OpenDocument(session="b", document="d"))
    assert snap.message == Snapshot(document="d", text="😀" * 7, revision=7)
    # Edits since the last snapshot (revision 6) are replayed: revision 6 is still a valid base.
    again.handle(edit("b", 6, 0, inserted="x"))
    with pytest.raises(Expired, match="join again"):
        again.handle(edit("b", 5, 0, inserted="x"))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_retried_edit_older_than_the_last_snapshot_is_applied_once_after_a_restart(
    tmp_path: Path, kind: str
) -> None:
    """The op ids of every kept revision are stored, not only those after the last snapshot:
    after a restart, a retry of an edit the snapshot already holds is acknowledged with its
    revision, and a rejoin naming it as pending is told it landed."""
    memory = MemoryBackend()

    def backend() -> MemoryBackend | SQLiteBackend:
        return memory if kind == "memory" else SQLiteBackend(tmp_path / "docs.db")

    hub = stored_documents(backend(), snapshot_every=3)
    for n in range(7):
        hub.handle(edit("a", n, n, inserted=str(n), op_id=f"e{n}", user="ann"))
    again = stored_documents(backend(), snapshot_every=3)  # the restart
    # (an edit without a join opens the document first: the snapshot, then the ack)
    [_, ack] = again.handle(edit("b", 1, 1, inserted="1", op_id="e1", user="ann"))
    assert ack.message == Acked(document="d", revision=2, op_id="e1", user="ann")
    [snap] = again.handle(OpenDocument(session="c", document="d", user="ann", pending="e4"))
    assert snap.message == Snapshot(document="d", text="0123456", revision=7, op_id="e4")
    assert again.text("d") == "0123456"  # nothing applied twice
    [fresh, _] = again.handle(edit("c", 7, 7, inserted="7", op_id="e7", user="ann"))
    assert fresh.message == Acked(document="d", revision=8, op_id="e7", user="ann")


@given(start=texts, data=st.data())
def test_remote_pieces_replay_to_the_server_text(start: str, data: st.DataObject) -> None:
    hub = stored_documents()
    if start:
        hub.handle(edit("w", 0, 0, inserted=start))
    [snap] = hub.handle(OpenDocument(session="r", document="d"))
    mirror = snap.message.text  # type: ignore[union-attr]
    for n in range(data.draw(st.integers(1, 6))):
        # Each edit from a stream of its own: a stale base means concurrent writers (from one
        # stream it would mean "after my own unacknowledged edits": pipelining).
        base = data.draw(st.integers(int(bool(start)), hub._docs["d"].document.revision))
        length = hub._docs["d"].document.length_at(base)
        position = data.draw(st.integers(0, length))
        deleted = data.draw(st.integers(0, length - position))
        inserted = data.draw(texts.filter(bool)) if not deleted else data.draw(texts)
        events = hub.handle(edit(f"w{n}", base, position, deleted=deleted, inserted=inserted))
        remote = events[-1].message
        assert isinstance(remote, Remote)
        mirror = apply_pieces(mirror, remote.pieces)
        assert mirror == hub.text("d")


def test_a_refused_edit_does_not_join_the_stream_either() -> None:
    hub = stored_documents()
    hub.handle(edit("a", 0, 0, inserted="abc", user="ann"))
    with pytest.raises(InvalidArgument):
        hub.handle(edit("b", 1, 9, inserted="x", user="bob"))  # out of range, never joined
    assert hub.documents_of("b") == frozenset()
    assert [e.to for e in hub.handle(edit("a", 1, 3, inserted="d"))] == [("a",)]  # no "b"


def test_documents_per_stream_and_insert_size_are_limited() -> None:
    hub = stored_documents(limits=DocumentLimits(max_documents=2, max_inserted_chars=3))
    for name in ("d1", "d2"):
        hub.handle(OpenDocument(session="a", document=name, user="ann"))
    with pytest.raises(LimitExceeded, match=r"^document: at most 2 documents per stream"):
        hub.handle(OpenDocument(session="a", document="d3", user="ann"))
    with pytest.raises(LimitExceeded, match="document: at most 2 documents per stream"):
        hub.handle(EditDocument(session="a", document="d3", base=0, position=0, inserted="x"))
    assert hub.documents_of("a") == {"d1", "d2"}
    hub.handle(OpenDocument(session="b", document="d3", user="bob"))  # per stream, not global
    hub.handle(CloseSession(session="a"))
    hub.handle(OpenDocument(session="a2", document="d3", user="ann"))  # a new stream starts over
    with pytest.raises(LimitExceeded, match=r"^content: must be at most 3 characters"):
        hub.handle(EditDocument(session="a2", document="d3", base=0, position=0, inserted="abcd"))
    assert hub.text("d3") == ""


def test_a_join_since_a_kept_revision_catches_up_instead_of_a_snapshot() -> None:
    hub = stored_documents(keep=3)
    hub.handle(edit("a", 0, 0, inserted="abc", user="ann", op_id="a1"))
    hub.handle(edit("b", 1, 3, inserted="!", user="bob", op_id="b1"))
    hub.handle(edit("a", 2, 0, deleted=1, user="ann", op_id="a2"))
    events = hub.handle(OpenDocument(session="a2", document="d", user="ann", since=1))
    assert [e.to for e in events] == [("a2",), ("a2",)]
    assert [e.message for e in events] == [
        Remote(
            document="d",
            revision=2,
            user="bob",
            op_id="b1",
            pieces=(Piece(position=3, deleted="", inserted="!"),),
        ),
        Remote(  # its own op: the client takes it as the ack it missed, by op id
            document="d",
            revision=3,
            user="ann",
            op_id="a2",
            pieces=(Piece(position=0, deleted="a", inserted=""),),
        ),
    ]
    # Not kept any more (keep=3 after two more edits), or ahead of the server: a snapshot.
    hub.handle(edit("b", 3, 0, inserted="x", user="bob", op_id="b2"))
    hub.handle(edit("b", 4, 0, inserted="y", user="bob", op_id="b3"))
    for since in (1, 99):
        [event] = hub.handle(OpenDocument(session="a3", document="d", user="ann", since=since))
        assert event.message == Snapshot(document="d", text="yxbc!", revision=5)
    assert hub.handle(OpenDocument(session="a4", document="d", user="ann", since=5)) == []


def test_a_snapshot_says_whether_the_pending_edit_landed_and_its_resend_is_not_applied() -> None:
    hub = stored_documents(keep=1)
    hub.handle(edit("a", 0, 0, inserted="ab", user="ann", op_id="a1"))
    hub.handle(edit("b", 1, 2, inserted="!", user="bob", op_id="b1"))  # a1 is trimmed now
    hub.handle(edit("b", 2, 0, inserted=">", user="bob", op_id="b2"))
    # ann reconnects at revision 1 (no longer kept), naming a1, which she never saw acked.
    [event] = hub.handle(
        OpenDocument(session="a2", document="d", user="ann", since=1, pending="a1")
    )
    assert event.message == Snapshot(document="d", text=">ab!", revision=3, op_id="a1")
    assert hub.handle(edit("a2", 1, 0, inserted="ab", user="ann", op_id="a1")) == []  # answered
    # An edit that never landed: the snapshot says so (no op_id), and its re-send is ignored too.
    [event] = hub.handle(
        OpenDocument(session="a3", document="d", user="ann", since=1, pending="a9")
    )
    assert event.message == Snapshot(document="d", text=">ab!", revision=3)
    assert hub.handle(edit("a3", 1, 0, inserted="z", user="ann", op_id="a9")) == []
    assert hub.text("d") == ">ab!"
    # The next edit of that stream is applied as usual.
    [ack, _] = hub.handle(edit("a3", 3, 0, inserted="z", user="ann", op_id="a10"))
    assert ack.message == Acked(document="d", revision=4, op_id="a10", user="ann")


def test_statistics_count_what_the_hub_holds_and_did() -> None:
    hub = stored_documents(keep=10)
    hub.handle(OpenDocument(session="a", document="d", user="ann"))
    hub.handle(edit("a", 0, 0, inserted="ab", user="ann", op_id="a1"))
    hub.handle(edit("b", 0, 0, inserted="x", user="bob", op_id="b1"))  # stale: rebased
    hub.handle(edit("b", 0, 0, inserted="x", user="bob", op_id="b1"))  # re-sent
    hub.handle(OpenDocument(session="a", document="d", user="ann", since=1))  # catch-up
    stats = hub.statistics()
    assert (stats.sessions, stats.documents_loaded, stats.editors) == (2, 1, 2)
    assert (stats.edits_applied, stats.edits_rebased, stats.duplicates) == (2, 1, 1)
    assert (stats.snapshots, stats.catch_ups) == (2, 1)  # ann's join, bob's implicit one
    hub.handle(CloseSession(session="a"))
    hub.handle(CloseSession(session="b"))
    stats = hub.statistics()
    assert (stats.sessions, stats.documents_loaded, stats.editors) == (0, 0, 0)
