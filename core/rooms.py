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
* TEXT gets the room's next ``seq`` (1, 2, 3, ... per room, no gaps), becomes an
  ``AppendMessage`` write (``take_writes()``; the runtime makes it durable before it delivers
  the events), and goes to every member session, the sender's own included (its
  acknowledgement). A TEXT re-sent with the same sender and ``id`` while the original is in
  the history window is not stored again: the sender gets the original back.
* JOIN and LEAVE are presence: relayed, not stored, not sequenced, and per *user*: a user with
  two sessions in a room is announced once, when the first joins and when the last leaves.
* TYPING goes to the other members; it is not stored or sequenced.
* A joiner receives, in order: its JOIN echo carrying the room's ``epoch`` and head ``seq``; one
  JOIN per other user present; then history: the last ``history`` messages, or everything after
  ``resume_after_seq`` when that is still retained. A resume from before the retained range,
  or under another epoch, first gets a SYSTEM notice saying so, then the normal window.

Storage is effects (``core/effects.py``): before ``handle``, the caller asks ``needs(command)``
and ``provide``s what it names (a room's record and window on its first JOIN, older history on a
resume from beyond the window); after it, ``take_writes()``. Rate limits are not here: the
runtime shapes each stream's rate (a fast sender waits; nothing is refused for speed).
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .effects import (
    AppendMessage,
    CreateRoom,
    LoadedRoom,
    LoadRoom,
    Read,
    ReadHistory,
    RoomRecord,
    TrimRoom,
    Write,
)
from .errors import InvalidArgument, LimitExceeded, NotJoined, Rejection, WrongIdentity
from .events import Deliver
from .limits import MAX_ID_LENGTH


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
    # On a SYSTEM message for one sender: its message ``id`` (in ``room``) was refused.
    rejection: Rejection | None = None


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
    """Per-message and per-stream limits."""

    max_content_bytes: int = 64 * 1024
    max_id_length: int = MAX_ID_LENGTH
    max_rooms: int = 128

    def __post_init__(self) -> None:
        for name in ("max_content_bytes", "max_id_length", "max_rooms"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class HubStatistics:
    sessions: int
    rooms_loaded: int
    members: int


@dataclass(slots=True)
class _Session:
    user: str = ""
    rooms: set[str] = field(default_factory=set)


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
        *,
        history: int = 100,
        retain: int = 10_000,
        limits: ChatLimits | None = None,
        new_epoch: Callable[[], str] = _new_epoch,
    ) -> None:
        if not 0 <= history <= retain:
            raise ValueError(f"history: need 0 <= history <= retain, got {history}, {retain}")
        self._history = history
        self._retain = max(retain, 1)
        self._trim_every = max(self._retain // 10, 1)
        self.limits = limits or ChatLimits()
        self._new_epoch = new_epoch
        self._sessions: dict[str, _Session] = {}
        self._rooms: dict[str, _Room] = {}
        self._writes: list[Write] = []
        self._fetched: dict[tuple[str, str], list[RoomMessage]] = {}  # (session, room) -> older
        self._exhausted: set[tuple[str, str]] = set()  # ... whose last read found nothing

    # -- storage effects -----------------------------------------------------------------

    def needs(self, command: Command) -> Read | None:
        """What must be read before ``handle(command)``: the room on its first JOIN, older
        history on a resume from before the window. None: handle it now. Raises the
        ``CoreError`` that ``handle`` would, for a JOIN refused whatever the room holds."""
        if not isinstance(command, Join):
            return None
        self._check_join(command)  # what would be refused anyway is refused before any read
        room = self._rooms.get(command.room)
        if room is None:
            return LoadRoom(room=command.room, recent=self._history)
        resume = command.resume_after_seq
        if resume is None or resume < 0 or (command.epoch and command.epoch != room.epoch):
            return None
        older = self._fetched.get((command.session, command.room))
        have = older[-1].seq if older else resume
        window_start = room.window[0].seq if room.window else room.head + 1
        if have >= room.head or have + 1 >= window_start or resume < room.first_seq - 1:
            return None
        if (command.session, command.room) in self._exhausted:
            return None  # the last read found nothing more: what the backend has is all there is
        return ReadHistory(room=command.room, after_seq=have, limit=self._retain)

    def provide(self, read: Read, result: object, *, session: str = "") -> None:
        """Hand back what ``needs`` asked for: a ``LoadedRoom`` for ``LoadRoom``; for
        ``ReadHistory``, the messages read (for ``session``'s next JOIN of that room)."""
        if isinstance(read, LoadRoom):
            assert isinstance(result, LoadedRoom)
            if read.room not in self._rooms:  # loaded meanwhile by another JOIN: keep that
                self._rooms[read.room] = self._load(read.room, result)
        elif isinstance(read, ReadHistory):
            assert isinstance(result, list)
            self._fetched.setdefault((session, read.room), []).extend(result)
            if not result:
                self._exhausted.add((session, read.room))
        else:
            raise TypeError(f"not a chat read: {read!r}")

    def take_writes(self) -> list[Write]:
        """The writes the commands handled so far made, oldest first; each only once."""
        writes, self._writes = self._writes, []
        return writes

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

    def _check_join(self, cmd: Join) -> _Session | None:
        """The rules a JOIN must pass before its room is even loaded; its session, if any."""
        self._check_id("room", cmd.room)
        self._check_id("user", cmd.user)
        if not cmd.user:
            raise InvalidArgument("user", "must not be empty on JOIN")
        if cmd.resume_after_seq is not None and cmd.resume_after_seq < 0:
            raise InvalidArgument("resume_after_seq", "must not be negative")
        session = self._sessions.get(cmd.session)
        if session is not None and session.user != cmd.user:
            raise WrongIdentity(
                "user", f"this stream is bound to {session.user!r}, not {cmd.user!r}"
            )
        already_in = session is not None and cmd.room in session.rooms
        if session is not None and not already_in and len(session.rooms) >= self.limits.max_rooms:
            raise LimitExceeded("room", f"at most {self.limits.max_rooms} rooms per stream")
        return session

    def _join(self, cmd: Join, now: float) -> list[Deliver[RoomMessage]]:
        session = self._check_join(cmd)
        already_in = session is not None and cmd.room in session.rooms
        room = self._rooms.get(cmd.room)
        if room is None:
            raise RuntimeError(f"room {cmd.room!r} is not loaded: provide needs(command) first")
        resume = cmd.resume_after_seq
        same_epoch = not cmd.epoch or cmd.epoch == room.epoch
        if resume is not None and same_epoch and resume > room.head:
            if not room.members:  # loaded for this JOIN only: the next one reloads it
                del self._rooms[cmd.room]
            raise InvalidArgument(
                "resume_after_seq", f"must not exceed the room's head seq {room.head}"
            )
        if session is None:
            session = self._sessions[cmd.session] = _Session(user=cmd.user)

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
        older = self._fetched.pop((cmd.session, cmd.room), [])
        self._exhausted.discard((cmd.session, cmd.room))
        events += [Deliver(to=me, message=m) for m in self._history_for(room, cmd, stamp, older)]
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

    def _history_for(
        self, room: _Room, cmd: Join, stamp: int, older: list[RoomMessage]
    ) -> list[RoomMessage]:
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
            # Read by the caller (``needs``); the window continues where it ends.
            last = older[-1].seq if older else resume
            return [*older, *(m for m in window if m.seq > last)]
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
                return [Deliver(to=(cmd.session,), message=original)]
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
        self._writes.append(AppendMessage(message=message))  # durable before anyone hears of it
        room.head = seq
        self._remember(room, message)
        if seq - room.first_seq >= self._retain:
            room.first_seq = seq - self._retain + 1
            if seq % self._trim_every == 0:
                self._writes.append(TrimRoom(room=room.name, before_seq=room.first_seq))
        return [Deliver(to=room.recipients, message=message)]

    def _typing(self, cmd: Typing, now: float) -> list[Deliver[RoomMessage]]:
        session, room = self._member(cmd.session, cmd.room, cmd.user, "TYPING")
        others = tuple(s for s in room.recipients if s != cmd.session)
        if not others:
            return []
        message = RoomMessage(
            kind=Kind.TYPING, room=room.name, sender=session.user, timestamp=_millis(now)
        )
        return [Deliver(to=others, message=message)]

    def _disconnect(self, name: str, now: float) -> list[Deliver[RoomMessage]]:
        session = self._sessions.pop(name, None)
        if self._fetched:  # older history read for a JOIN that never came (it was refused)
            for key in [key for key in self._fetched if key[0] == name]:
                del self._fetched[key]
                self._exhausted.discard(key)
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
            raise WrongIdentity(
                "user", f"this stream is bound to {session.user!r}, not {claimed!r}"
            )
        return session, self._rooms[room_name]

    def _remove(self, name: str, session: _Session, room: _Room) -> bool:
        session.rooms.discard(room.name)
        last = room.remove(name)
        if not room.members:
            del self._rooms[room.name]  # the store keeps it; the next JOIN reloads it
        return last

    def _load(self, name: str, loaded: LoadedRoom) -> _Room:
        record = loaded.record
        if record is None:
            record = RoomRecord(epoch=self._new_epoch(), head=0)
            self._writes.append(CreateRoom(room=name, epoch=record.epoch))
        head = record.head
        room = _Room(
            name=name,
            epoch=record.epoch,
            head=head,
            first_seq=max(1, head - self._retain + 1),
            window=deque(maxlen=self._history),
            by_id={},
        )
        for message in loaded.recent[-self._history :] if self._history else ():
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


def _millis(now: float) -> int:
    return int(now * 1000)
