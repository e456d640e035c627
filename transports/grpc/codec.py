"""Every conversion between the wire and the core.

The server decodes requests and encodes replies with Google's upb runtime (``chat_pb2``,
generated from the same proto): ~0.3 µs a ChatMessage against ~20 µs for betterproto2, whose
typed dataclasses stay the API users see (``generated.chat``); a property test checks both write
the same bytes. Game states are written by hand (``GameStateEncoder``). ``WireCodec`` lets the
service send bytes it encoded itself: a broadcast is encoded once and the same bytes go to every
receiving stream.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Collection, Mapping
from typing import Any, TypedDict

from grpclib.const import Status
from grpclib.encoding.proto import ProtoCodec

from interplay.core.chat_client import JoinRequest, LeaveRequest, Request, TextRequest
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
from interplay.core.edit_client import (
    DocumentSnapshot,
    EditAck,
    EditRejected,
    EditReply,
    EditRequest,
    JoinDocument,
    ServerEdit,
)
from interplay.core.errors import CoreError, InvalidArgument, Rejection
from interplay.core.frozen import maker
from interplay.core.game import JOIN, LEAVE, Action, GameEvent, PlayerState, TickState
from interplay.core.game_client import ActionRejected, GameRequest, JoinGame, StateUpdate
from interplay.core.matches import Act, JoinMatch, LeaveMatch
from interplay.core.matches import Command as MatchCommand
from interplay.core.rooms import Command, Join, Kind, Leave, Post, RoomMessage, Typing
from interplay.runtime.outbox import Codec
from interplay.runtime.refusals import Refusal
from interplay.runtime.server import Runtime, Service

from . import errors
from .generated import chat_pb2 as pb
from .generated.chat import GameState
from .generated.interplay.admin import v1 as admin

# Core field names -> the wire's, for error messages the client can act on.
CHAT_FIELDS = {"room": "room_id", "user": "sender_id"}
EDIT_FIELDS = {"document": "document_id", "user": "user_id"}
GAME_FIELDS: Mapping[str, str] = {}  # the game's core already says the wire's names
REJECTED = "rejected"  # the event type of a refused game action


class WireCodec(ProtoCodec):
    """grpclib's protobuf codec, except that ``bytes`` are already encoded and pass through."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if type(message) is bytes:
            return message
        return super().encode(message, message_type)


def chat_command(message: Any, session: str) -> Command:
    """The core command a client's ChatMessage (upb) asks for."""
    kind = message.type
    if kind == pb.ChatMessage.TEXT:
        return Post(
            session=session,
            room=message.room_id,
            content=message.content,
            id=message.id,
            user=message.sender_id,
        )
    if kind == pb.ChatMessage.JOIN:
        return Join(
            session=session,
            user=message.sender_id,
            room=message.room_id,
            resume_after_seq=message.resume_after_seq
            if message.HasField("resume_after_seq")
            else None,
            epoch=message.epoch,
        )
    if kind == pb.ChatMessage.TYPING:
        return Typing(session=session, room=message.room_id, user=message.sender_id)
    if kind == pb.ChatMessage.LEAVE:
        return Leave(session=session, room=message.room_id, user=message.sender_id)
    if kind == pb.ChatMessage.SYSTEM:
        raise InvalidArgument("type", "SYSTEM messages are sent by the server only")
    raise InvalidArgument("type", f"unknown message type {int(kind)}")


def encode_chat(message: RoomMessage) -> bytes:
    """Wire bytes of one ChatMessage, ready for ``WireCodec`` to pass through."""
    return pb.ChatMessage(
        id=message.id,
        sender_id=message.sender,
        room_id=message.room,
        content=message.content,
        timestamp=message.timestamp,
        type=message.kind.value,
        seq=message.seq,
        epoch=message.epoch,
    ).SerializeToString()


# -- refusals: one message refused, the stream goes on (DESIGN §4 "Errors") --------------


def rejection(error: CoreError, fields: Mapping[str, str]) -> tuple[Any, str]:
    """The ``Rejection`` (upb) of a refused message, and the same for a person to read."""
    status = errors.status_for(error)
    field = fields.get(error.field, error.field)
    rule = errors.clip(error.rule)
    return pb.Rejection(
        code=status.value, field=field, message=rule
    ), f"{status.name} {field}: {rule}"


