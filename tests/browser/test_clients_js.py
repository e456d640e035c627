"""The page's client rules (web/js/chat-client.js, edit-client.js, game-client.js) against
the core's (``ClientRooms``, ``ClientEditor``, ``ClientPlayer``), in chromium, on random runs:
the person's calls, reconnects and what a server may send, with echoes, duplicates, gaps,
stale acks, rebased pieces, later snapshots (the editor rebasing onto them), refusals, full and
delta states among it. After every step both must ask to send the same frames and show the
same."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import Page

from interplay.core import Kind
from interplay.core.chat_client import (
    ClientRooms,
    JoinRequest,
    LeaveRequest,
    Request,
    TextRequest,
    TypingRequest,
)
from interplay.core.edit_client import (
    ClientEditor,
    DocumentSnapshot,
    EditAck,
    EditRejected,
    EditRequest,
    JoinDocument,
    SendEdit,
    ServerEdit,
)
from interplay.core.errors import Rejection
from interplay.core.game import GameEvent, PlayerState
from interplay.core.game_client import ClientPlayer, JoinGame, StateUpdate
from interplay.core.rooms import RoomMessage
from interplay.testing.strategies import texts

pytestmark = pytest.mark.slow

ROOMS = ["lobby", "dev"]
PEOPLE = ["me", "bob", "cat"]

CHAT = """async (steps) => {
  const { ClientRooms, fromWire } = await import("/js/chat-client.js");
  const rules = new ClientRooms("me", "p");
  const frame = (f) => [f.type, f.roomId, f.resumeAfterSeq === undefined ? null :
    Number(f.resumeAfterSeq), f.epoch ?? "", f.id ?? "", f.content ?? ""];
  const out = [];
  for (const [call, arg] of steps) {
    let shown = [];
    let sent = [];
    if (call === "join") sent = rules.join(arg);
    else if (call === "leave") sent = rules.leave(arg);
    else if (call === "text") sent = rules.text(arg[0], arg[1]);
    else if (call === "typing") sent = rules.typing(arg);
    else if (call === "connected") sent = rules.connected();
    else [shown, sent] = rules.receive(fromWire(arg));
    out.push({
      sent: sent.map(frame),
      shown: shown.map((m) => [m.kind, m.room, m.sender, m.seq, m.id]),
      members: Object.fromEntries([...rules.rooms.keys()].map((r) => [r, rules.members(r)])),
    });
  }
  return out;
}"""


def _chat_frame(request: Request) -> list[Any]:
    if isinstance(request, JoinRequest):
        return ["JOIN", request.room, request.resume_after_seq, request.epoch, "", ""]
    if isinstance(request, TextRequest):
        return ["TEXT", request.room, None, "", request.id, request.content]
    if isinstance(request, LeaveRequest):
        return ["LEAVE", request.room, None, "", "", ""]
    assert isinstance(request, TypingRequest)
    return ["TYPING", request.room, None, "", "", ""]


@st.composite
def _server_message(draw: st.DrawFn, rules: ClientRooms) -> RoomMessage:
    """Mostly what a server sends next (an echo, the next seq, our own TEXT back), sometimes
    a duplicate, a gap, a stray notice or presence."""
    room = draw(st.sampled_from(rules.joined() or ROOMS))
    last = rules.last_seq(room) or 0
    kind = draw(st.sampled_from([Kind.TEXT, Kind.TEXT, Kind.JOIN, Kind.LEAVE, Kind.SYSTEM]))
    sender = draw(st.sampled_from(PEOPLE))
    if kind is Kind.JOIN and sender == "me":  # our echo: the room's head and epoch
        epoch = draw(st.sampled_from(["e1", "e1", "e2"]))
        return RoomMessage(kind=kind, room=room, sender=sender, epoch=epoch, seq=last)
    if kind is not Kind.TEXT:
        return RoomMessage(kind=kind, room=room, sender=sender)
    seq = last + draw(st.sampled_from([1, 1, 1, 0, -1, 2]))
    ours = [text.id for text in rules.unacknowledged() if text.room == room]
    id_ = draw(st.sampled_from(ours)) if sender == "me" and ours else f"x{seq}"
    return RoomMessage(kind=kind, room=room, sender=sender, id=id_, seq=max(seq, 1))


def _wire(message: RoomMessage) -> dict[str, Any]:
    return {
        "type": message.kind.name,
        "roomId": message.room,
        "senderId": message.sender,
        "id": message.id,
        "content": message.content,
        "seq": str(message.seq),
        "epoch": message.epoch,
    }


@given(st.data())
def test_chat_rules_agree_with_the_core(module_page: Page, data: st.DataObject) -> None:
    rules = ClientRooms(user="me", id_prefix="p")
    steps: list[list[Any]] = []
    expected = []
    for _ in range(data.draw(st.integers(1, 30))):
        joined = rules.joined()
        calls = ["join", "connected", "receive", "receive", "receive"]
        calls += ["leave", "text", "text", "typing"] if joined else []
        call = data.draw(st.sampled_from(calls))
        shown: list[RoomMessage] = []
        if call == "join":
            room = data.draw(st.sampled_from(ROOMS))
            steps.append([call, room])
            sent = rules.join(room)
        elif call in ("leave", "typing"):
            room = data.draw(st.sampled_from(joined))
            steps.append([call, room])
            sent = rules.leave(room) if call == "leave" else rules.typing(room)
        elif call == "text":
            room, content = data.draw(st.sampled_from(joined)), data.draw(texts)
            steps.append([call, [room, content]])
            sent = rules.text(room, content)
        elif call == "connected":
            steps.append([call, None])
            sent = rules.connected()
        else:
            message = data.draw(_server_message(rules))
            steps.append([call, _wire(message)])
            shown, sent = rules.receive(message)
        expected.append(
            {
                "sent": [_chat_frame(r) for r in sent],
                "shown": [[m.kind.name, m.room, m.sender, m.seq, m.id] for m in shown],
                "members": {r: sorted(rules.members(r)) for r in rules.joined()},
            }
        )
    assert module_page.evaluate(CHAT, steps) == expected


EDIT = """async (steps) => {
  const { ClientEditor } = await import("/js/edit-client.js");
  const rules = new ClientEditor("me", "doc", "p");
  const frame = (f) => f.operation === "join" ? ["join", Number(f.version), f.opId]
    : [f.position, f.length, f.content, Number(f.version), f.opId];
  const out = [];
  for (const [call, arg] of steps) {
    let sent = [];
    let change = null;
    if (call === "edit") sent = rules.edit(...arg);
    else if (call === "undo") sent = rules.undo();
    else if (call === "redo") sent = rules.redo();
    else if (call === "connected") sent = rules.connected();
    else [change, sent] = rules.receive(arg);
    out.push({
      sent: sent.filter((f) => f.operation !== "cursor").map(frame),
      change: change && change.kind !== "cursor" ? [change.kind, Boolean(change.lost)] : null,
      text: rules.text, revision: rules.revision, synced: rules.synced, inFlight: rules.inFlight,
    });
  }
  return out;
}"""


def _edit_frame(request: EditRequest) -> list[Any]:
    if isinstance(request, JoinDocument):
        return ["join", request.revision, request.pending]
    assert isinstance(request, SendEdit)
    return [request.position, request.deleted, request.inserted, request.base, request.op_id]


def _edit_state(rules: ClientEditor, sent: list[EditRequest], change: Any) -> dict[str, Any]:
    """What the EDIT script reports after a step."""
    return {
        "sent": [_edit_frame(r) for r in sent],
        "change": change,
        "text": rules.text,
        "revision": rules.revision,
        "synced": rules.synced,
        "inFlight": rules.in_flight,
    }


@st.composite
def _edit_reply(draw: st.DrawFn, rules: ClientEditor) -> tuple[Any, dict[str, Any]]:
    """A snapshot (the first, or a later one that holds our op in flight or not: the editor
    rebases onto it), an ack (of what is in flight, or stale), a refusal, or someone's edit (or
    ours, from a catch-up) that fits the server's text as the client knows it."""
    kind = draw(st.sampled_from(["ack", "edit", "edit", "edit", "snapshot", "reject"]))
    revision = rules.revision
    if not rules.synced or kind == "snapshot":
        text = draw(texts)
        at = draw(st.sampled_from([revision, revision, revision + 3]))
        op_id = draw(st.sampled_from([rules.in_flight or "", ""]))
        return DocumentSnapshot(text=text, revision=at, op_id=op_id), {
            "operation": "snapshot",
            "content": text,
            "version": str(at),
            "opId": op_id,
        }
    if kind == "reject":
        op_id = draw(st.sampled_from([rules.in_flight or "p-0", "p-0"]))
        rejection = Rejection(code="INVALID_ARGUMENT", field="position", rule="out of range")
        return EditRejected(op_id=op_id, rejection=rejection), {
            "operation": "reject",
            "opId": op_id,
            "version": str(revision),
            "rejection": {"code": 3, "field": "position", "message": "out of range"},
        }
    if kind == "ack":
        op_id = draw(st.sampled_from([rules.in_flight or "p-0", "p-0"]))
        return EditAck(op_id=op_id, revision=revision + 1), {
            "operation": "ack",
            "opId": op_id,
            "version": str(revision + 1),
        }
    size = rules.doc.server_length
    position = draw(st.integers(0, size))
    deleted = draw(st.integers(0, size - position))
    inserted = draw(texts)
    ours = rules.in_flight is not None and draw(st.booleans())
    user, op_id = ("me", rules.in_flight) if ours else ("bob", "b-1")
    assert op_id is not None
    operation = "replace" if deleted and inserted else "insert" if inserted else "delete"
    if not deleted and not inserted:
        operation = "noop"
    edit = ServerEdit(
        user=user,
        op_id=op_id,
        revision=revision + 1,
        position=position,
        deleted=deleted,
        inserted=inserted,
    )
    return edit, {
        "operation": operation,
        "userId": user,
        "opId": op_id,
        "version": str(revision + 1),
        "position": position,
        "length": deleted,
        "content": inserted if inserted else "x" * deleted,  # a delete carries the text
    }


