"""Every conversion between the wire (generated betterproto2 messages) and the core.

All encoding and decoding lives here so the wire codec can be swapped on the hot paths in one
module. ``WireCodec`` lets the service send bytes it encoded itself: a broadcast is encoded once
and the same bytes are written to every receiving stream.
"""

from __future__ import annotations

from typing import Any

from grpclib.encoding.proto import ProtoCodec

from interplay.core.errors import InvalidArgument
from interplay.core.rooms import Command, Join, Kind, Leave, Post, RoomMessage, Typing

from .generated.chat import ChatMessage, ChatMessageMessageType

# Core field names -> the wire's, for error messages the client can act on.
CHAT_FIELDS = {"room": "room_id", "user": "sender_id"}

_WIRE_TYPES = {kind: ChatMessageMessageType(kind.value) for kind in Kind}


class WireCodec(ProtoCodec):
    """grpclib's protobuf codec, except that ``bytes`` are already encoded and pass through."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if type(message) is bytes:
            return message
        return super().encode(message, message_type)


def chat_command(message: ChatMessage, session: str) -> Command:
    """The core command a client's ChatMessage asks for."""
    kind = message.type
    if kind == ChatMessageMessageType.TEXT:
        return Post(
            session=session,
            room=message.room_id,
            content=message.content,
            id=message.id,
            user=message.sender_id,
        )
    if kind == ChatMessageMessageType.JOIN:
        return Join(
            session=session,
            user=message.sender_id,
            room=message.room_id,
            resume_after_seq=message.resume_after_seq,
            epoch=message.epoch,
        )
    if kind == ChatMessageMessageType.TYPING:
        return Typing(session=session, room=message.room_id, user=message.sender_id)
    if kind == ChatMessageMessageType.LEAVE:
        return Leave(session=session, room=message.room_id, user=message.sender_id)
    if kind == ChatMessageMessageType.SYSTEM:
        raise InvalidArgument("type", "SYSTEM messages are sent by the server only")
    raise InvalidArgument("type", f"unknown message type {int(kind)}")


def chat_message(message: RoomMessage) -> ChatMessage:
    return ChatMessage(
        id=message.id,
        sender_id=message.sender,
        room_id=message.room,
        content=message.content,
        timestamp=message.timestamp,
        type=_WIRE_TYPES[message.kind],
        seq=message.seq,
        epoch=message.epoch,
    )


def encode_chat(message: RoomMessage) -> bytes:
    """Wire bytes of one ChatMessage, ready for ``WireCodec`` to pass through."""
    return bytes(chat_message(message))
