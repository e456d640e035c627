"""A reconnecting editor re-sends its in-flight edit even when remote edits split or emptied
it (found by the browser client's differential test, tests/browser/test_clients_js.py).

``ClientDocument.resend()`` returns the in-flight op rebased to the current revision, and a
delete with a remote insert inside its range is two splices (a remote delete of the same range:
none), which no single wire edit carries (``connected()`` raised ValueError). It re-sends the
op as it first went out (its original base) instead: one splice, which the server rebases over
the same edits the client did, as the page does (web/js/edit-client.js ``connected``).
"""

from __future__ import annotations

import pytest

from interplay.core.edit_client import (
    ClientEditor,
    DocumentSnapshot,
    JoinDocument,
    SendEdit,
    ServerEdit,
)
from interplay.core.ot import ServerDocument, TextOp


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ({"position": 2, "inserted": "X"}, "aXe"),  # an insert inside the deleted range
        ({"position": 1, "deleted": 3}, "ae"),  # the same range deleted: the op is emptied
    ],
)
def test_an_in_flight_edit_that_remote_edits_split_is_resent(
    remote: dict[str, object], expected: str
) -> None:
    server = ServerDocument("abcde")
    ann = ClientEditor("ann", "doc", id_prefix="a")
    ann.receive(DocumentSnapshot(text="abcde", revision=0))
    [sent] = ann.edit(1, 3, "")  # delete "bcd": in flight, its ack lost with the connection
    assert isinstance(sent, SendEdit)
    bob = TextOp.splice(5, remote["position"], remote.get("deleted", 0), remote.get("inserted", ""))  # type: ignore[arg-type]
    server.receive(bob, base=0, author="bob", op_id="b-1")
    ann.receive(ServerEdit(user="bob", op_id="b-1", revision=1, **remote))  # type: ignore[arg-type]

    join, resend = ann.connected()
    assert join == JoinDocument(document="doc", user="ann", revision=1, pending=sent.op_id)
    assert isinstance(resend, SendEdit) and resend.op_id == sent.op_id
    length = server.length_at(resend.base)
    op = TextOp.splice(length, resend.position, resend.deleted, resend.inserted)
    server.receive(op, base=resend.base, author="ann", op_id=resend.op_id)
    assert server.text == ann.text == expected


def test_a_split_edit_resent_once_in_vain_is_rebased_onto_a_snapshot_next() -> None:
    """Re-sent at its first base, the edit can meet a server that no longer keeps that base:
    the call ends ("join again") and, sent so again, it would end the next call too, forever
    (found by TestTrimmedEditors). The second reconnect asks for a snapshot naming the op
    instead, and the edit is rebased onto it."""
    ann = ClientEditor("ann", "doc", id_prefix="a")
    ann.receive(DocumentSnapshot(text="abcde", revision=0))
    [sent] = ann.edit(1, 3, "")
    assert isinstance(sent, SendEdit)
    ann.receive(ServerEdit(user="bob", op_id="b-1", revision=1, position=2, inserted="X"))

    assert ann.connected()[1] == sent  # first: as it first went out
    assert ann.connected() == [JoinDocument(document="doc", user="ann", pending=sent.op_id)]
    shown, [rebased] = ann.receive(DocumentSnapshot(text="aXbcde!", revision=3))
    assert [change.kind for change in shown] == ["rebase"]
    assert ann.text == "aXe!"
    assert isinstance(rebased, SendEdit) and rebased.base == 3 and rebased.op_id != sent.op_id