@given(st.data())
def test_edit_rules_agree_with_the_core(module_page: Page, data: st.DataObject) -> None:
    rules = ClientEditor("me", "doc", id_prefix="p")
    steps: list[list[Any]] = []
    expected = []
    for _ in range(data.draw(st.integers(1, 25))):
        calls = ["connected", "receive", "receive"]
        calls += ["edit", "edit", "undo", "redo"] if rules.synced else []
        call = data.draw(st.sampled_from(calls))
        change = None
        if call == "edit":
            size = len(rules.text)
            position = data.draw(st.integers(0, size))
            deleted = data.draw(st.integers(0, size - position))
            inserted = data.draw(texts)
            steps.append([call, [position, deleted, inserted]])
            sent = rules.edit(position, deleted, inserted)
        elif call == "connected":
            steps.append([call, None])
            sent = rules.connected()
        elif call in ("undo", "redo"):
            steps.append([call, None])
            sent = rules.undo() if call == "undo" else rules.redo()
        else:
            reply, wire = data.draw(_edit_reply(rules))
            steps.append([call, wire])
            changes, sent = rules.receive(reply)
            change = [changes[0].kind, changes[0].lost] if changes else None
        expected.append(_edit_state(rules, sent, change))
    assert module_page.evaluate(EDIT, steps) == expected