def encode_chat_refusal(request: Any, error: CoreError, timestamp: int) -> bytes:
    """The SYSTEM message telling a sender its ChatMessage (upb) was refused: it carries the
    refused ``id`` and ``room_id``, the ``rejection``, and a readable ``content`` for clients
    that know nothing of rejections."""
    wire, reason = rejection(error, CHAT_FIELDS)
    try:
        what = pb.ChatMessage.MessageType.Name(request.type)
    except ValueError:
        what = f"a message of type {int(request.type)}"
    named = f" {request.id!r}" if request.id and request.type == pb.ChatMessage.TEXT else ""
    return pb.ChatMessage(
        type=pb.ChatMessage.SYSTEM,
        id=request.id,
        room_id=request.room_id,
        content=f"refused {what}{named}: {reason}",
        timestamp=timestamp,
        rejection=wire,
    ).SerializeToString()


def encode_edit_refusal(request: Any, error: CoreError, timestamp: int) -> bytes:
    """The ``reject`` telling an editor its EditOperation (upb) was refused: its ``op_id``,
    ``document_id`` and ``version``, the ``rejection``, and a readable ``content``."""
    wire, reason = rejection(error, EDIT_FIELDS)
    named = f" {request.op_id!r}" if request.op_id else ""
    return pb.EditOperation(
        document_id=request.document_id,
        user_id=request.user_id,
        operation="reject",
        op_id=request.op_id,
        version=request.version,
        content=f"refused {errors.clip(request.operation)!r}{named}: {reason}",
        timestamp=timestamp,
        rejection=wire,
    ).SerializeToString()


def encode_game_refusal(request: Any, error: CoreError, timestamp: int) -> bytes:
    """The GameState, for that player alone, telling it its GameAction (upb) was refused: no
    tick, no players, one ``rejected`` event carrying the action's ``sequence``, the
    ``rejection`` and a readable ``data``."""
    wire, reason = rejection(error, GAME_FIELDS)
    action = errors.clip(request.action_type)
    return pb.GameState(
        match_id=request.match_id,
        timestamp=timestamp,
        events=[
            pb.GameEvent(
                event_id=f"{REJECTED}-{request.sequence}",
                event_type=REJECTED,
                data=f"refused {action!r} (sequence {request.sequence}): {reason}",
                rejection=wire,
                sequence=request.sequence,
            )
        ],
    ).SerializeToString()


def rejection_of(wire: Any) -> Rejection:
    """A received ``Rejection`` (upb or betterproto2) in the core's terms."""
    try:
        code = Status(wire.code).name
    except ValueError:
        code = f"status {wire.code}"
    return Rejection(code=code, field=wire.field, rule=wire.message)


def chat_request(request: Request, user: str) -> Any:
    """The ChatMessage (upb) a client sends for one of ``ClientRooms``' requests."""
    if isinstance(request, JoinRequest):
        message = pb.ChatMessage(
            type=pb.ChatMessage.JOIN,
            room_id=request.room,
            sender_id=user,
            epoch=request.epoch,
            id=request.id,
        )
        if request.resume_after_seq is not None:
            message.resume_after_seq = request.resume_after_seq
        return message
    if isinstance(request, TextRequest):
        return pb.ChatMessage(
            type=pb.ChatMessage.TEXT,
            room_id=request.room,
            sender_id=user,
            content=request.content,
            id=request.id,
        )
    kind = pb.ChatMessage.LEAVE if isinstance(request, LeaveRequest) else pb.ChatMessage.TYPING
    return pb.ChatMessage(type=kind, room_id=request.room, sender_id=user)


def room_message(message: Any) -> RoomMessage:
    """A ChatMessage (upb) the server sent, as the core's ``RoomMessage``."""
    return RoomMessage(
        kind=Kind(message.type),
        room=message.room_id,
        sender=message.sender_id,
        id=message.id,
        content=message.content,
        timestamp=message.timestamp,
        seq=message.seq,
        epoch=message.epoch,
        rejection=rejection_of(message.rejection) if message.HasField("rejection") else None,
    )


# EditDocument(session, document, base, position, deleted, inserted, op_id, user)
_edit_document = maker(EditDocument)
_SPLICES = frozenset(("insert", "delete", "replace"))


