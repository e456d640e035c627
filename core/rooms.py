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

A server's own backend speaks through ``publish`` (a TEXT or SYSTEM message as a named sender,
idempotent by id like a member's TEXT) and ``delete_history`` (a room's messages, or one
user's: what is left is renumbered from seq 1 under a new epoch, so seqs stay gapless and a
member resuming the old stream is told history was reset). Timestamps never go backwards
within a room (a clock that does is held at the last stamp), so seq order is time order.

Retention by time (``ttl``): ``sweep(now)`` names the next bounded step (a ``RoomAges`` read of
a few rooms, in name order, round and round); ``expire(read, ages)`` trims what has expired
(``TrimRoom``) and forgets a room with no members and no message left (``ForgetRoom``: its
epoch goes too, so a resume is told history was reset). A joiner never receives an expired
message, even before the sweep reaches its room.

Storage is effects (``core/effects.py``): before ``handle``, the caller asks ``needs(command)``
and ``provide``s what it names (a room's record and window on its first JOIN, older history on a
resume from beyond the window); after it, ``take_writes()``. Rate limits are not here: the
runtime shapes each stream's rate (a fast sender waits; nothing is refused for speed).
"""

from __future__ import annotations

import enum
import itertools
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .effects import (
    AppendMessage,
    CreateRoom,
    FindMessage,
    ForgetRoom,
    LoadedRoom,
    LoadRoom,
    Read,
    ReadHistory,
    RoomAge,
    RoomAges,
    RoomRecord,
    TrimRoom,
    Write,
)
from .errors import InvalidArgument, LimitExceeded, NotJoined, Rejection, WrongIdentity
from .events import Deliver
from .id_filter import IdFilter
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Replay:
    """For a joiner: the room's messages with seq in (``after_seq``, ``head``] come from the
    log, read at the joiner's own pace (``core/log_cursor.py``), never copied out at once."""

    room: str
    epoch: str
    after_seq: int
    head: int


RoomEvent = RoomMessage | Replay


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