def _core_run(steps: list[list[Any]]) -> list[dict[str, Any]]:
    """The EDIT script's steps on the core's ``ClientEditor``, each server frame decoded from
    its JSON as the Python transports decode it (proto3 JSON -> EditOperation -> reply)."""
    from google.protobuf import json_format

    from interplay.transports.grpc import codec
    from interplay.transports.grpc.generated import chat_pb2 as pb

    rules = ClientEditor("me", "doc", id_prefix="p")
    out = []
    for call, arg in steps:
        change = None
        if call == "edit":
            sent = rules.edit(*arg)
        elif call == "connected":
            sent = rules.connected()
        elif call in ("undo", "redo"):
            sent = rules.undo() if call == "undo" else rules.redo()
        else:
            reply = codec.edit_reply(json_format.ParseDict(arg, pb.EditOperation()))
            assert reply is not None
            changes, sent = rules.receive(reply)
            change = [changes[0].kind, changes[0].lost] if changes else None
        out.append(_edit_state(rules, sent, change))
    return out


def test_a_split_edit_is_resent_as_it_first_went_out_once_then_rebased(
    module_page: Page,
) -> None:
    """An edit in flight that a remote insert split goes again as it first went out on the
    first reconnect; if that connection ends too before its ack, the next reconnect asks for a
    snapshot naming it (re-sending it at a base the server no longer keeps would loop), and the
    snapshot's rebase sends what it did not hold (tests/core/test_edit_client_resend.py)."""
    steps: list[list[Any]] = [
        ["receive", {"operation": "snapshot", "content": "abcdef", "version": "1"}],
        ["edit", [1, 4, ""]],  # delete "bcde": in flight as p-1 at base 1
        [
            "receive",
            {
                "operation": "insert",
                "userId": "bob",
                "opId": "b-1",
                "version": "2",
                "position": 3,
                "content": "X",
            },
        ],
        ["connected", None],
        ["connected", None],
        ["edit", [0, 0, "Z"]],  # local until the snapshot
        ["receive", {"operation": "snapshot", "content": "aXf!", "version": "5", "opId": "p-1"}],
    ]
    expected = _core_run(steps)
    first_sent = [1, 4, "", 1, "p-1"]
    assert expected[3]["sent"] == [["join", 2, "p-1"], first_sent]
    assert expected[4]["sent"] == [["join", 0, "p-1"]]
    assert expected[5]["sent"] == []
    assert expected[6]["sent"] == [[0, 0, "Z", 5, "p-2"]]
    assert expected[6]["text"] == "ZaXf!" and expected[6]["change"] == ["rebase", False]
    assert module_page.evaluate(EDIT, steps) == expected


