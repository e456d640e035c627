"""The client side of Chat: what a reconnecting client must remember so its application sees
no gap and no duplicate.

``ClientRooms`` is driven like the server's hubs, with no I/O: the application's calls
(``join``, ``text``, ``leave``, ``typing``) return the requests to put on the wire; after every
(re)connect, ``connected()`` returns what re-establishes the session (a resuming JOIN per room,
then every TEXT not yet acknowledged, in order, under its original id, which makes the re-send
idempotent on the server); each message from the server goes through ``receive``, which returns
what the application should see and any requests to send.

Per room it keeps the ``epoch`` and the last ``seq`` delivered. TEXTs at or below it are
duplicates (history overlapping what was already seen) and are dropped; a TEXT beyond the next
seq is a gap, answered by a resuming JOIN on the same stream, dropping what arrives until its
echo; so is a message under another epoch (the room's history was deleted meanwhile). A SYSTEM
message with a seq (published by the server's backend) is sequenced like a TEXT. A SYSTEM
notice (seq 0) after a JOIN echo (history was reset or is no longer retained) starts the room
over from the next message, and the application sees the notice.

A refusal (a SYSTEM message with a ``rejection``, naming our message by its ``id``) is shown to
the application and undoes what the message would have done here: a refused TEXT is never
re-sent (``refused(id)`` says why), a refused JOIN leaves the room as if never joined. What
the client can check itself (``ChatLimits``: content size, id lengths, the number of rooms) it
refuses at once, raising the core's error, without sending anything.
"""

from __future__ import annotations

import itertools
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from .errors import InvalidArgument, LimitExceeded, NotJoined, Rejection
from .rooms import ChatLimits, Kind, RoomMessage

# -- requests: what the client puts on the wire -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinRequest:
    room: str
    user: str
    resume_after_seq: int | None = None
    epoch: str = ""
    id: str = field(default="", compare=False)  # names it in a refusal; not what it asks


@dataclass(frozen=True, slots=True, kw_only=True)
class TextRequest:
    room: str
    content: str
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaveRequest:
    room: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingRequest:
    room: str


Request = JoinRequest | TextRequest | LeaveRequest | TypingRequest


