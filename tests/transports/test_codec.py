"""The server's upb codec and the betterproto2 classes users see write the same bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from interplay.transports.grpc.generated import chat as bp
from interplay.transports.grpc.generated import chat_pb2 as pb

text = st.text(max_size=20)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
one_entry = st.dictionaries(text, text, max_size=1)  # map order is not part of the contract
# upb writes -0.0 (proto3 compares defaults bitwise), betterproto2 drops it; both read back 0.
float32 = st.floats(width=32, allow_nan=False).filter(lambda x: x != 0 or str(x) == "0.0")

chat_fields = st.fixed_dictionaries(
    {},
    optional={
        "id": text,
        "sender_id": text,
        "room_id": text,
        "content": text,
        "timestamp": int64,
        "type": st.integers(0, 4),
        "seq": int64,
        "resume_after_seq": int64,
        "epoch": text,
    },
)
edit_fields = st.fixed_dictionaries(
    {},
    optional={
        "document_id": text,
        "user_id": text,
        "position": int32,
        "operation": text,
        "content": text,
        "version": int64,
        "timestamp": int64,
        "length": int32,
        "op_id": text,
    },
)
action_fields = st.fixed_dictionaries(
    {},
    optional={
        "player_id": text,
        "action_type": text,
        "parameters": one_entry,
        "sequence": int64,
        "timestamp": int64,
        "match_id": text,
    },
)
player_fields = st.fixed_dictionaries(
    {},
    optional={
        "player_id": text,
        "x": float32,
        "y": float32,
        "health": int32,
        "attributes": one_entry,
        "last_sequence": int64,
    },
)


def same(bp_type: Any, pb_type: Any, fields: dict[str, Any]) -> None:
    theirs = bytes(bp_type(**fields))
    ours = pb_type(**fields).SerializeToString()
    assert ours == theirs
    assert bp_type().parse(ours) == bp_type(**fields)


@given(chat_fields)
def test_chat_message(fields: dict[str, Any]) -> None:
    if "type" in fields:
        fields = {**fields, "type": bp.ChatMessageMessageType(fields["type"])}
    same(bp.ChatMessage, pb.ChatMessage, fields)


@given(edit_fields)
def test_edit_operation(fields: dict[str, Any]) -> None:
    same(bp.EditOperation, pb.EditOperation, fields)


@given(action_fields)
def test_game_action(fields: dict[str, Any]) -> None:
    same(bp.GameAction, pb.GameAction, fields)


@given(player_fields)
def test_player_state(fields: dict[str, Any]) -> None:
    same(bp.PlayerState, pb.PlayerState, fields)
