"""Chat rooms: membership, per-room sequence, history window, resume, presence.

``RoomHub.handle(command, now=...)`` takes one command from one stream (a *session*) and returns
the ``Deliver`` events it causes, in the order each recipient must receive them; or it raises a
``CoreError`` and leaves everything as it was. Because a command is handled completely before
the next one, a joiner's history and the live messages that follow it cannot overlap or leave a
gap: the JOIN's events (echo, presence, history) are returned together, and every later TEXT is
returned by a later call.

Rules, in one place:

* A session's first JOIN binds its user; a command claiming another user is refused.
* A session may be in several rooms (``ChatLimits.max_rooms``).
* TEXT gets the room's next ``seq`` (1, 2, 3, ... per room, no gaps), is appended to the store
  before any event is returned, and goes to every member session, the sender's own included
  (its acknowledgement). A TEXT re-sent with the same sender and ``id`` while the original is in
  the history window is not stored again: the sender gets the original back.
* JOIN and LEAVE are presence: relayed, not stored, not sequenced, and per *user*: a user with
  two sessions in a room is announced once, when the first joins and when the last leaves.
* TYPING goes to the other members; it is not stored or sequenced.
* A joiner receives, in order: its JOIN echo carrying the room's ``epoch`` and head ``seq``; one
  JOIN per other user present; then history: the last ``history`` messages, or everything after
  ``resume_after_seq`` when that is still retained. A resume from before the retained range,
  or under another epoch, first gets a SYSTEM notice saying so, then the normal window.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import InvalidArgument, LimitExceeded, NotJoined, PermissionDenied
from .events import Deliver
from .store import HistoryStore


class Kind(enum.IntEnum):
    """What a room message is; the values are the wire's ``ChatMessage.MessageType``."""

    TEXT = 0
    JOIN = 1
    LEAVE = 2
    TYPING = 3
    SYSTEM = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMessage:
    """A message as members see it. ``seq`` is the room sequence for TEXT, the room's head on a
    joiner's own JOIN echo, and 0 otherwise; ``timestamp`` is the server's clock in Unix ms."""

    kind: Kind
    room: str
    sender: str = ""
    id: str = ""
    content: str = ""
    timestamp: int = 0
    seq: int = 0
    epoch: str = ""


# Commands: one stream (``session``) asks for something. ``user`` on Leave/Post/Typing is the
# identity the message claims; empty means "whoever this stream is".


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    session: str
    user: str
    room: str
    resume_after_seq: int | None = None
    epoch: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    session: str
    room: str
    user: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Post:
    session: str
    room: str
    content: str
    id: str = ""
    user: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Typing:
    session: str
    room: str
    user: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    """The stream ended (half-close, error or broken connection): leave every room."""

    session: str


Command = Join | Leave | Post | Typing | Disconnect


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatLimits:
    """Per-message and per-stream limits; 0 disables the rate limit."""

    max_content_bytes: int = 64 * 1024
    max_id_length: int = 255
    max_rooms: int = 128
    rate: float = 1000.0
    burst: int = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class HubStatistics:
    sessions: int
    rooms_loaded: int
    members: int


@dataclass(slots=True)
class _Session:
    user: str = ""
    rooms: set[str] = field(default_factory=set)
    tokens: float = 0.0
    refilled_at: float = 0.0


@dataclass(slots=True)
class _Room:
    name: str
    epoch: str
    head: int
    first_seq: int
    window: deque[RoomMessage]
    by_id: dict[tuple[str, str], RoomMessage]
    members: dict[str, str] = field(default_factory=dict)  # session -> user
    sessions_of: dict[str, int] = field(default_factory=dict)  # user -> sessions present
    recipients: tuple[str, ...] = ()  # cached tuple(members)

    def add(self, session: str, user: str) -> bool:
        """Add a member session; True if the user was not present before."""
        self.members[session] = user
        self.recipients = tuple(self.members)
        count = self.sessions_of.get(user, 0)
        self.sessions_of[user] = count + 1
        return count == 0

    def remove(self, session: str) -> bool:
        """Remove a member session; True if that was the user's last one here."""
        user = self.members.pop(session)
        self.recipients = tuple(self.members)
        count = self.sessions_of[user] - 1
        if count:
            self.sessions_of[user] = count
            return False
        del self.sessions_of[user]
        return True


