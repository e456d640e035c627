"""Frames of the two subprotocols ⇄ the proto messages, and the runtime's codecs for them.

A WebSocket call carries the messages of ``protos/chat.proto``, one per frame:

- ``interplay.v1.proto``: binary frames, the protobuf encoding, byte for byte what gRPC sends
  (so a broadcast to gRPC and WebSocket members of one room is encoded once, by the same codec
  object: ``interplay.transports.grpc.codec.wire_codecs``);
- ``interplay.v1.json``: text frames, the proto3 JSON mapping (camelCase names, enums by name,
  int64 as strings; the original snake_case names and plain numbers are accepted too, as every
  proto3 JSON parser does). Every field is written, defaults included, so a browser needs no
  schema to read ``"type": "TEXT"``.

What gRPC says with a half-close, a client says with the text frame ``{"end":true}`` on either
subprotocol. Every conversion between proto messages and the core stays in the gRPC package's
``codec`` module: this one only turns frames into messages and back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from interplay.core.errors import InvalidArgument
from interplay.core.game import TickState
from interplay.runtime.outbox import Codec
from interplay.runtime.server import Service
from interplay.transports.grpc.generated import chat_pb2 as pb

PROTO: Final = "interplay.v1.proto"
JSON: Final = "interplay.v1.json"
SUBPROTOCOLS: Final = (PROTO, JSON)

# The end message: the client sends nothing more (gRPC's half-close).
END: Final = '{"end":true}'

PATHS: Final = {"/chat": Service.CHAT, "/edit": Service.EDIT, "/game": Service.GAME}

# What a client sends on each call, and what it receives.
REQUEST: Final[dict[Service, Any]] = {
    Service.CHAT: pb.ChatMessage,
    Service.EDIT: pb.EditOperation,
    Service.GAME: pb.GameAction,
}
REPLY: Final[dict[Service, Any]] = {
    Service.CHAT: pb.ChatMessage,
    Service.EDIT: pb.EditOperation,
    Service.GAME: pb.GameState,
}


class Ended(Exception):
    """The frame was the end message."""


def is_end(text: str) -> bool:
    if text == END:
        return True
    if '"end"' not in text:
        return False
    try:
        return json.loads(text) == {"end": True}
    except ValueError:
        return False


def parse(frame: str | bytes, subprotocol: str, message_type: Any) -> Any:
    """The proto message in one received frame; ``Ended`` for the end message; a bad frame is
    ``InvalidArgument`` on ``frame``, naming the rule."""
    name = message_type.DESCRIPTOR.full_name
    if isinstance(frame, str):
        if is_end(frame):
            raise Ended()
        if subprotocol == PROTO:
            raise InvalidArgument(
                "frame",
                f"{PROTO} carries binary frames (one protobuf {name} each); its only text "
                f"frame is the end message {END}",
            )
        try:
            return json_format.Parse(frame, message_type())
        except json_format.ParseError as error:
            raise InvalidArgument("frame", f"not a JSON {name}: {error}") from None
    if subprotocol == JSON:
        raise InvalidArgument(
            "frame", f"{JSON} carries text frames (one JSON {name} each), not binary"
        )
    try:
        return message_type.FromString(frame)
    except DecodeError:
        raise InvalidArgument("frame", f"not a protobuf {name}") from None


def proto_to_json(data: bytes, message_type: Any) -> bytes:
    """A protobuf encoding as its proto3 JSON text (UTF-8), every field written."""
    return json_format.MessageToJson(
        message_type.FromString(data),
        indent=None,
        ensure_ascii=False,
        always_print_fields_with_no_presence=True,
    ).encode()


def json_frame(message: Any) -> str:
    """One proto message as a JSON text frame (what a client sends)."""
    return json_format.MessageToJson(message, indent=None, ensure_ascii=False)


class JsonWire:
    """The runtime's ``Codec`` for JSON frames of one RPC: the proto codec's conversions, then
    JSON (a broadcast is encoded once for every JSON member, as for every proto member)."""

    def __init__(self, proto: Codec, reply_type: Any) -> None:
        self.proto = proto
        self._reply = reply_type

    def decode(self, message: Any, session: str) -> Any:
        return self.proto.decode(message, session)

    def encode(self, event: object, stamp: int) -> Sequence[bytes]:
        return [proto_to_json(frame, self._reply) for frame in self.proto.encode(event, stamp)]

    def encode_state(self, match: str, state: TickState, *, full: bool, stamp: int) -> bytes:
        frame = self.proto.encode_state(match, state, full=full, stamp=stamp)
        return proto_to_json(frame, pb.GameState)

    def forget_matches(self, open_matches: Any) -> None:
        forget = getattr(self.proto, "forget_matches", None)
        if forget is not None:
            forget(open_matches)