@given(data=st.data(), size=st.integers(0, 12))
def test_the_page_rebase_keeps_every_local_insert_and_what_of_the_snapshot_they_did_not_delete(
    module_page: Page, data: st.DataObject, size: int
) -> None:
    """The property of tests/core/test_edit_client.py, on the page's editor: every character
    unique (the base's; the editor's own, astral, unacknowledged: in flight and buffered; the
    server's, in a snapshot that deleted some of the base), the editor reconnects and gets the
    snapshot. Its text is then exactly the snapshot without the base characters the editor
    deleted, plus every character it inserted and still holds, each once and in order; and
    the same as the core's."""
    base = "".join(chr(0x100 + i) for i in range(size))
    snapshot = {"operation": "snapshot", "content": base, "version": "1"}
    steps: list[list[Any]] = [["receive", snapshot]]
    local = base
    for n in range(data.draw(st.integers(1, 5))):
        position = data.draw(st.integers(0, len(local)))
        deleted = data.draw(st.integers(0, len(local) - position))
        inserted = "".join(chr(0x1F600 + 8 * n + i) for i in range(data.draw(st.integers(0, 3))))
        if deleted or inserted:
            steps.append(["edit", [position, deleted, inserted]])
            local = local[:position] + inserted + local[position + deleted :]
    kept = data.draw(st.lists(st.booleans(), min_size=size, max_size=size))
    server = [c for c, keep in zip(base, kept, strict=True) if keep]
    for n in range(data.draw(st.integers(0, 4))):
        server.insert(data.draw(st.integers(0, len(server))), chr(0x3040 + n))
    server_text = "".join(server)
    steps.append(["connected", None])
    steps.append(["receive", {"operation": "snapshot", "content": server_text, "version": "9"}])
    got = module_page.evaluate(EDIT, steps)
    assert got == _core_run(steps)
    text = got[-1]["text"]
    deleted_by_editor = set(base) - set(local)
    mine = [c for c in local if c not in base]
    expected_server = [c for c in server_text if c not in deleted_by_editor]
    assert sorted(text) == sorted(expected_server + mine)  # each exactly once
    assert [c for c in text if c in server_text] == expected_server  # in order
    assert [c for c in text if c in mine] == mine