def _new_epoch() -> str:
    return secrets.token_hex(8)


class RoomHub:
    """Every chat room of a server, driven by commands (see the module docstring)."""

    def __init__(
        self,
        store: HistoryStore,
        *,
        history: int = 100,
        retain: int = 10_000,
        limits: ChatLimits | None = None,
        new_epoch: Callable[[], str] = _new_epoch,
    ) -> None:
        if not 0 <= history <= retain:
            raise ValueError(f"history: need 0 <= history <= retain, got {history}, {retain}")
        self._store = store
        self._history = history
        self._retain = max(retain, 1)
        self._trim_every = max(self._retain // 10, 1)
        self.limits = limits or ChatLimits()
        self._new_epoch = new_epoch
        self._sessions: dict[str, _Session] = {}
        self._rooms: dict[str, _Room] = {}

    # -- queries -------------------------------------------------------------------------

    def members(self, room: str) -> list[str]:
        """Users present in ``room``, sorted."""
        loaded = self._rooms.get(room)
        return sorted(loaded.sessions_of) if loaded else []

    def rooms_of(self, session: str) -> frozenset[str]:
        state = self._sessions.get(session)
        return frozenset(state.rooms) if state else frozenset()

    def head(self, room: str) -> tuple[str, int] | None:
        """``(epoch, head seq)`` of a loaded room."""
        loaded = self._rooms.get(room)
        return (loaded.epoch, loaded.head) if loaded else None

    def statistics(self) -> HubStatistics:
        return HubStatistics(
            sessions=len(self._sessions),
            rooms_loaded=len(self._rooms),
            members=sum(len(r.members) for r in self._rooms.values()),
        )

    # -- commands ------------------------------------------------------------------------

    def handle(self, command: Command, *, now: float) -> list[Deliver[RoomMessage]]:
        """Apply one command at wall-clock time ``now`` (seconds); see the module docstring."""
        if isinstance(command, Post):
            return self._post(command, now)
        if isinstance(command, Typing):
            return self._typing(command, now)
        if isinstance(command, Join):
            return self._join(command, now)
        if isinstance(command, Leave):
            return self._leave(command, now)
        if isinstance(command, Disconnect):
            return self._disconnect(command.session, now)
        raise TypeError(f"not a chat command: {command!r}")

    def _join(self, cmd: Join, now: float) -> list[Deliver[RoomMessage]]:
        self._check_id("room", cmd.room)
        self._check_id("user", cmd.user)
        if not cmd.user:
            raise InvalidArgument("user", "must not be empty on JOIN")
        if cmd.resume_after_seq is not None and cmd.resume_after_seq < 0:
            raise InvalidArgument("resume_after_seq", "must not be negative")
        session = self._sessions.get(cmd.session)
        if session is not None and session.user != cmd.user:
            raise PermissionDenied(
                "user", f"this stream is bound to {session.user!r}, not {cmd.user!r}"
            )
        already_in = session is not None and cmd.room in session.rooms
        if session is not None and not already_in and len(session.rooms) >= self.limits.max_rooms:
            raise LimitExceeded("room", f"at most {self.limits.max_rooms} rooms per stream")
        room = self._rooms.get(cmd.room) or self._load(cmd.room)
        resume = cmd.resume_after_seq
        same_epoch = not cmd.epoch or cmd.epoch == room.epoch
        if resume is not None and same_epoch and resume > room.head:
            raise InvalidArgument(
                "resume_after_seq", f"must not exceed the room's head seq {room.head}"
            )
        if session is None:
            session = _Session(user=cmd.user, tokens=self.limits.burst, refilled_at=now)
            self._take_token(session, now)
            self._sessions[cmd.session] = session
        else:
            self._take_token(session, now)

        stamp = _millis(now)
        newly_present = False
        if not already_in:
            self._rooms[cmd.room] = room
            session.rooms.add(cmd.room)
            newly_present = room.add(cmd.session, cmd.user)
        me = (cmd.session,)
        events = [
            Deliver(
                to=me,
                message=RoomMessage(
                    kind=Kind.JOIN,
                    room=room.name,
                    sender=cmd.user,
                    timestamp=stamp,
                    seq=room.head,
                    epoch=room.epoch,
                ),
            )
        ]
        events += [
            Deliver(to=me, message=RoomMessage(kind=Kind.JOIN, room=room.name, sender=user))
            for user in sorted(room.sessions_of)
            if user != cmd.user
        ]
        events += [Deliver(to=me, message=m) for m in self._history_for(room, cmd, stamp)]
        if newly_present:
            others = tuple(s for s in room.recipients if s != cmd.session)
            if others:
                events.append(
                    Deliver(
                        to=others,
                        message=RoomMessage(
                            kind=Kind.JOIN, room=room.name, sender=cmd.user, timestamp=stamp
                        ),
                    )
                )
        return events

    def _history_for(self, room: _Room, cmd: Join, stamp: int) -> list[RoomMessage]:
        resume = cmd.resume_after_seq
        window = list(room.window)
        if resume is None:
            return window
        if cmd.epoch and cmd.epoch != room.epoch:
            notice = (
                f"history was reset: epoch {cmd.epoch} is gone, the room is now at epoch "
                f"{room.epoch}, head seq {room.head}"
            )
            return [self._system(room, notice, stamp), *window]
        if resume >= room.head:
            return []
        if window and resume >= window[0].seq - 1:
            return [m for m in window if m.seq > resume]
        if resume >= room.first_seq - 1:
            return self._store.read(room.name, resume, self._retain)
        notice = (
            f"history starts at seq {room.first_seq}: messages {resume + 1} to "
            f"{room.first_seq - 1} are no longer retained"
        )
        return [self._system(room, notice, stamp), *window]

    @staticmethod
    def _system(room: _Room, content: str, stamp: int) -> RoomMessage:
        return RoomMessage(
            kind=Kind.SYSTEM, room=room.name, content=content, timestamp=stamp, epoch=room.epoch
        )

    def _leave(self, cmd: Leave, now: float) -> list[Deliver[RoomMessage]]:
        session, room = self._member(cmd.session, cmd.room, cmd.user, "LEAVE")
        self._take_token(session, now)
        user = session.user
        last = self._remove(cmd.session, session, room)
        leave = RoomMessage(kind=Kind.LEAVE, room=room.name, sender=user, timestamp=_millis(now))
        to = (cmd.session, *room.recipients) if last else (cmd.session,)
        return [Deliver(to=to, message=leave)]

    def _post(self, cmd: Post, now: float) -> list[Deliver[RoomMessage]]:
        session, room = self._member(cmd.session, cmd.room, cmd.user, "TEXT")
        self._check_id("id", cmd.id)
        content = cmd.content
        limit = self.limits.max_content_bytes
        if len(content) * 4 > limit and len(content.encode("utf-8", "surrogatepass")) > limit:
            raise LimitExceeded("content", f"must be at most {limit} bytes of UTF-8")
        user = session.user
        if cmd.id:
            original = room.by_id.get((user, cmd.id))
            if original is not None:
                if original.content != content:
                    raise InvalidArgument(
                        "id", f"{cmd.id!r} was already used by {user!r} for another message"
                    )
                self._take_token(session, now)
                return [Deliver(to=(cmd.session,), message=original)]
        self._take_token(session, now)
        seq = room.head + 1
        message = RoomMessage(
            kind=Kind.TEXT,
            room=room.name,
            sender=user,
            id=cmd.id or f"{room.epoch}-{seq}",
            content=content,
            timestamp=_millis(now),
            seq=seq,
            epoch=room.epoch,
        )
        self._store.append(message)  # durable before anyone hears of it
        room.head = seq
        self._remember(room, message)
        if seq - room.first_seq >= self._retain:
            room.first_seq = seq - self._retain + 1
            if seq % self._trim_every == 0:
                self._store.trim(room.name, room.first_seq)
        return [Deliver(to=room.recipients, message=message)]

    def _typing(self, cmd: Typing, now: float) -> list[Deliver[RoomMessage]]:
        session, room = self._member(cmd.session, cmd.room, cmd.user, "TYPING")
        self._take_token(session, now)
        others = tuple(s for s in room.recipients if s != cmd.session)
        if not others:
            return []
        message = RoomMessage(
            kind=Kind.TYPING, room=room.name, sender=session.user, timestamp=_millis(now)
        )
        return [Deliver(to=others, message=message)]

    def _disconnect(self, name: str, now: float) -> list[Deliver[RoomMessage]]:
        session = self._sessions.pop(name, None)
        if session is None:
            return []
        events = []
        stamp = _millis(now)
        for room_name in sorted(session.rooms):
            room = self._rooms[room_name]
            if self._remove(name, session, room) and room.recipients:
                leave = RoomMessage(
                    kind=Kind.LEAVE, room=room_name, sender=session.user, timestamp=stamp
                )
                events.append(Deliver(to=room.recipients, message=leave))
        return events

    # -- helpers -------------------------------------------------------------------------

    def _member(self, name: str, room_name: str, claimed: str, what: str) -> tuple[_Session, _Room]:
        self._check_id("room", room_name)
        session = self._sessions.get(name)
        if session is None or room_name not in session.rooms:
            raise NotJoined("room", f"JOIN room {room_name!r} before sending {what}")
        if claimed and claimed != session.user:
            raise PermissionDenied(
                "user", f"this stream is bound to {session.user!r}, not {claimed!r}"
            )
        return session, self._rooms[room_name]

    def _remove(self, name: str, session: _Session, room: _Room) -> bool:
        session.rooms.discard(room.name)
        last = room.remove(name)
        if not room.members:
            del self._rooms[room.name]  # the store keeps it; the next JOIN reloads it
        return last

    def _load(self, name: str) -> _Room:
        record = self._store.load_room(name)
        if record is None:
            epoch, head = self._new_epoch(), 0
            self._store.create_room(name, epoch)
        else:
            epoch, head = record.epoch, record.head
        room = _Room(
            name=name,
            epoch=epoch,
            head=head,
            first_seq=max(1, head - self._retain + 1),
            window=deque(maxlen=self._history),
            by_id={},
        )
        if self._history and head:
            for message in self._store.read(name, max(0, head - self._history), self._history):
                self._remember(room, message)
        return room

    def _remember(self, room: _Room, message: RoomMessage) -> None:
        """Put ``message`` in the history window, which is also the idempotency window."""
        if not self._history:
            return
        window = room.window
        if len(window) == window.maxlen:
            evicted = window[0]
            room.by_id.pop((evicted.sender, evicted.id), None)
        window.append(message)
        room.by_id[(message.sender, message.id)] = message

    def _check_id(self, name: str, value: str) -> None:
        if len(value) > self.limits.max_id_length:
            raise InvalidArgument(name, f"must be at most {self.limits.max_id_length} characters")
        if name == "room" and not value:
            raise InvalidArgument(name, "must not be empty")

    def _take_token(self, session: _Session, now: float) -> None:
        rate = self.limits.rate
        if not rate:
            return
        tokens = min(self.limits.burst, session.tokens + max(0.0, now - session.refilled_at) * rate)
        if tokens < 1:
            raise LimitExceeded(
                "rate",
                f"at most {rate:g} messages per second per stream (burst {self.limits.burst})",
            )
        session.tokens = tokens - 1
        session.refilled_at = now


def _millis(now: float) -> int:
    return int(now * 1000)
