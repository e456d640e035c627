"""What the client machines do with a refusal: undo what the refused message meant locally,
show it, and never send it again; and what they refuse at once, sending nothing."""

from __future__ import annotations

import pytest

from interplay.core import ChatLimits, InvalidArgument, Kind, LimitExceeded, Rejection, RoomMessage
from interplay.core.chat_client import ClientRooms, JoinRequest, TextRequest
from interplay.core.documents import DocumentLimits
from interplay.core.edit_client import (
    ClientEditor,
    DocumentChange,
    DocumentSnapshot,
    EditAck,
    EditRejected,
    JoinDocument,
)
from interplay.core.game_client import ActionRejected, ClientPlayer, StateUpdate

NOT_GRANTED = Rejection(code="PERMISSION_DENIED", field="room_id", rule="not granted")


def refusal(room: str, id: str, rejection: Rejection = NOT_GRANTED) -> RoomMessage:
    return RoomMessage(kind=Kind.SYSTEM, room=room, id=id, content="refused", rejection=rejection)


def joined(client: ClientRooms, room: str) -> None:
    client.receive(RoomMessage(kind=Kind.JOIN, room=room, sender=client.user, epoch="e"))


def test_a_refused_text_is_shown_dropped_and_never_re_sent() -> None:
    client = ClientRooms("ann", id_prefix="p")
    client.join("lobby")
    joined(client, "lobby")
    [text] = client.text("lobby", "too long for the server")
    assert isinstance(text, TextRequest) and client.is_pending(text.id)
    notice = refusal("lobby", text.id)
    assert client.receive(notice) == ([notice], [])
    assert not client.is_pending(text.id) and client.refused(text.id) == NOT_GRANTED
    assert client.connected() == [JoinRequest(room="lobby", user="ann", epoch="e")]  # no TEXT


def test_a_refused_join_leaves_the_client_as_it_was() -> None:
    client = ClientRooms("ann", id_prefix="p")
    client.join("lobby")
    joined(client, "lobby")
    [join] = client.join("secret")
    assert isinstance(join, JoinRequest) and join.id
    notice = refusal("secret", join.id)
    assert client.receive(notice) == ([notice], [])
    assert client.joined() == ["lobby"]
    assert [r.room for r in client.connected()] == ["lobby"]  # a reconnect does not rejoin it


def test_a_refusal_naming_an_earlier_join_of_a_room_does_not_leave_it() -> None:
    client = ClientRooms("ann", id_prefix="p")
    [first] = client.join("lobby")
    joined(client, "lobby")
    client.join("lobby")  # a second JOIN (a rejoin) is the one in flight now
    assert isinstance(first, JoinRequest)
    client.receive(refusal("lobby", first.id))
    assert client.joined() == ["lobby"]


def test_what_the_client_can_check_is_refused_at_once() -> None:
    client = ClientRooms("ann", limits=ChatLimits(max_content_bytes=8, max_rooms=1))
    with pytest.raises(InvalidArgument, match="room: must be at most 255 characters"):
        client.join("r" * 256)
    with pytest.raises(InvalidArgument, match="room: must not be empty"):
        client.join("")
    client.join("lobby")
    with pytest.raises(LimitExceeded, match="room: at most 1 rooms per stream"):
        client.join("dev")
    with pytest.raises(LimitExceeded, match="content: must be at most 8 bytes of UTF-8"):
        client.text("lobby", "ééééé")  # 10 bytes
    assert client.joined() == ["lobby"] and client.unacknowledged() == []
    with pytest.raises(InvalidArgument, match="user: must be at most"):
        ClientRooms("u" * 256)


def test_a_refused_edit_is_shown_then_the_editor_starts_over_from_a_snapshot() -> None:
    editor = ClientEditor("ann", "d", id_prefix="p")
    editor.receive(DocumentSnapshot(text="abc", revision=3))
    assert len(editor.edit(3, 0, "!")) == 1
    rejection = Rejection(code="INVALID_ARGUMENT", field="content", rule="too long")
    shown, replies = editor.receive(EditRejected(op_id="p-1", rejection=rejection))
    assert shown == [
        DocumentChange(kind="refused", user="ann", revision=3, text="abc!", rejection=rejection)
    ]
    assert replies == [JoinDocument(document="d", user="ann")]
    assert editor.connected() == [JoinDocument(document="d", user="ann")]  # nothing re-sent
    shown, replies = editor.receive(DocumentSnapshot(text="abc", revision=3))
    assert shown == [DocumentChange(kind="reset", user="", revision=3, text="abc", lost=True)]
    assert replies == [] and editor.settled and editor.text == "abc"
    assert editor.receive(EditAck(op_id="p-1", revision=4)) == ([], [])  # stale: ignored


def test_a_refused_action_is_dropped_from_the_re_sends() -> None:
    player = ClientPlayer("ann")
    player.receive(StateUpdate(tick=1, full=True))
    player.act("move", {"dx": "50"})
    player.act("move", {"dx": "1"})
    rejection = Rejection(code="INVALID_ARGUMENT", field="parameters.dx", rule="out of range")
    assert player.receive(ActionRejected(sequence=1, rejection=rejection)) == ([], [])
    assert [a.sequence for a in player.unconfirmed()] == [2]
    assert player.refused == [(1, rejection)]


def test_an_insert_over_the_limit_is_refused_at_once_and_the_text_is_unchanged() -> None:
    editor = ClientEditor("ann", "d", limits=DocumentLimits(max_inserted_chars=4))
    editor.receive(DocumentSnapshot(text="abc", revision=3))
    with pytest.raises(LimitExceeded, match="content: must be at most 4 characters"):
        editor.edit(0, 0, "12345")
    assert editor.text == "abc" and editor.settled