@dataclass(slots=True)
class _Room:
    epoch: str = ""
    last_seq: int | None = None  # None: take the next TEXT as the start ...
    head: int | None = None  # ... if it is not past the head our JOIN echo carried (+ 1)
    syncing: bool = True  # a JOIN was sent; its echo has not come back yet
    echoed: bool = False  # the echo came back; a SYSTEM notice now means "start over"
    announced: bool = False  # the application has seen its JOIN echo once
    join_id: str = ""  # the id of the JOIN in flight: a refusal of it names it
    members: set[str] = field(default_factory=set)
    # After a rejoin: the members the application knew, until the presence JOINs that follow
    # the echo are over; those that did not come back left while we were away.
    known: set[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientStatistics:
    rooms: int
    unacknowledged: int
    duplicates_dropped: int
    gaps_resynced: int


@dataclass(slots=True)
class ClientRooms:
    """One user's rooms, across connections. ``id_prefix`` makes this client's TEXT ids unique
    (a random one by default)."""

    user: str
    id_prefix: str = field(default_factory=lambda: secrets.token_hex(6))
    _rooms: dict[str, _Room] = field(default_factory=dict)
    _pending: dict[str, TextRequest] = field(default_factory=dict)  # id -> TEXT, send order
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _joins: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    limits: ChatLimits = field(default_factory=ChatLimits)
    _refused: OrderedDict[str, Rejection] = field(default_factory=OrderedDict)  # the latest
    _duplicates: int = 0
    _gaps: int = 0

    def __post_init__(self) -> None:
        if not self.user:
            raise InvalidArgument("user", "must not be empty")
        self._check_id("user", self.user)

    # -- the application's calls ----------------------------------------------------------

    def join(self, room: str) -> list[Request]:
        self._check_id("room", room)
        if room not in self._rooms and len(self._rooms) >= self.limits.max_rooms:
            raise LimitExceeded("room", f"at most {self.limits.max_rooms} rooms per stream")
        state = self._rooms.setdefault(room, _Room())
        return [self._join_request(room, state)]

    def leave(self, room: str) -> list[Request]:
        if self._rooms.pop(room, None) is None:
            raise NotJoined("room", f"not in room {room!r}")
        for id_ in [i for i, text in self._pending.items() if text.room == room]:
            del self._pending[id_]
        return [LeaveRequest(room=room)]

    def text(self, room: str, content: str) -> list[Request]:
        if room not in self._rooms:
            raise NotJoined("room", f"join room {room!r} before sending TEXT")
        limit = self.limits.max_content_bytes
        if len(content) * 4 > limit and len(content.encode("utf-8", "surrogatepass")) > limit:
            raise LimitExceeded("content", f"must be at most {limit} bytes of UTF-8")
        request = TextRequest(room=room, content=content, id=f"{self.id_prefix}-{next(self._ids)}")
        self._pending[request.id] = request
        return [request]

    def typing(self, room: str) -> list[Request]:
        if room not in self._rooms:
            raise NotJoined("room", f"join room {room!r} before TYPING")
        return [TypingRequest(room=room)]

    # -- the connection's -----------------------------------------------------------------

    def connected(self) -> list[Request]:
        """What a new connection must send first: a resuming JOIN per room, then every
        unacknowledged TEXT in its original order and id."""
        requests: list[Request] = [
            self._join_request(room, state) for room, state in self._rooms.items()
        ]
        return requests + list(self._pending.values())

    def receive(self, message: RoomMessage) -> tuple[list[RoomMessage], list[Request]]:
        """What the application sees of ``message``, and what to send in reply."""
        if message.rejection is not None:
            return self._rejected(message), []
        state = self._rooms.get(message.room)
        if state is None:
            return [], []  # a room left meanwhile
        if message.kind is Kind.JOIN and message.epoch and message.sender == self.user:
            return self._echo(message, state), []
        if state.syncing:
            return [], []  # superseded by the resuming JOIN in flight
        if message.kind is Kind.JOIN:
            return self._present(message, state), []
        seen = self._presence_settled(message.room, state)
        sequenced = message.seq > 0 and message.kind in (Kind.TEXT, Kind.SYSTEM)
        if message.kind is Kind.SYSTEM and not sequenced and state.echoed:
            state.last_seq = None  # history reset or no longer retained: start over
            state.echoed = False
            return [*seen, message], []
        state.echoed = False
        if message.kind is Kind.LEAVE:
            state.members.discard(message.sender)
        if (
            (sequenced or message.kind is Kind.SYSTEM)
            and message.epoch
            and state.epoch
            and message.epoch != state.epoch
        ):
            # The room's stream changed under us (its history was deleted): resume, and the
            # server says what happened (a SYSTEM notice after the echo, then the window).
            self._gaps += 1
            return seen, [self._join_request(message.room, state)]
        if not sequenced:
            return [*seen, message], []
        last = state.last_seq
        if last is None and state.head is not None and message.seq > state.head + 1:
            # The first TEXT after a fresh JOIN skipped past the head it announced: what came
            # between was lost on the way (a gap with no seq to resume from): join again.
            self._gaps += 1
            return seen, [self._join_request(message.room, state)]
        if last is not None and message.seq <= last:
            self._duplicates += 1
            self._acknowledge(message)
            return seen, []
        if last is not None and message.seq > last + 1:
            self._gaps += 1
            return seen, [self._join_request(message.room, state)]
        state.last_seq = message.seq
        self._acknowledge(message)
        return [*seen, message], []

    def joined(self) -> list[str]:
        """The rooms this client is in (joined and not left), in join order."""
        return list(self._rooms)

    def members(self, room: str) -> frozenset[str]:
        """Who is in ``room`` (rebuilt on every rejoin, so a reconnect misses no LEAVE)."""
        state = self._rooms.get(room)
        return frozenset() if state is None else frozenset(state.members)

    def last_seq(self, room: str) -> int | None:
        state = self._rooms.get(room)
        return None if state is None else state.last_seq

    def unacknowledged(self) -> list[TextRequest]:
        return list(self._pending.values())

    def is_pending(self, id: str) -> bool:
        """Our TEXT ``id`` is neither acknowledged nor refused yet."""
        return id in self._pending

    def refused(self, id: str) -> Rejection | None:
        """Why the server refused our message ``id`` (one of the latest 1000), if it did."""
        return self._refused.get(id)

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(
            rooms=len(self._rooms),
            unacknowledged=len(self._pending),
            duplicates_dropped=self._duplicates,
            gaps_resynced=self._gaps,
        )

    # -- internals ------------------------------------------------------------------------

    def _join_request(self, room: str, state: _Room) -> JoinRequest:
        state.syncing = True
        state.join_id = f"{self.id_prefix}-join-{next(self._joins)}"
        return JoinRequest(
            room=room,
            user=self.user,
            resume_after_seq=state.last_seq,
            epoch=state.epoch,
            id=state.join_id,
        )

    def _rejected(self, message: RoomMessage) -> list[RoomMessage]:
        """One of our messages was refused: undo what it meant here; show the notice."""
        assert message.rejection is not None
        if message.id:
            self._refused[message.id] = message.rejection
            if len(self._refused) > 1000:
                self._refused.popitem(last=False)
        self._pending.pop(message.id, None)  # a TEXT: never re-sent
        state = self._rooms.get(message.room)
        if state is not None and message.id and message.id == state.join_id:
            self.leave(message.room)  # its JOIN: as if never joined (nothing to send)
        return [message]

    def _check_id(self, name: str, value: str) -> None:
        if not value:
            raise InvalidArgument(name, "must not be empty")
        if len(value) > self.limits.max_id_length:
            raise InvalidArgument(name, f"must be at most {self.limits.max_id_length} characters")

    def _echo(self, message: RoomMessage, state: _Room) -> list[RoomMessage]:
        """Our JOIN came back: the one-per-member presence JOINs and the history follow."""
        state.syncing = False
        state.echoed = True
        state.known = (state.members - {self.user}) if state.announced else None
        state.members = {self.user}
        state.epoch = message.epoch  # if it changed, a SYSTEM notice follows: see receive()
        state.head = message.seq  # history ends there, live traffic starts right after
        if state.announced:
            return []  # a rejoin (reconnect or gap) is invisible to the application
        state.announced = True
        return [message]

    def _present(self, message: RoomMessage, state: _Room) -> list[RoomMessage]:
        """A presence JOIN: shown only if it tells the application something new."""
        new = message.sender not in state.members
        state.members.add(message.sender)
        if state.known is not None and message.sender in state.known:
            state.known.discard(message.sender)
            return []  # still here after our rejoin: the application knows
        return [message] if new else []

    def _presence_settled(self, room: str, state: _Room) -> list[RoomMessage]:
        """The presence JOINs after a rejoin are over: LEAVE for whoever did not come back."""
        if state.known is None:
            return []
        gone, state.known = sorted(state.known), None
        return [RoomMessage(kind=Kind.LEAVE, room=room, sender=user) for user in gone]

    def _acknowledge(self, message: RoomMessage) -> None:
        if message.sender == self.user:
            self._pending.pop(message.id, None)