def edit_command(message: Any, session: str) -> DocumentCommand:
    """The core command a client's EditOperation (upb) asks for.

    ``delete`` and ``replace`` remove ``length`` code points; 0 means ``len(content)``, what the
    original clients meant (they sent no ``length``; ``replace`` overwrote as many as it wrote).
    """
    operation = message.operation
    if operation in _SPLICES:  # every edit: without a dict or keywords (core/frozen.py)
        content = message.content
        return _edit_document(
            session,
            message.document_id,
            message.version,
            message.position,
            0 if operation == "insert" else message.length or len(content),
            "" if operation == "delete" else content,
            message.op_id,
            message.user_id,
        )
    common = {"session": session, "document": message.document_id, "user": message.user_id}
    if operation == "join":  # version > 0: "I hold this revision, catch me up"
        # op_id: the edit the client has in flight, if any (a snapshot says whether it landed)
        return OpenDocument(**common, since=message.version or None, pending=message.op_id)
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
                pb.EditOperation(
                    document_id=doc,
                    user_id=event.user,
                    operation="noop",
                    version=event.revision,
                    op_id=event.op_id,
                    timestamp=timestamp,
                ).SerializeToString()
            ]
        out = []
        for piece in event.pieces:
            operation = (
                "replace"
                if piece.deleted and piece.inserted
                else ("insert" if piece.inserted else "delete")
            )
            out.append(
                pb.EditOperation(
                    document_id=doc,
                    user_id=event.user,
                    position=piece.position,
                    operation=operation,
                    content=piece.inserted or piece.deleted,
                    length=len(piece.deleted),
                    version=event.revision,
                    op_id=event.op_id,
                    timestamp=timestamp,
                ).SerializeToString()
            )
        return out
    if isinstance(event, Acked):
        message = pb.EditOperation(
            document_id=doc,
            user_id=event.user,
            operation="ack",
            version=event.revision,
            op_id=event.op_id,
            timestamp=timestamp,
        )
    elif isinstance(event, Snapshot):
        message = pb.EditOperation(
            document_id=doc,
            operation="snapshot",
            content=event.text,
            version=event.revision,
            op_id=event.op_id,
            timestamp=timestamp,
        )
    elif isinstance(event, CursorMoved):
        message = pb.EditOperation(
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
    return [message.SerializeToString()]


# -- GameSync ----------------------------------------------------------------------------


def game_command(message: Any, session: str) -> MatchCommand:
    """The core command a client's GameAction (upb) asks for."""
    kind = message.action_type
    if kind == JOIN:
        return JoinMatch(session=session, player=message.player_id, match=message.match_id)
    if kind == LEAVE:
        return LeaveMatch(session=session, player=message.player_id, match=message.match_id)
    action = Action(
        player=message.player_id,
        kind=kind,
        params=dict(message.parameters),
        sequence=message.sequence,
    )
    return Act(session=session, action=action, match=message.match_id)


class ChatWire:
    """The Chat RPC's wire format, as the runtime's ``Codec``."""

    def decode(self, message: Any, session: str) -> Command:
        return chat_command(message, session)

    def encode(self, event: object, stamp: int) -> tuple[bytes]:
        if isinstance(event, RoomMessage):
            return (encode_chat(event),)
        assert isinstance(event, Refusal)
        return (encode_chat_refusal(event.request, event.error, stamp),)

    def encode_state(self, match: str, state: TickState, *, full: bool, stamp: int) -> bytes:
        raise TypeError("Chat carries no game states")


class EditWire:
    """The CollaborativeEdit RPC's wire format, as the runtime's ``Codec``."""

    def decode(self, message: Any, session: str) -> DocumentCommand:
        return edit_command(message, session)

    def encode(self, event: object, stamp: int) -> list[bytes]:
        if isinstance(event, Refusal):
            return [encode_edit_refusal(event.request, event.error, stamp)]
        return encode_edit(event, stamp)  # type: ignore[arg-type]

    def encode_state(self, match: str, state: TickState, *, full: bool, stamp: int) -> bytes:
        raise TypeError("CollaborativeEdit carries no game states")


class GameWire:
    """The GameSync RPC's wire format, as the runtime's ``Codec``: one encoder per match."""

    def __init__(self) -> None:
        self._encoders: dict[str, GameStateEncoder] = {}

    def decode(self, message: Any, session: str) -> MatchCommand:
        return game_command(message, session)

    def encode(self, event: object, stamp: int) -> list[bytes]:
        if isinstance(event, Refusal):  # the one event besides states: for its player alone
            return [encode_game_refusal(event.request, event.error, stamp)]
        raise TypeError("GameSync carries only game states and refusals")

    def encode_state(self, match: str, state: TickState, *, full: bool, stamp: int) -> bytes:
        encoder = self._encoders.get(match)
        if encoder is None:
            encoder = self._encoders[match] = GameStateEncoder(match)
        return encoder.encode(state, full=full, timestamp=stamp)

    def forget_matches(self, open_matches: Collection[str]) -> None:
        """Drop the encoders of matches that closed."""
        if len(self._encoders) > len(open_matches):
            for name in [name for name in self._encoders if name not in open_matches]:
                del self._encoders[name]


_WIRE_CODECS: weakref.WeakKeyDictionary[Runtime, dict[Service, Codec]] = weakref.WeakKeyDictionary()


def wire_codecs(runtime: Runtime) -> dict[Service, Codec]:
    """The protobuf codecs of one runtime's three RPCs, the same objects for every transport
    that sends protobuf (gRPC, WebSocket's ``interplay.v1.proto``): the runtime encodes a
    broadcast once per codec object, so they share the bytes."""
    codecs = _WIRE_CODECS.get(runtime)
    if codecs is None:
        codecs = _WIRE_CODECS[runtime] = {
            Service.CHAT: ChatWire(),
            Service.EDIT: EditWire(),
            Service.GAME: GameWire(),
        }
    return codecs


class GameStateEncoder:
    """Writes ``GameState`` bytes directly, for one match.

    betterproto2 needs ~2.9 ms for a 100-player state (../shared/notes); this writes the same
    protobuf encoding by hand, and keeps each player's encoded ``PlayerState`` until that player's
    state object is replaced (the core replaces, never mutates), so a full state is mostly a
    join of cached bytes and a delta encodes only the players that changed. Checked against
    betterproto2's decoder by a property test.
    """

    __slots__ = ("_cache", "match")

    def __init__(self, match: str) -> None:
        self.match = match
        self._cache: dict[str, tuple[PlayerState, bytes]] = {}

    def encode(self, state: TickState, *, full: bool, timestamp: int) -> bytes:
        previous = self._cache
        if full:
            self._cache = {}  # rebuilt from the players present: those who left are forgotten
        cache = self._cache
        out = bytearray()
        if state.tick:
            out += b"\x08" + _varint(state.tick)
        for player in state.players if full else state.changed:
            cached = previous.get(player.player)
            data = cached[1] if cached is not None and cached[0] is player else _player(player)
            cache[player.player] = (player, data)
            _field(out, b"\x12", data)
        for event in state.events:
            body = bytearray()
            _string(body, b"\x0a", event.id)
            _string(body, b"\x12", event.kind)
            _string(body, b"\x1a", event.data)
            _field(out, b"\x1a", body)
        if timestamp:
            out += b"\x20" + _varint(timestamp)
        _string(out, b"\x2a", self.match)
        if full:
            out += b"\x30\x01"
        return bytes(out)


def _player(player: PlayerState) -> bytes:
    out = bytearray()
    _string(out, b"\x0a", player.player)
    if player.x:
        out += b"\x15" + _FLOAT.pack(player.x)
    if player.y:
        out += b"\x1d" + _FLOAT.pack(player.y)
    if player.health:
        out += b"\x20" + _varint(player.health)
    for key, value in player.attributes:
        entry = bytearray()
        _string(entry, b"\x0a", key)
        _string(entry, b"\x12", value)
        _field(out, b"\x2a", entry)
    if player.last_sequence:
        out += b"\x30" + _varint(player.last_sequence)
    return bytes(out)


_FLOAT = struct.Struct("<f")


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int32/int64 as their 64-bit two's complement."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(out: bytearray, tag: bytes, body: bytes | bytearray) -> None:
    out += tag
    out += _varint(len(body))
    out += body


def _string(out: bytearray, tag: bytes, value: str) -> None:
    if value:
        _field(out, tag, value.encode())


def game_update(message: GameState) -> GameUpdate:
    """A received GameState in the core's terms, ready for ``GameMirror.apply(**update)``."""
    return {
        "tick": message.tick,
        "full": message.full,
        "players": [
            PlayerState(
                player=p.player_id,
                x=p.x,
                y=p.y,
                health=p.health,
                attributes=tuple(sorted(p.attributes.items())),
                last_sequence=p.last_sequence,
            )
            for p in message.players
        ],
        "events": [
            GameEvent(id=e.event_id, kind=e.event_type, data=e.data) for e in message.events
        ],
    }


class GameUpdate(TypedDict):
    tick: int
    full: bool
    players: list[PlayerState]
    events: list[GameEvent]


# -- the clients' side: core client requests -> wire, wire -> what the client machines receive


def edit_request(request: EditRequest) -> Any:
    """The EditOperation (upb) a client sends for one of ``ClientEditor``'s requests."""
    if isinstance(request, JoinDocument):
        return pb.EditOperation(
            document_id=request.document,
            user_id=request.user,
            operation="join",
            version=request.revision,
            op_id=request.pending,
        )
    deleted, inserted = request.deleted, request.inserted
    operation = "replace" if deleted and inserted else ("insert" if inserted else "delete")
    return pb.EditOperation(
        document_id=request.document,
        user_id=request.user,
        operation=operation,
        position=request.position,
        length=deleted,
        content=inserted,
        version=request.base,
        op_id=request.op_id,
    )


def edit_reply(message: Any) -> EditReply | None:
    """An EditOperation (upb) the server sent, as ``ClientEditor`` receives it; None for what
    the client does not follow (others' cursors)."""
    kind = message.operation
    if kind == "snapshot":
        return DocumentSnapshot(text=message.content, revision=message.version, op_id=message.op_id)
    if kind == "ack":
        return EditAck(op_id=message.op_id, revision=message.version)
    if kind == "reject":
        return EditRejected(op_id=message.op_id, rejection=rejection_of(message.rejection))
    if kind not in ("insert", "delete", "replace", "noop"):
        return None
    return ServerEdit(
        user=message.user_id,
        op_id=message.op_id,
        revision=message.version,
        position=0 if kind == "noop" else message.position,
        deleted=0 if kind in ("insert", "noop") else message.length,
        inserted="" if kind in ("delete", "noop") else message.content,
    )


def game_request(request: GameRequest) -> Any:
    """The GameAction (upb) a client sends for one of ``ClientPlayer``'s requests."""
    if isinstance(request, JoinGame):
        return pb.GameAction(player_id=request.player, match_id=request.match, action_type=JOIN)
    return pb.GameAction(
        player_id=request.player,
        match_id=request.match,
        action_type=request.kind,
        parameters=dict(request.params),
        sequence=request.sequence,
    )


def state_update(message: Any) -> StateUpdate | ActionRejected:
    """A GameState the server sent, as ``ClientPlayer`` receives it (a refusal of one of
    its actions, if that is what it says)."""
    for event in message.events:
        if event.event_type == REJECTED:
            return ActionRejected(sequence=event.sequence, rejection=rejection_of(event.rejection))
    update = game_update(message)
    return StateUpdate(
        tick=update["tick"],
        full=update["full"],
        players=tuple(update["players"]),
        events=tuple(update["events"]),
    )


# -- the admin API (interplay.admin.v1): betterproto2 messages, off the hot paths ------------

# Core field names -> the admin API's.
ADMIN_FIELDS = {"kind": "type"}


def admin_message(message: RoomMessage) -> admin.Message:
    return admin.Message(
        seq=message.seq,
        id=message.id,
        sender=message.sender,
        content=message.content,
        timestamp=message.timestamp,
        type=admin.MessageType(int(message.kind)),
        epoch=message.epoch,
    )


def admin_kind(value: int) -> Kind:
    """A PublishRequest's type: TEXT or SYSTEM (the core refuses the others by name)."""
    try:
        return Kind(value)
    except ValueError:
        raise InvalidArgument("type", f"unknown message type {value}") from None
