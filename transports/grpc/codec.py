"""Every conversion between the wire (generated betterproto2 messages) and the core.

All encoding and decoding lives here so the wire codec can be swapped on the hot paths in one
module. ``WireCodec`` lets the service send bytes it encoded itself: a broadcast is encoded once
and the same bytes are written to every receiving stream.
"""

from __future__ import annotations

from typing import Any

from grpclib.encoding.proto import ProtoCodec

from interplay.core.documents import (
    Acked,
    CursorMoved,
    DocumentCommand,
    DocumentEvent,
    EditDocument,
    MoveCursor,
    OpenDocument,
    Remote,
    Snapshot,
)
from interplay.core.errors import InvalidArgument
from interplay.core.rooms import Command, Join, Kind, Leave, Post, RoomMessage, Typing

from .generated.chat import ChatMessage, ChatMessageMessageType, EditOperation

# Core field names -> the wire's, for error messages the client can act on.
CHAT_FIELDS = {"room": "room_id", "user": "sender_id"}
EDIT_FIELDS = {"document": "document_id", "user": "user_id"}

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


def edit_command(message: EditOperation, session: str) -> DocumentCommand:
    """The core command a client's EditOperation asks for.

    ``delete`` and ``replace`` remove ``length`` code points; 0 means ``len(content)``, what the
    original clients meant (they sent no ``length``; ``replace`` overwrote as many as it wrote).
    """
    operation = message.operation
    common = {"session": session, "document": message.document_id, "user": message.user_id}
    if operation in ("insert", "delete", "replace"):
        content = message.content
        removed = message.length or len(content)
        return EditDocument(
            **common,
            base=message.version,
            position=message.position,
            deleted=0 if operation == "insert" else removed,
            inserted="" if operation == "delete" else content,
            op_id=message.op_id,
        )
    if operation == "join":
        return OpenDocument(**common)
    if operation == "cursor":
        return MoveCursor(
            **common, base=message.version, position=message.position, length=message.length
        )
    raise InvalidArgument(
        "operation",
        f"unknown operation {operation!r}: expected join, insert, delete, replace or cursor",
    )


def encode_edit(event: DocumentEvent, timestamp: int) -> list[bytes]:
    """The EditOperations an event becomes (a rebased op may need several), encoded."""
    doc = event.document
    if isinstance(event, Remote):
        if not event.pieces:
            return [
                bytes(
                    EditOperation(
                        document_id=doc,
                        user_id=event.user,
                        operation="noop",
                        version=event.revision,
                        op_id=event.op_id,
                        timestamp=timestamp,
                    )
                )
            ]
        out = []
        for piece in event.pieces:
            operation = (
                "replace"
                if piece.deleted and piece.inserted
                else ("insert" if piece.inserted else "delete")
            )
            out.append(
                bytes(
                    EditOperation(
                        document_id=doc,
                        user_id=event.user,
                        position=piece.position,
                        operation=operation,
                        content=piece.inserted or piece.deleted,
                        length=len(piece.deleted),
                        version=event.revision,
                        op_id=event.op_id,
                        timestamp=timestamp,
                    )
                )
            )
        return out
    if isinstance(event, Acked):
        message = EditOperation(
            document_id=doc,
            user_id=event.user,
            operation="ack",
            version=event.revision,
            op_id=event.op_id,
            timestamp=timestamp,
        )
    elif isinstance(event, Snapshot):
        message = EditOperation(
            document_id=doc,
            operation="snapshot",
            content=event.text,
            version=event.revision,
            timestamp=timestamp,
        )
    elif isinstance(event, CursorMoved):
        message = EditOperation(
            document_id=doc,
            user_id=event.user,
            operation="cursor",
            position=event.position,
            length=event.length,
            version=event.revision,
            timestamp=timestamp,
        )
    else:
        raise TypeError(f"not a document event: {event!r}")
    return [bytes(message)]