# Commands of the server's own backend (the admin API), not of a member's stream.


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    """A message into ``room`` as ``sender``: TEXT or SYSTEM, stored and sequenced like a
    member's TEXT; ``id`` is its idempotency key (empty: the server makes one)."""

    room: str
    sender: str
    content: str
    kind: Kind = Kind.TEXT
    id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteHistory:
    """Forget ``room``'s messages, or only ``user``'s (empty: all of them)."""

    room: str
    user: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """What ``publish`` did: the stored message (the original, for a ``duplicate``) and who
    receives it."""

    message: RoomMessage
    duplicate: bool
    deliveries: list[Deliver[RoomMessage]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Deleted:
    """What ``delete_history`` did: messages removed, the room's new epoch and head."""

    removed: int
    epoch: str
    head: int
    deliveries: list[Deliver[RoomMessage]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Expired:
    """What one retention step did: messages trimmed, rooms forgotten, whether the sweep has
    been round every room once more (``lap``), and whether it stopped at its message budget
    with more to trim (``more``: the next step may follow at once)."""

    messages: int
    rooms: int
    lap: bool
    more: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """A TEXT the hub checked but did not sequence (``propose``): on many nodes the shared
    stream assigns the seq, and the message comes back through ``observe``. ``seen`` and
    ``epoch`` are the hub's head of the room, so the stream can tell it lost history."""

    session: str
    room: str
    sender: str
    id: str
    content: str
    timestamp: int
    epoch: str
    seen: int
    kind: Kind = Kind.TEXT  # SYSTEM: the admin API's publish


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


# Rooms dropped from memory are remembered (by generation) so that a LoadRoom read planned
# before the drop, and answered after it, is not trusted: the room may have changed in the
# store meanwhile (a publish, a delete, a forget). Past this many, the oldest half is let go
# and every read planned before them is distrusted instead (it is simply read again).
_DROPPED_KEPT = 4096


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
    ids: IdFilter  # every retained (sender, id), beyond the window: "maybe" asks the store
    stamp: int = 0  # the newest message's timestamp: the next is never older
    members: dict[str, str] = field(default_factory=dict)  # session -> user
    sessions_of: dict[str, int] = field(default_factory=dict)  # user -> sessions present
    recipients: tuple[str, ...] = ()  # cached tuple(members)
    elsewhere: dict[str, set[str]] = field(default_factory=dict)  # user -> other nodes

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
        ttl: float | None = None,
        sweep_rooms: int = 50,
        sweep_messages: int = 2_000,
        limits: ChatLimits | None = None,
        new_epoch: Callable[[], str] = _new_epoch,
    ) -> None:
        if not 0 <= history <= retain:
            raise ValueError(f"history: need 0 <= history <= retain, got {history}, {retain}")
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl: must be positive seconds (None: keep by count only), got {ttl}")
        if sweep_rooms < 1 or sweep_messages < 1:
            which = "sweep_rooms" if sweep_rooms < 1 else "sweep_messages"
            got = min(sweep_rooms, sweep_messages)
            raise ValueError(f"{which}: must be at least 1, got {got}")
        self.ttl = ttl
        self._sweep_rooms = sweep_rooms
        self._sweep_messages = sweep_messages
        self._sweep_after = ""  # the retention sweep's cursor: the last room name it measured
        self._cutoff = 0  # Unix ms: messages stamped before it have expired (0: none known)
        self._generation = 0
        self._dropped: dict[str, int] = {}  # room -> generation it was dropped from memory at
        self._horizon = 0  # reads planned before this generation are read again
        self._history = history
        self._retain = max(retain, 1)
        self._trim_every = max(self._retain // 10, 1)
        self.limits = limits or ChatLimits()
        self._new_epoch = new_epoch
        self._sessions: dict[str, _Session] = {}
        self._rooms: dict[str, _Room] = {}
        self._writes: list[Write] = []
        self._presence: list[tuple[str, str, bool]] | None = None  # many nodes: see share_presence
        self._fetched: dict[tuple[str, str], list[RoomMessage]] = {}  # ("", room) -> stored
        self._exhausted: set[tuple[str, str]] = set()  # ... whose last read found nothing
        # (room, sender, id) -> the stored original (None: not stored), read for the command
        # about to be handled (``FindMessage``)
        self._found: dict[tuple[str, str, str], RoomMessage | None] = {}

    # -- storage effects -----------------------------------------------------------------

    def needs(self, command: Command | Publish | DeleteHistory) -> Read | None:
        """What must be read before ``handle(command)`` (or ``publish``, ``delete_history``):
        the room on its first JOIN, older history on a resume from before the window, every
        stored message before deleting one user's. None: handle it now. Raises the
        ``CoreError`` that ``handle`` would, for a JOIN refused whatever the room holds."""
        if isinstance(command, Publish | DeleteHistory):
            self._check_backend_command(command)  # refused before anything is loaded for it
            room = self._rooms.get(command.room)
            if room is None:
                return self._load_read(command.room)
            if isinstance(command, DeleteHistory) and command.user:
                return self._all_stored(room)
            if isinstance(command, Publish):
                return self._find_read(room, command.sender, command.id)
            return None
        if isinstance(command, Post):
            room = self._rooms.get(command.room)
            session = self._sessions.get(command.session)
            if room is None or session is None or command.room not in session.rooms:
                return None  # handle() refuses it
            return self._find_read(room, session.user, command.id)
        if not isinstance(command, Join):
            return None
        self._check_join(command)  # what would be refused anyway is refused before any read
        if command.room not in self._rooms:
            return self._load_read(command.room)
        return None  # its history is read lazily, after the JOIN (``Replay``)

    def _find_read(self, room: _Room, sender: str, id: str) -> FindMessage | None:
        """The store's lookup of ``(sender, id)``, when the id may be a re-send of a message
        older than the window (``core/id_filter.py``) and was not looked up yet."""
        key = (sender, id)
        if not id or len(id) > self.limits.max_id_length:
            return None  # none, or refused by handle()
        if key in room.by_id or key not in room.ids:
            return None
        if (room.name, sender, id) in self._found:
            return None
        return FindMessage(room=room.name, sender=sender, id=id)

    def _load_read(self, room: str) -> LoadRoom:
        # One message at least, whatever the window: the newest one's timestamp is where the
        # room's clock resumes (``_Room.stamp``), so the next is never stamped before it.
        recent = max(self._history, 1)
        return LoadRoom(room=room, recent=recent, generation=self._generation)

    def _all_stored(self, room: _Room) -> ReadHistory | None:
        """The next read of every stored message of ``room`` (for ``delete_history``)."""
        key = ("", room.name)
        older = self._fetched.get(key)
        have = older[-1].seq if older else room.first_seq - 1
        if have >= room.head or key in self._exhausted:
            return None
        return ReadHistory(room=room.name, after_seq=have, limit=self._retain)

    def provide(self, read: Read, result: object, *, session: str = "") -> None:
        """Hand back what ``needs`` asked for: a ``LoadedRoom`` for ``LoadRoom``; for
        ``ReadHistory``, the messages read (for ``delete_history``; ``session`` is ""). A
        result that may predate a change of the room is dropped: ``needs`` asks again."""
        if isinstance(read, LoadRoom):
            assert isinstance(result, LoadedRoom)
            if read.room in self._rooms:  # loaded meanwhile by another JOIN: keep that
                return
            if (
                read.generation < self._horizon
                or self._dropped.get(read.room, -1) > read.generation
            ):
                return  # planned before the room last left memory: it may be stale
            self._rooms[read.room] = self._load(read.room, result)
        elif isinstance(read, FindMessage):
            assert result is None or isinstance(result, RoomMessage)
            room = self._rooms.get(read.room)
            if room is not None and (result is None or result.epoch == room.epoch):
                self._found[(read.room, read.sender, read.id)] = result
        elif isinstance(read, ReadHistory):
            assert isinstance(result, list)
            room = self._rooms.get(read.room)
            if room is not None and result and result[0].epoch != room.epoch:
                return  # read before the room's history was deleted
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

    @property
    def history(self) -> int:
        """Messages a joiner receives (the window; also the idempotency window)."""
        return self._history

    def members(self, room: str) -> list[str]:
        """Users present in ``room``, sorted."""
        loaded = self._rooms.get(room)
        return sorted(loaded.sessions_of.keys() | loaded.elsewhere.keys()) if loaded else []

    def user_of(self, session: str) -> str | None:
        state = self._sessions.get(session)
        return state.user if state else None

    def rooms_of(self, session: str) -> frozenset[str]:
        state = self._sessions.get(session)
        return frozenset(state.rooms) if state else frozenset()

    def head(self, room: str) -> tuple[str, int] | None:
        """``(epoch, head seq)`` of a loaded room."""
        loaded = self._rooms.get(room)
        return (loaded.epoch, loaded.head) if loaded else None

    def first_retained(self, room: str) -> int | None:
        """The oldest seq a loaded room's log still holds, as far as this hub knows."""
        loaded = self._rooms.get(room)
        return loaded.first_seq if loaded else None

    def statistics(self) -> HubStatistics:
        return HubStatistics(
            sessions=len(self._sessions),
            rooms_loaded=len(self._rooms),
            members=sum(len(r.members) for r in self._rooms.values()),
        )

    # -- commands ------------------------------------------------------------------------

    def handle(self, command: Command, *, now: float) -> list[Deliver[RoomEvent]]:
        """Apply one command at wall-clock time ``now`` (seconds); see the module docstring."""
        try:
            return self._handle(command, now)
        finally:
            self._found.clear()  # what was looked up served this command, or nothing

    def _handle(self, command: Command, now: float) -> list[Deliver[RoomEvent]]:
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

    def _join(self, cmd: Join, now: float) -> list[Deliver[RoomEvent]]:
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
        self._expire_window(room, now)

        stamp = _millis(now)
        newly_present = False
        if not already_in:
            self._rooms[cmd.room] = room
            session.rooms.add(cmd.room)
            newly_present = room.add(cmd.session, cmd.user)
        me = (cmd.session,)
        events: list[Deliver[RoomEvent]] = [
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
            for user in sorted(room.sessions_of.keys() | room.elsewhere.keys())
            if user != cmd.user
        ]
        events += [Deliver(to=me, message=m) for m in self._history_for(room, cmd, stamp)]
        if newly_present and self._presence is not None:
            self._presence.append((room.name, cmd.user, True))
        if newly_present and cmd.user not in room.elsewhere:
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

    def _history_for(self, room: _Room, cmd: Join, stamp: int) -> list[RoomEvent]:
        """What a joiner gets after its echo and the presence JOINs: notices, then the
        ``Replay`` of the messages it should have (the window, or all after its resume)."""
        resume = cmd.resume_after_seq
        window_start = room.window[0].seq - 1 if room.window else room.head
        if resume is None:
            return self._replay(room, window_start)
        if cmd.epoch and cmd.epoch != room.epoch:
            notice = (
                f"history was reset: epoch {cmd.epoch} is gone, the room is now at epoch "
                f"{room.epoch}, head seq {room.head}"
            )
            return [self._system(room, notice, stamp), *self._replay(room, window_start)]
        if resume >= room.head:
            return []
        if resume >= room.first_seq - 1:
            return self._replay(room, resume)
        notice = (
            f"history starts at seq {room.first_seq}: messages {resume + 1} to "
            f"{room.first_seq - 1} are no longer retained"
        )
        return [self._system(room, notice, stamp), *self._replay(room, window_start)]

    @staticmethod
    def _replay(room: _Room, after_seq: int) -> list[RoomEvent]:
        if after_seq >= room.head:
            return []
        return [Replay(room=room.name, epoch=room.epoch, after_seq=after_seq, head=room.head)]

    def retained_from(self, room: str, first_seq: int | None) -> None:
        """A reader found the log of ``room`` starting at ``first_seq`` (trimmed or expired
        since the room loaded; None: reset under another epoch): a resume from before it is
        told so."""
        loaded = self._rooms.get(room)
        if loaded is not None and first_seq is not None:
            self._trim_window(loaded, first_seq)

    @staticmethod
    def _system(room: _Room, content: str, stamp: int) -> RoomMessage:
        return RoomMessage(
            kind=Kind.SYSTEM, room=room.name, content=content, timestamp=stamp, epoch=room.epoch
        )

    def _leave(self, cmd: Leave, now: float) -> list[Deliver[RoomEvent]]:
        session, room = self._member(cmd.session, cmd.room, cmd.user, "LEAVE")
        user = session.user
        last = self._remove(cmd.session, session, room)
        leave = RoomMessage(kind=Kind.LEAVE, room=room.name, sender=user, timestamp=_millis(now))
        if last and self._presence is not None:
            self._presence.append((room.name, user, False))
        gone = last and user not in room.elsewhere  # still present through another node
        to = (cmd.session, *room.recipients) if gone else (cmd.session,)
        return [Deliver(to=to, message=leave)]

    def _post(self, cmd: Post, now: float) -> list[Deliver[RoomEvent]]:
        session, room = self._member(cmd.session, cmd.room, cmd.user, "TEXT")
        original = self._original(room, session.user, cmd.id, cmd.content)
        if original is not None:
            return [Deliver(to=(cmd.session,), message=original)]
        message = self._append(room, Kind.TEXT, session.user, cmd.id, cmd.content, now)
        return [Deliver(to=room.recipients, message=message)]

    def _original(self, room: _Room, sender: str, id: str, content: str) -> RoomMessage | None:
        """Check a new message's id and content; the original if ``id`` was used before."""
        self._check_id("id", id)
        limit = self.limits.max_content_bytes
        if len(content) * 4 > limit and len(content.encode("utf-8", "surrogatepass")) > limit:
            raise LimitExceeded("content", f"must be at most {limit} bytes of UTF-8")
        original = None
        if id:
            original = room.by_id.get((sender, id)) or self._found.get((room.name, sender, id))
        if original is not None and original.content != content:
            raise InvalidArgument(
                "id", f"{id!r} was already used by {sender!r} for another message"
            )
        return original

    def _append(
        self, room: _Room, kind: Kind, sender: str, id: str, content: str, now: float
    ) -> RoomMessage:
        """The room's next message: sequenced, stamped (never before the last), written."""
        seq = room.head + 1
        room.stamp = stamp = max(_millis(now), room.stamp)
        message = RoomMessage(
            kind=kind,
            room=room.name,
            sender=sender,
            id=id or f"{room.epoch}-{seq}",
            content=content,
            timestamp=stamp,
            seq=seq,
            epoch=room.epoch,
        )
        self._writes.append(AppendMessage(message=message))  # durable before anyone hears of it
        room.ids.add(message.sender, message.id)
        room.head = seq
        self._remember(room, message)
        if seq - room.first_seq >= self._retain:
            room.first_seq = seq - self._retain + 1
            if seq % self._trim_every == 0:
                self._writes.append(TrimRoom(room=room.name, before_seq=room.first_seq))
        return message

    # -- many nodes: the shared stream sequences, the hub follows it -----------------------

    def propose(self, cmd: Post, *, now: float) -> Proposal | list[Deliver[RoomMessage]]:
        """Check a TEXT as ``handle`` would, without sequencing it: the ``Proposal`` to send
        to the shared stream, or, for an id already in the window, the original back to its
        sender alone (as ``handle`` does). Changes nothing."""
        session, room = self._member(cmd.session, cmd.room, cmd.user, "TEXT")
        original = self._original(room, session.user, cmd.id, cmd.content)
        if original is not None:
            return [Deliver(to=(cmd.session,), message=original)]
        return _proposal(room, cmd.session, session.user, cmd.id, cmd.content, Kind.TEXT, now)

    def propose_publish(self, cmd: Publish, *, now: float) -> Proposal | Published:
        """``publish`` on many nodes (``needs(cmd)`` first): check ``cmd`` without sequencing
        it: the ``Proposal`` for the shared stream (``session`` empty: no member sent it), or,
        for an id the window holds, the original (``duplicate``)."""
        self._check_backend_command(cmd)
        room = self._loaded(cmd.room)
        try:
            original = self._original(room, cmd.sender, cmd.id, cmd.content)
            if original is not None:
                return Published(message=original, duplicate=True, deliveries=[])
            return _proposal(room, "", cmd.sender, cmd.id, cmd.content, cmd.kind, now)
        finally:
            self._found.clear()
            if not room.members:
                self._drop(room.name)  # loaded for this only: the next JOIN reloads it

    def duplicate(self, proposal: Proposal, original: RoomMessage) -> list[Deliver[RoomMessage]]:
        """The shared stream already holds ``proposal``'s id (sent through another node, or
        retried): its sender gets the original back; another content under that id is refused
        as ``handle`` refuses it."""
        if original.content != proposal.content:
            raise InvalidArgument(
                "id", f"{proposal.id!r} was already used by {proposal.sender!r} for another message"
            )
        return [Deliver(to=(proposal.session,), message=original)]

    def observe(self, message: RoomMessage) -> list[Deliver[RoomMessage]]:
        """Take the next message of a loaded room's shared stream (any node's, this one's
        included) and deliver it to this hub's members: it must be the head's successor,
        or the first of a new epoch (the stream lost its history: members are told, as a
        resume under an old epoch is). An older seq is already here: nothing happens. The
        stream is durable already, so nothing is written. The first message seen of a new
        epoch starts the room there (the node reads a new epoch from its retained start)."""
        room = self._loaded(message.room)
        events: list[Deliver[RoomMessage]] = []
        if message.epoch != room.epoch:
            notice = (
                f"history was reset: epoch {room.epoch} is gone, the room is now at epoch "
                f"{message.epoch}"
            )
            room.epoch, room.head, room.first_seq = message.epoch, message.seq - 1, message.seq
            room.window.clear()
            room.by_id.clear()
            if room.members:
                events.append(
                    Deliver(
                        to=room.recipients, message=self._system(room, notice, message.timestamp)
                    )
                )
        if message.seq <= room.head:
            return events
        if message.seq != room.head + 1:
            raise ValueError(
                f"seq: room {room.name!r} is at {room.head}; {message.seq} is not the next"
            )
        room.head = message.seq
        room.stamp = max(room.stamp, message.timestamp)
        self._remember(room, message)
        if room.head - room.first_seq >= self._retain:
            room.first_seq = room.head - self._retain + 1
        if room.members:
            events.append(Deliver(to=room.recipients, message=message))
        return events

    def share_presence(self) -> None:
        """Many nodes: from now on, record each user's arrival in and departure from a room
        through this hub (``take_presence``), for the node to tell the others."""
        if self._presence is None:
            self._presence = []

    def take_presence(self) -> list[tuple[str, str, bool]]:
        """``(room, user, present)`` changes through this hub since the last call, in order."""
        if self._presence is None:
            return []
        changes, self._presence = self._presence, []
        return changes

    def present_here(self) -> list[tuple[str, str]]:
        """``(room, user)`` for every user present through this hub (a node re-announcing)."""
        return [(r.name, user) for r in self._rooms.values() for user in r.sessions_of]

    def elsewhere(
        self, room: str, user: str, node: str, *, present: bool, now: float
    ) -> list[Deliver[RoomMessage]]:
        """``user`` arrived in (or left) a loaded ``room`` through another ``node``: this hub's
        members hear a JOIN (LEAVE) only when the user was nowhere (is now nowhere) else."""
        loaded = self._loaded(room)
        nodes = loaded.elsewhere.get(user, set())
        before = bool(nodes) or user in loaded.sessions_of
        if present:
            nodes.add(node)
            loaded.elsewhere[user] = nodes
        else:
            nodes.discard(node)
            if not nodes:
                loaded.elsewhere.pop(user, None)
        after = bool(nodes) or user in loaded.sessions_of
        if before == after or not loaded.members:
            return []
        kind = Kind.JOIN if present else Kind.LEAVE
        message = RoomMessage(kind=kind, room=room, sender=user, timestamp=_millis(now))
        return [Deliver(to=loaded.recipients, message=message)]

    def relay(self, message: RoomMessage) -> list[Deliver[RoomMessage]]:
        """A TYPING from another node, to this hub's members of its room (if loaded)."""
        loaded = self._rooms.get(message.room)
        if loaded is None or not loaded.members:
            return []
        return [Deliver(to=loaded.recipients, message=message)]

    # -- the server's own backend (the admin API) ----------------------------------------

    def publish(self, cmd: Publish, *, now: float) -> Published:
        """Store and deliver ``cmd``'s message (``needs(cmd)`` first); a re-sent id returns
        the original, stored once."""
        self._check_backend_command(cmd)
        room = self._loaded(cmd.room)
        try:
            original = self._original(room, cmd.sender, cmd.id, cmd.content)
            if original is not None:
                return Published(message=original, duplicate=True, deliveries=[])
            message = self._append(room, cmd.kind, cmd.sender, cmd.id, cmd.content, now)
            deliveries = [Deliver(to=room.recipients, message=message)] if room.members else []
            return Published(message=message, duplicate=False, deliveries=deliveries)
        finally:
            self._found.clear()
            if not room.members:
                self._drop(room.name)  # loaded for this only: the next JOIN reloads it

    def delete_history(self, cmd: DeleteHistory, *, now: float) -> Deleted:
        """Forget the room's messages, or only ``cmd.user``'s (``needs(cmd)`` first: every
        stored one is read). What is left is renumbered from seq 1 under a new epoch; members
        get a SYSTEM notice carrying it (their clients resume and are told of the reset)."""
        self._check_backend_command(cmd)
        room = self._loaded(cmd.room)
        key = ("", cmd.room)
        stored = self._fetched.pop(key, [])
        for pending in [k for k in self._fetched if k[1] == cmd.room]:
            del self._fetched[pending]  # older history read for a JOIN: about to be wrong
        self._exhausted = {k for k in self._exhausted if k[1] != cmd.room}
        try:
            if cmd.user:
                last = stored[-1].seq if stored else room.first_seq - 1
                messages = [*stored, *(m for m in room.window if m.seq > last)]
                kept = [m for m in messages if m.sender != cmd.user]
                removed = len(messages) - len(kept)
            else:
                kept, removed = [], max(0, room.head - room.first_seq + 1)
            if not removed:
                return Deleted(removed=0, epoch=room.epoch, head=room.head, deliveries=[])
            epoch = self._new_epoch()
            renumbered = [replace(m, seq=seq, epoch=epoch) for seq, m in enumerate(kept, 1)]
            self._writes.append(CreateRoom(room=room.name, epoch=epoch))
            self._writes.extend(AppendMessage(message=m) for m in renumbered)
            deliveries = self._renumbered(room, epoch, renumbered, cmd.user, _millis(now))
            return Deleted(removed=removed, epoch=epoch, head=room.head, deliveries=deliveries)
        finally:
            if not room.members:
                self._drop(room.name)

    def observe_deleted(
        self, name: str, *, epoch: str, kept: list[RoomMessage], user: str, now: float
    ) -> list[Deliver[RoomMessage]]:
        """Many nodes: some node deleted the history of a room loaded here (its ``user``'s
        messages, or all); the shared stream now holds ``kept``, renumbered from seq 1 under
        ``epoch``. Members get the notice ``delete_history`` gives. Nothing is written (the
        stream is the engine's); a room already at ``epoch`` is left as it is."""
        room = self._loaded(name)
        if room.epoch == epoch:
            return []
        return self._renumbered(room, epoch, kept, user, _millis(now))

    def _renumbered(
        self, room: _Room, epoch: str, kept: list[RoomMessage], user: str, stamp: int
    ) -> list[Deliver[RoomMessage]]:
        """The room starts over under ``epoch`` with ``kept`` (seq 1 on); the members' notice."""
        room.epoch, room.head, room.first_seq = epoch, len(kept), 1
        room.window.clear()
        room.by_id.clear()
        room.ids = IdFilter(self._retain)
        for message in kept:
            room.ids.add(message.sender, message.id)
        for message in kept[-self._history :] if self._history else ():
            self._remember(room, message)
        whose = f"{user!r}'s messages" if user else "every message"
        notice = self._system(
            room,
            f"history was deleted ({whose}): the room is now at epoch {epoch}, head seq "
            f"{room.head}",
            stamp,
        )
        return [Deliver(to=room.recipients, message=notice)] if room.members else []

    def check(self, cmd: Publish | DeleteHistory) -> None:
        """Raise the ``CoreError`` that ``publish`` or ``delete_history`` would refuse
        ``cmd`` with (many nodes: before the engine is asked to do it)."""
        self._check_backend_command(cmd)

    def _check_backend_command(self, cmd: Publish | DeleteHistory) -> None:
        self._check_id("room", cmd.room)
        if isinstance(cmd, DeleteHistory):
            self._check_id("user", cmd.user)
            return
        self._check_id("sender", cmd.sender)
        if not cmd.sender:
            raise InvalidArgument("sender", "must not be empty")
        if cmd.kind not in (Kind.TEXT, Kind.SYSTEM):
            raise InvalidArgument("kind", f"must be TEXT or SYSTEM, got {Kind(cmd.kind).name}")
        self._check_id("id", cmd.id)

    # -- retention by time ---------------------------------------------------------------

    def sweep(self, *, now: float) -> RoomAges | None:
        """The read of retention's next bounded step at ``now`` (None: no ``ttl``)."""
        if self.ttl is None:
            return None
        return RoomAges(
            before=_millis(now - self.ttl),
            after_room=self._sweep_after,
            limit=self._sweep_rooms,
            generation=self._generation,
        )

    def expire(self, read: RoomAges, ages: list[RoomAge]) -> Expired:
        """Trim what ``ages`` (the answer to ``read``) says has expired; forget the rooms with
        no member and no message left. A room that changed since ``read`` was planned is
        left for the next lap. At most ``sweep_messages`` are trimmed per step: a room with
        more is trimmed that far, and the next step starts with it again."""
        self._cutoff = max(self._cutoff, read.before)
        messages = forgotten = 0
        budget, cursor, more = self._sweep_messages, read.after_room, False
        for age in ages:
            if not budget:
                more = True  # rooms of this read left for the next step
                break
            room = self._rooms.get(age.room)
            if room is None and (
                read.generation < self._horizon or self._dropped.get(age.room, -1) > read.generation
            ):
                continue  # loaded and dropped again since: its answer may be stale
            if room is not None and room.epoch != age.epoch:
                continue  # its history was deleted since
            before = age.first_kept if age.first_kept is not None else age.head + 1
            stored = 0 if age.oldest is None else max(0, before - age.oldest)
            if stored > budget:  # the rest in the next step, which starts with this room
                assert age.oldest is not None
                before, stored = age.oldest + budget, budget
                if room is not None:
                    self._trim_window(room, before)
                self._writes.append(TrimRoom(room=age.room, before_seq=before))
                messages += stored
                more = True
                break
            budget -= stored
            cursor = age.room
            if room is None and age.first_kept is None:
                self._writes.append(ForgetRoom(room=age.room, head=age.head))
                self._drop(age.room)
                messages += stored
                forgotten += 1
                continue
            if room is not None:
                self._trim_window(room, before)
            if stored:
                self._writes.append(TrimRoom(room=age.room, before_seq=before))
                messages += stored
        lap = len(ages) < read.limit and cursor == (ages[-1].room if ages else read.after_room)
        self._sweep_after = "" if lap else cursor
        return Expired(messages=messages, rooms=forgotten, lap=lap, more=more)

    def _expire_window(self, room: _Room, now: float) -> None:
        """Drop what has expired from the window (a joiner never receives it)."""
        if self.ttl is not None:
            cutoff = _millis(now - self.ttl)
            window = room.window
            while window and window[0].timestamp < cutoff:
                self._trim_window(room, window[0].seq + 1)

    @staticmethod
    def _trim_window(room: _Room, before_seq: int) -> None:
        window = room.window
        while window and window[0].seq < before_seq:
            evicted = window.popleft()
            room.by_id.pop((evicted.sender, evicted.id), None)
        room.first_seq = max(room.first_seq, before_seq)

    def _typing(self, cmd: Typing, now: float) -> list[Deliver[RoomEvent]]:
        session, room = self._member(cmd.session, cmd.room, cmd.user, "TYPING")
        others = tuple(s for s in room.recipients if s != cmd.session)
        if not others:
            return []
        message = RoomMessage(
            kind=Kind.TYPING, room=room.name, sender=session.user, timestamp=_millis(now)
        )
        return [Deliver(to=others, message=message)]

    def _disconnect(self, name: str, now: float) -> list[Deliver[RoomEvent]]:
        session = self._sessions.pop(name, None)
        if session is None:
            return []
        events: list[Deliver[RoomEvent]] = []
        stamp = _millis(now)
        for room_name in sorted(session.rooms):
            room = self._rooms[room_name]
            last = self._remove(name, session, room)
            if last and self._presence is not None:
                self._presence.append((room_name, session.user, False))
            if last and room.recipients and session.user not in room.elsewhere:
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
            self._drop(room.name)  # the store keeps it; the next JOIN reloads it
        return last

    def _loaded(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            raise RuntimeError(f"room {name!r} is not loaded: provide needs(command) first")
        return room

    def _drop(self, name: str) -> None:
        """Let the room go from memory, remembering when (see ``_DROPPED_KEPT``)."""
        self._rooms.pop(name, None)
        self._generation += 1
        dropped = self._dropped
        dropped.pop(name, None)
        dropped[name] = self._generation
        if len(dropped) > _DROPPED_KEPT:
            for old in list(itertools.islice(dropped, len(dropped) // 2)):
                self._horizon = max(self._horizon, dropped.pop(old))

    def _load(self, name: str, loaded: LoadedRoom) -> _Room:
        record = loaded.record
        if record is None:
            record = RoomRecord(epoch=self._new_epoch(), head=0)
            self._writes.append(CreateRoom(room=name, epoch=record.epoch))
        head = record.head
        first = max(1, head - self._retain + 1)
        if record is loaded.record and loaded.first_seq is not None:
            first = max(first, loaded.first_seq)
        recent = [m for m in loaded.recent if m.timestamp >= self._cutoff]
        if len(recent) < len(loaded.recent):  # expired since (a stale read): skip them too
            first = max(first, recent[0].seq if recent else head + 1)
        room = _Room(
            name=name,
            epoch=record.epoch,
            head=head,
            first_seq=first,
            window=deque(maxlen=self._history),
            by_id={},
            ids=IdFilter(self._retain),
            stamp=loaded.recent[-1].timestamp if loaded.recent else 0,
        )
        for sender, id in loaded.ids:
            room.ids.add(sender, id)
        for message in recent[-self._history :] if self._history else ():
            self._remember(room, message)
        for node, user in loaded.elsewhere:
            room.elsewhere.setdefault(user, set()).add(node)
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


def _proposal(
    room: _Room, session: str, sender: str, id: str, content: str, kind: Kind, now: float
) -> Proposal:
    """What the shared stream is asked to sequence, with the room's head as this hub has it."""
    return Proposal(
        session=session,
        room=room.name,
        sender=sender,
        id=id,
        content=content,
        timestamp=max(_millis(now), room.stamp),
        epoch=room.epoch,
        seen=room.head,
        kind=kind,
    )


def _millis(now: float) -> int:
    return int(now * 1000)