GAME = """async (steps) => {
  const { ClientPlayer } = await import("/js/game-client.js");
  const rules = new ClientPlayer("me", "m");
  const out = [];
  for (const [call, arg] of steps) {
    let sent = [];
    if (call === "act") sent = rules.act("move", arg);
    else if (call === "connected") sent = rules.connected();
    else sent = rules.receive(arg);
    const players = [...rules.mirror.players.values()].map((p) =>
      [p.id, p.x, p.y, p.health, p.lastSequence]).sort();
    out.push({
      sent: sent.map((f) => [f.actionType, Number(f.sequence ?? 0)]),
      tick: rules.mirror.tick, players, confirmed: rules.confirmed,
      unconfirmed: [...rules.unconfirmed.keys()],
    });
  }
  return out;
}"""


@given(st.data())
def test_game_rules_agree_with_the_core(module_page: Page, data: st.DataObject) -> None:
    """Actions, reconnects, and full and delta states (players changing, leaving, our own
    last_sequence confirming what was applied)."""
    rules = ClientPlayer("me", "m")
    steps: list[list[Any]] = []
    expected = []
    tick, need_full = 0, True  # after a join the server's first state is full
    for _ in range(data.draw(st.integers(1, 25))):
        call = data.draw(st.sampled_from(["act", "act", "connected", "state", "state", "state"]))
        if call == "act":
            params = {"dx": str(data.draw(st.integers(-10, 10))), "dy": "0"}
            steps.append([call, params])
            sent: list[Any] = rules.act("move", params)
        elif call == "connected":
            steps.append([call, None])
            sent = rules.connected()
            need_full = True
        else:
            tick += data.draw(st.integers(1, 3))
            full = need_full or data.draw(st.booleans())
            need_full = False
            players = [
                PlayerState(
                    player=who,
                    x=float(data.draw(st.integers(0, 1000))),
                    y=float(data.draw(st.integers(0, 1000))),
                    health=data.draw(st.integers(0, 100)),
                    last_sequence=data.draw(st.integers(0, rules.sequence)) if who == "me" else 0,
                )
                for who in data.draw(st.lists(st.sampled_from(PEOPLE), unique=True))
            ]
            gone = [] if full else data.draw(st.lists(st.sampled_from(PEOPLE), unique=True))
            events = [GameEvent(id=f"{tick}-{n}", kind="leave", data=p) for n, p in enumerate(gone)]
            steps.append(
                [
                    call,
                    {
                        "tick": str(tick),
                        "full": full,
                        "players": [
                            {
                                "playerId": p.player,
                                "x": p.x,
                                "y": p.y,
                                "health": p.health,
                                "attributes": {},
                                "lastSequence": str(p.last_sequence),
                            }
                            for p in players
                        ],
                        "events": [
                            {"eventId": e.id, "eventType": e.kind, "data": e.data} for e in events
                        ],
                    },
                ]
            )
            state = StateUpdate(tick=tick, full=full, players=tuple(players), events=tuple(events))
            _, sent = rules.receive(state)
        expected.append(
            {
                "sent": [
                    ["join", 0] if isinstance(r, JoinGame) else [r.kind, r.sequence] for r in sent
                ],
                "tick": rules.mirror.tick,
                "players": sorted(
                    [p.player, p.x, p.y, p.health, p.last_sequence]
                    for p in rules.mirror.players.values()
                ),
                "confirmed": rules.confirmed,
                "unconfirmed": [a.sequence for a in rules.unconfirmed()],
            }
        )
    assert module_page.evaluate(GAME, steps) == expected
