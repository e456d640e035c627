"""One call of the suite, whatever the transport: send, receive, half-close, and how it ended.

A transport supplies a ``Wire`` per call: the one interface to implement (below). Everything
the checks use on top of it (timeouts, ``recv_n``, ``recv_until``, the chat shorthands, the
editing and game clients) is written here once and names no wire library, so every transport
runs the same checks. The messages are the proto's (``protos/chat.proto``) as the generated
betterproto2 classes of ``interplay.transports.grpc.generated.chat``: ``ChatMessage`` both ways
on ``"chat"``, ``EditOperation`` both ways on ``"edit"``, ``GameAction`` out and ``GameState``
in on ``"game"``; a transport with another encoding converts (``bytes(message)`` and
``Class().parse(data)`` are the protobuf bytes). (They live under interplay.transports.grpc,
whose package imports the gRPC server, so importing them loads its library: the neutrality guard
checks names, not imports.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import anyio

from interplay.core.game import GameMirror
from interplay.core.ot import ClientDocument, TextOp
from interplay.transports.grpc.codec import game_update
from interplay.transports.grpc.generated.chat import (
    ChatMessage,
    ChatMessageMessageType,
    EditOperation,
    GameAction,
    GameEvent,
    GameState,
    Rejection,
)

T = ChatMessageMessageType

S = TypeVar("S", contravariant=True)  # what the client sends
R = TypeVar("R", covariant=True)  # what it receives
Sent = TypeVar("Sent")
Received = TypeVar("Received")


def msg(kind: ChatMessageMessageType, room: str = "lobby", **fields: Any) -> ChatMessage:
    return ChatMessage(type=kind, room_id=room, **fields)


@dataclass(frozen=True)
class Ended:
    """How a call ended: the gRPC status *name* ("OK", "INVALID_ARGUMENT", ...) and its
    message. gRPC reports a status; WebSocket a close code 4000 + N, mapped to the same name."""

    code: str
    message: str = ""


class CallEnded(Exception):
    """The server ended the call with another status than OK."""

    def __init__(self, ended: Ended) -> None:
        super().__init__(f"{ended.code}: {ended.message}")
        self.ended = ended


class Wire(Protocol[S, R]):
    """One call as a transport carries it: what you implement for the suite.

    ``Connect`` (what ``Transport.listen`` yields) opens one as an async context manager.
    Leaving that block without ``end()`` must drop the call abruptly, as a client that vanishes
    does (gRPC: RST_STREAM; WebSocket: the TCP connection aborted): the checks use it to see
    that the server announces a LEAVE and loses nothing. No method needs a timeout of its own:
    the client above bounds every wait."""

    async def send(self, message: S) -> None:
        """Send one message. If the server has already ended the call, raise
        ``CallEnded(Ended(...))`` with how it ended (not your transport's own exception)."""

    async def recv(self) -> R | Ended:
        """The next message from the server, or, once the call is over, how it ended: an
        ``Ended`` with the gRPC status name (``Ended("OK")`` after the server finished a
        half-closed call; ``Ended("PERMISSION_DENIED", "sender_id: ...")`` when it ended the
        call with that status and message). Every message the server sent comes before the
        ``Ended``; the client above asks no more after one."""

    async def end(self) -> None:
        """Half-close: the client sends nothing more, and keeps receiving until the server
        ends the call (gRPC END_STREAM; WebSocket: interplay's end message)."""


class Call(Generic[Sent, Received]):
    """One bidi call under test. ``recv`` returns None once the call ended with OK and raises
    ``CallEnded`` when it ended with another status; ``ended`` then says which."""

    def __init__(self, wire: Wire[Sent, Received]) -> None:
        self.wire = wire
        self.ended: Ended | None = None

    async def send(self, message: Sent) -> None:
        try:
            await self.wire.send(message)
        except CallEnded as error:
            self.ended = error.ended
            raise

    async def end(self) -> None:
        await self.wire.end()

    async def recv(self, timeout: float = 5.0) -> Received | None:
        if self.ended is None:
            with anyio.fail_after(timeout):
                got = await self.wire.recv()
            if not isinstance(got, Ended):
                self._received(got)
                return got
            self.ended = got
        if self.ended.code != "OK":
            raise CallEnded(self.ended)
        return None

    def _received(self, message: Received) -> None:
        """A hook for the stateful clients below: called with every message received."""

    async def recv_n(self, n: int, timeout: float = 5.0) -> list[Received]:
        out: list[Received] = []
        for _ in range(n):
            message = await self.recv(timeout)
            assert message is not None, f"stream ended after {len(out)} of {n} messages"
            out.append(message)
        return out

    async def recv_until(
        self, predicate: Callable[[Received], bool], timeout: float = 5.0
    ) -> list[Received]:
        """Messages up to and including the first that satisfies ``predicate``."""
        out: list[Received] = []
        while True:
            message = await self.recv(timeout)
            assert message is not None, f"stream ended; got {out}"
            out.append(message)
            if predicate(message):
                return out


# gRPC's status numbers (what a rejection's ``code`` and WebSocket's close code 4000 + n carry).
STATUS_NAMES = {
    3: "INVALID_ARGUMENT",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
}


def rejected(rejection: Rejection | None) -> tuple[str, str, str]:
    """A rejection as (status name, field, rule)."""
    assert rejection is not None
    return STATUS_NAMES[rejection.code], rejection.field, rejection.message


def is_refusal(message: ChatMessage) -> bool:
    """A SYSTEM message telling this stream one of its messages was refused."""
    return message.type == T.SYSTEM and message.rejection is not None


class ChatCall(Call[ChatMessage, ChatMessage]):
    async def refusal(self) -> ChatMessage:
        """Receive up to the next refusal, which it returns (the messages before it must
        not be refusals)."""
        got = await self.recv_until(is_refusal)
        assert not any(is_refusal(m) for m in got[:-1])
        return got[-1]

    async def join(self, user: str, room: str = "lobby", **fields: Any) -> None:
        await self.send(msg(T.JOIN, room, sender_id=user, **fields))

    async def text(self, content: str, room: str = "lobby", **fields: Any) -> None:
        await self.send(msg(T.TEXT, room, content=content, **fields))


class EditClient(Call[EditOperation, EditOperation]):
    """A CollaborativeEdit call driving the core's ClientDocument."""

    def __init__(self, wire: Wire[EditOperation, EditOperation], document: str, user: str):
        super().__init__(wire)
        self.document = document
        self.user = user
        self.doc = ClientDocument()
        self.counter = 0
        self.received: list[EditOperation] = []
        self.rejected: list[EditOperation] = []  # "reject"s: ops of ours the server refused

    def _received(self, message: EditOperation) -> None:
        self.received.append(message)
        if message.operation == "reject":
            self.rejected.append(message)

    async def send_op(self, **fields: Any) -> None:
        """An EditOperation for this client's document and user (unless ``fields`` say else)."""
        fields = {"document_id": self.document, "user_id": self.user, **fields}
        await self.send(EditOperation(**fields))

    async def join(self) -> None:
        await self.send_op(operation="join")
        snapshot = await self.recv()
        assert snapshot is not None and snapshot.operation == "snapshot"
        self.doc = ClientDocument(snapshot.content, revision=snapshot.version)

    async def edit(self, position: int, deleted: int = 0, inserted: str = "") -> None:
        """One local edit, sent at once (the client waits for acks between edits)."""
        assert self.doc.outstanding is None, "wait for the ack first"
        op = TextOp.splice(len(self.doc.text), position, deleted, inserted)
        send = self.doc.edit(op)
        assert send is not None
        self.counter += 1
        operation = "replace" if deleted and inserted else ("insert" if inserted else "delete")
        await self.send_op(
            operation=operation,
            position=position,
            length=deleted,
            content=inserted,
            version=send.base,
            op_id=f"{self.user}-{self.counter}",
        )

    def handle(self, message: EditOperation) -> None:
        """Apply one message from the server to the client document."""
        kind = message.operation
        if kind == "ack":
            assert self.doc.ack() is None
        elif kind == "noop":
            self.doc.receive(TextOp.identity(self.doc.server_length), revision=message.version)
        elif kind in ("insert", "delete", "replace"):
            deleted = 0 if kind == "insert" else message.length
            inserted = "" if kind == "delete" else message.content
            op = TextOp.splice(self.doc.server_length, message.position, deleted, inserted)
            self.doc.receive(op, revision=message.version)
        elif kind != "cursor":
            raise AssertionError(f"unexpected {message}")

    async def until_acked(self) -> None:
        while self.doc.outstanding is not None:
            message = await self.recv()
            assert message is not None
            self.handle(message)

    async def until_revision(self, revision: int) -> None:
        while self.doc.revision < revision or self.doc.outstanding is not None:
            message = await self.recv()
            assert message is not None
            self.handle(message)


class GameClient(Call[GameAction, GameState]):
    """A GameSync call: sends actions with sequences, mirrors the states it receives."""

    def __init__(self, wire: Wire[GameAction, GameState], player: str) -> None:
        super().__init__(wire)
        self.player = player
        self.mirror = GameMirror()
        self.sequence = 0
        self.states: list[GameState] = []
        self.rejected: list[GameEvent] = []  # "rejected" events: actions the server refused

    def _received(self, message: GameState) -> None:
        rejected = [e for e in message.events if e.event_type == "rejected"]
        if rejected:  # a state for this player alone: no tick of the match
            assert (message.tick, message.players, len(message.events)) == (0, [], 1)
            self.rejected.extend(rejected)
            return
        self.states.append(message)
        self.mirror.apply(**game_update(message))

    async def send_action(self, action_type: str, **fields: Any) -> None:
        fields.setdefault("player_id", self.player)
        await self.send(GameAction(action_type=action_type, **fields))

    async def join(self, match: str = "") -> None:
        await self.send_action("join", match_id=match)

    async def act(self, action_type: str, **parameters: str) -> int:
        self.sequence += 1
        await self.send_action(action_type, parameters=parameters, sequence=self.sequence)
        return self.sequence

    async def until(self, predicate: Callable[[GameClient], bool], timeout: float = 5.0) -> None:
        """Receive states until ``predicate(self)`` holds."""
        with anyio.fail_after(timeout):
            while not predicate(self):
                assert await self.recv() is not None, "the call ended"
