"""Sessions that read from the log: a receiver that falls behind never holds a room or a
document up.

Every TEXT is durable before anyone receives it (group commit), so a session that falls behind
(over high water, over its byte budget, or its connection's, or chosen when the server's is
full) leaves live delivery instead of making the room wait (DESIGN §5): what was queued for it
of its rooms' TEXTs is let go, and a ``LogCursor`` per room (core/log_cursor.py) remembers the
last seq it was given. Its writer reads the log a page at a time whenever what is queued has
drained to low water; once a room's cursor reaches the last seq delivered live in that room
(``heads``) the session rejoins live delivery there, in the same step, so nothing falls between
the two and nothing comes twice. History on JOIN and resume (the core's ``Replay``) is read the
same way.

Presence and typing are not in the log: while a session reads a room from the log its JOINs
and LEAVEs are skipped, and coming back it gets the room's current members as on a rejoin (its
own JOIN echo, then one JOIN per other user); the TYPING it missed is dropped and counted. A
cursor the log no longer serves (trimmed, expired, reset) cuts the session: its resume is told
where history starts.

An editing session reads the same way from its documents' kept history (the edits the document
hub holds for late operations and reconnects, ``DocumentHub.history``), with a
``RevisionCursor`` per document: the others' edits as ``Remote``s, its own as the ``Acked`` it
was sent, each in revision order; up to the last revision delivered live (``revisions``).
Carets are not in the history: those it misses are dropped and counted (the next move of each
caret comes live). Behind the kept history it is cut, and its reconnect gets a snapshot.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from interplay.core.documents import Acked, CursorMoved, Remote, Snapshot
from interplay.core.log_cursor import BehindRetention, LogCursor, RevisionCursor
from interplay.core.rooms import Kind, Replay, RoomMessage

from .outbox import Broadcast, Outbox
from .refusals import Refusal

if TYPE_CHECKING:
    from .server import Runtime, Session

_IN_THE_LOG = (Kind.TEXT, Kind.SYSTEM)
REVISIONED = frozenset((Remote, Acked, Snapshot))  # the events that move a document's head
_EDITS = (Remote, Acked, CursorMoved)  # what an editor switching to the history lets go


def _released(item: Broadcast) -> bool:
    """What a session switching to the log lets go: sequenced messages (read again from the
    log), presence (the members are sent again) and TYPING (dropped)."""
    event = item.event
    if type(event) is not RoomMessage:
        return False
    if event.seq:
        return event.kind in _IN_THE_LOG
    return event.kind is Kind.TYPING or (event.kind in (Kind.JOIN, Kind.LEAVE) and not event.epoch)


class LogReaders:
    """The runtime's chat sessions that read from the log, and where every room is at."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        # Per room, (epoch, seq) of the last sequenced message delivered live.
        self.heads: dict[str, tuple[str, int]] = {}
        # Per document, the last revision delivered live.
        self.revisions: dict[str, int] = {}
        # The messages lately delivered live or read from the log, by (room, epoch, seq), as
        # the Broadcasts queued: a laggard close behind takes its page from here, not from
        # the store, and laggards reading the same range (the common case: a flood that every
        # slow receiver falls behind on) share one per message, encoded once per codec, not
        # once per receiver. Oldest first, at most ``_shared_limit`` bytes.
        self._shared: dict[tuple[str, str, int], Broadcast] = {}
        # Its keys, oldest first: evicting the oldest is a popleft. (``next(iter(dict))`` is
        # not O(1): it steps over the slots of every key popped since the dict last resized,
        # tens of thousands here: 90-120 us per message once the map was full, issue 13.)
        self._shared_order: deque[tuple[str, str, int]] = deque()
        self._shared_bytes = 0
        self._shared_limit = max(runtime.settings.session_budget * 4, 1 << 20)

    def head(self, room: str) -> int:
        """The last seq delivered live in ``room`` (0: none since the server started)."""
        seen = self.heads.get(room)
        return seen[1] if seen else 0

    # -- the live path: called by the runtime's fan-out ------------------------------------

    def seen(self, message: RoomMessage, item: Broadcast) -> None:
        """A chat message about to be delivered (durable already): keep the room's head, and
        the message as its live Broadcast, which a laggard close behind reads instead of the
        log (``_recent``)."""
        if message.seq:
            if message.kind in _IN_THE_LOG:
                self._keep((message.room, message.epoch, message.seq), item)
            if message.kind is Kind.JOIN:  # an echo: the head at that JOIN, all delivered
                known = self.heads.get(message.room)
                if known is None or known[0] != message.epoch or known[1] < message.seq:
                    self.heads[message.room] = (message.epoch, message.seq)
            else:
                self.heads[message.room] = (message.epoch, message.seq)
        elif message.kind is Kind.SYSTEM and message.epoch:
            known = self.heads.get(message.room)
            if known is not None and known[0] != message.epoch:  # history deleted
                del self.heads[message.room]

    def skips(self, session: Session, message: RoomMessage) -> bool:
        """Whether a live ``message`` of a room ``session`` reads from the log stays out of
        its outbox (it is in the log, or it is presence or typing the session catches up on
        differently)."""
        room = message.room
        cursor = session.lag[room]
        kind = message.kind
        if kind is Kind.JOIN and message.epoch:  # its own JOIN again: a Replay follows
            self._left(session, room)  # a LEAVE waiting for this read goes first
            del session.lag[room]
            self._flush_deferred(session)  # refusals of what it sent before, first
            return False
        if message.seq:
            return True
        if kind is Kind.TYPING:
            self._runtime.counters.typing_dropped += 1
            return True
        if kind in (Kind.JOIN, Kind.LEAVE):
            if room not in self._runtime.rooms.rooms_of(session.id):  # it left: its own LEAVE
                # What it had not read of the room up to now is still its (its own TEXTs'
                # echoes among them): the read goes on to the room's head, then the LEAVE.
                if session.leaving is None:
                    session.leaving = {}
                session.leaving[room] = (self.head(room), message)
                return True
            cursor.stale = True
            return True
        # A notice to every member (the room's history was deleted): what it read is gone.
        self._runtime.counters.behind_retention += 1
        self._runtime.cut_slow(session, f"room {room!r}: its history was reset")
        return True

    def defers(self, session: Session, item: Broadcast) -> bool:
        """Whether ``item``, not a room's message, waits until ``session`` is live in every
        room: a refusal comes after the acknowledgements of what its sender sent before it,
        and those are in the log. A sender that never reads and keeps sending what is refused
        is cut once it holds high water of them."""
        if type(item.event) is not Refusal:
            return False
        session.deferred.append(item)
        if len(session.deferred) > self._runtime.settings.high_water:
            self._runtime.cut_slow(session, "more refusals unread than high water")
        return True

    def replay(self, session: Session, replay: Replay) -> None:
        """A JOIN's history: read it from the log (the JOIN's echo and presence are queued)."""
        if replay.room not in self.heads:
            self.heads[replay.room] = (replay.epoch, replay.head)
        session.lag[replay.room] = LogCursor(
            room=replay.room, epoch=replay.epoch, after=replay.after_seq
        )

    def _left(self, session: Session, room: str) -> None:
        """Its LEAVE of ``room``, if one waits for the read of the room: queued now."""
        leaving = session.leaving
        if leaving is not None and room in leaving:
            session.outbox.push(Broadcast(leaving.pop(room)[1], 0))

    def to_log(self, session: Session) -> None:
        """``session`` leaves live delivery in every room it is in, and lets go of what is
        queued for it there."""
        outbox = session.outbox
        assert isinstance(outbox, Outbox)
        first: dict[str, int] = {}
        stale: set[str] = set()
        counters = self._runtime.counters
        for item in outbox.release(_released):
            message = item.event
            assert isinstance(message, RoomMessage)
            if message.seq:
                first.setdefault(message.room, message.seq)
            elif message.kind is Kind.TYPING:
                counters.typing_dropped += 1
            else:
                stale.add(message.room)
        lag = session.lag
        for room in self._runtime.rooms.rooms_of(session.id):
            cursor = lag.get(room)
            start = first.get(room)
            if cursor is None:
                known = self.heads.get(room)
                epoch = known[0] if known else self._epoch_of(room)
                after = start - 1 if start is not None else (known[1] if known else 0)
                lag[room] = LogCursor(room=room, epoch=epoch, after=after, stale=room in stale)
            else:
                if start is not None:
                    cursor.after = min(cursor.after, start - 1)
                cursor.stale = cursor.stale or room in stale
        counters.switches_to_log += 1
        outbox.poke()  # its writer may wait for what was just let go

    def _epoch_of(self, room: str) -> str:
        known = self._runtime.rooms.head(room)
        return known[0] if known else ""

    # -- the writer's side -------------------------------------------------------------------

    async def read_page(self, session: Session) -> None:
        """One page of the next room ``session`` reads from the log (round robin), queued;
        back to live delivery in that room if that caught it up."""
        runtime, lag = self._runtime, session.lag
        room, cursor = next(iter(lag.items()))
        del lag[room]
        lag[room] = cursor  # the next read is another room's
        if cursor.after >= self._upto(session, room):
            self._back_to_live(session, cursor)
            return
        budget = runtime.settings.session_budget // 2
        outbox = session.outbox
        assert isinstance(outbox, Outbox)
        limit = max(1, min(session.page, runtime.settings.log_page))
        page: list[RoomMessage] | None = self._recent(cursor, limit)
        from_memory = page is not None
        if page is None:
            read = await runtime.backend.read(cursor.read(limit))
            if lag.get(room) is not cursor or session.failure is not None:
                return  # rejoined, left or cut meanwhile
            assert isinstance(read, list)
            page = read  # type: ignore[assignment]
            runtime.counters.log_reads += 1
        ttl = runtime.rooms.ttl
        cutoff = int((runtime.wall_clock() - ttl) * 1000) if ttl is not None else 0
        try:
            taken = cursor.take(page, upto=self._upto(session, room), cutoff=cutoff)  # type: ignore[arg-type]
        except BehindRetention as behind:
            runtime.rooms.retained_from(room, behind.first_seq)
            runtime.counters.behind_retention += 1
            runtime.cut_slow(session, str(behind))
            return
        runtime.counters.log_messages += len(taken)
        if from_memory:
            runtime.counters.log_from_memory += len(taken)
        size = 0
        for message in taken:
            item = self._broadcast(message)
            size += item.size
            outbox.push(item)
        if taken:  # the next page: what fits half the session's budget, by this one's sizes
            session.page = max(1, budget * len(taken) // max(size, 1))
        if cursor.after >= self._upto(session, room):
            self._back_to_live(session, cursor)

    def _recent(self, cursor: LogCursor, limit: int) -> list[RoomMessage] | None:
        """The next page for ``cursor`` from the messages kept in memory (``_shared``), if
        they hold it from its very next seq on and the log still does (else the store is
        read, and says where it starts)."""
        first = self._runtime.rooms.first_retained(cursor.room)
        after = cursor.after
        if first is None or after + 1 < first:
            return None
        shared, room, epoch = self._shared, cursor.room, cursor.epoch
        page = []
        for seq in range(after + 1, after + 1 + limit):
            item = shared.get((room, epoch, seq))
            if item is None:
                break
            page.append(item.event)
        return page or None  # type: ignore[return-value]

    def _broadcast(self, message: RoomMessage) -> Broadcast:
        """The Broadcast of a message read from the log: the one delivered live or given to
        another laggard, while it is among the latest (``_shared``)."""
        key = (message.room, message.epoch, message.seq)
        item = self._shared.get(key)
        if item is None:
            item = Broadcast(message, 0)
            self._keep(key, item)
        return item

    def _keep(self, key: tuple[str, str, int], item: Broadcast) -> None:
        shared = self._shared
        if key in shared:
            return
        shared[key] = item
        order = self._shared_order
        order.append(key)
        self._shared_bytes += item.size
        while self._shared_bytes > self._shared_limit and len(order) > 1:
            self._shared_bytes -= shared.pop(order.popleft()).size

    def _upto(self, session: Session, room: str) -> int:
        """Where ``session`` is caught up in ``room``: its head now (when it ends: then; when
        it left: then)."""
        until = session.until
        if until is not None:
            return until.get(room, 0)
        leaving = session.leaving
        if leaving is not None and room in leaving:
            return leaving[room][0]
        return self.head(room)

    def _back_to_live(self, session: Session, cursor: LogCursor) -> None:
        """Caught up: live delivery again (what is delivered next follows ``cursor.after``),
        with the current members first if it missed presence."""
        runtime = self._runtime
        del session.lag[cursor.room]
        if session.leaving is not None and cursor.room in session.leaving:
            self._left(session, cursor.room)  # it had left: its LEAVE, after all it was owed
        elif session.until is None:  # (ending: nothing is delivered live any more)
            runtime.counters.back_to_live += 1
            if cursor.stale:
                self._members(session, cursor)
        self._flush_deferred(session)

    def _members(self, session: Session, cursor: LogCursor) -> None:
        """The room's current members, as on a rejoin: its own JOIN echo, then the others."""
        runtime = self._runtime
        user = runtime.rooms.user_of(session.id)
        if user is None or cursor.room not in runtime.rooms.rooms_of(session.id):
            return
        stamp = int(runtime.wall_clock() * 1000)
        echo = RoomMessage(
            kind=Kind.JOIN,
            room=cursor.room,
            sender=user,
            timestamp=stamp,
            seq=cursor.after,
            epoch=cursor.epoch,
        )
        outbox = session.outbox
        outbox.push(Broadcast(echo, 0))
        for member in runtime.rooms.members(cursor.room):
            if member != user:
                presence = RoomMessage(kind=Kind.JOIN, room=cursor.room, sender=member)
                outbox.push(Broadcast(presence, 0))

    # -- editing sessions ----------------------------------------------------------------------

    def revised(self, event: Remote | Acked | Snapshot) -> None:
        """A document's event about to be delivered: keep its head."""
        if event.revision > self.revisions.get(event.document, 0):
            self.revisions[event.document] = event.revision

    def skips_edit(self, session: Session, item: Broadcast) -> bool:
        """Whether ``item`` stays out of the outbox of ``session``, which reads some of its
        documents from their history: their edits (read there; its own acks held back for
        their place), carets (dropped, counted), a refusal (after the acks before it)."""
        event = item.event
        if type(event) is Refusal:
            return self.defers(session, item)
        if not isinstance(event, Remote | Acked | CursorMoved | Snapshot):
            return False
        cursor = session.revisions.get(event.document)
        if cursor is None:
            return False
        if isinstance(event, CursorMoved):
            self._runtime.counters.carets_dropped += 1
            return True
        if isinstance(event, Snapshot):  # it opened the document again: live from there
            del session.revisions[event.document]
            self._flush_deferred(session)
            return False
        if event.revision <= cursor.after:
            return False  # out of revision order: a re-sent op's ack, or a catch-up it asked for
        if isinstance(event, Acked):
            cursor.acks[event.revision] = event
        return True

    def edits_to_log(self, session: Session) -> None:
        """``session`` leaves live delivery in every document it edits, and lets go of what is
        queued for it there: the run of revisions that ends where it is (an editor gets every
        revision, its own as acks), read again from the history; what is out of that order
        (a re-sent op's ack, a catch-up it asked for) stays queued."""
        outbox = session.outbox
        assert isinstance(outbox, Outbox)
        counters = self._runtime.counters
        released: dict[str, list[Broadcast]] = {}
        for item in outbox.release(lambda item: type(item.event) in _EDITS):
            event = item.event
            if isinstance(event, CursorMoved):
                counters.carets_dropped += 1
            else:
                assert isinstance(event, Remote | Acked)
                released.setdefault(event.document, []).append(item)
        revisions = session.revisions
        for document in self._runtime.documents.documents_of(session.id):
            items = released.pop(document, [])
            cursor = revisions.get(document)
            after = cursor.after if cursor is not None else self.revisions.get(document, 0)
            run = len(items)
            while run and items[run - 1].event.revision == after:  # type: ignore[attr-defined]
                run -= 1
                after -= 1
            if cursor is None:
                cursor = revisions[document] = RevisionCursor(document=document, after=after)
            cursor.after = after
            for item in items[run:]:
                if isinstance(item.event, Acked):
                    cursor.acks[item.event.revision] = item.event
            for item in items[:run]:
                outbox.push(item)
        for items in released.values():  # (documents it no longer edits)
            for item in items:
                outbox.push(item)
        counters.switches_to_log += 1
        outbox.poke()

    def read_edits(self, session: Session) -> None:
        """One page of the next document ``session`` reads from its history (round robin),
        queued; back to live delivery there if that caught it up."""
        runtime, revisions = self._runtime, session.revisions
        document, cursor = next(iter(revisions.items()))
        del revisions[document]
        revisions[document] = cursor  # the next read is another document's
        upto = self._revision_upto(session, document)
        if cursor.after < upto:
            limit = max(1, min(session.page, runtime.settings.log_page))
            page = runtime.documents.history(document, cursor.after, limit)
            if page is None:
                if session.until is None:
                    revisions.clear()  # (its writer, cancelled, must not read again first)
                    runtime.counters.behind_retention += 1
                    runtime.cut_slow(
                        session,
                        f"document {document!r}: revision {cursor.after + 1} is no longer kept",
                    )
                    return
                page = []  # ending, and the document closed: its reconnect catches up
                cursor.after = upto
            outbox = session.outbox
            stamp = int(runtime.wall_clock() * 1000)
            size = 0
            taken = cursor.take(page, upto=upto)
            for event in taken:
                item = Broadcast(event, stamp)
                size += item.size
                outbox.push(item)
            runtime.counters.log_reads += 1
            runtime.counters.log_messages += len(taken)
            if taken:  # the next page: what fits half the session's budget, by this one's sizes
                budget = runtime.settings.session_budget // 2
                session.page = max(1, budget * len(taken) // max(size, 1))
        if cursor.after >= upto:
            del revisions[document]
            if session.until is None:
                runtime.counters.back_to_live += 1
            self._flush_deferred(session)

    def _revision_upto(self, session: Session, document: str) -> int:
        until = session.until
        if until is not None:
            return until.get(document, 0)
        return self.revisions.get(document, 0)

    def head_of(self, session: Session, key: str) -> int:
        """Where a read of ``session``'s room or document stops once it ends: its head now
        (a room it left: where it left)."""
        leaving = session.leaving
        if leaving is not None and key in leaving:
            return leaving[key][0]
        if key in session.revisions:
            return self.revisions.get(key, 0)
        return self.head(key)

    def _flush_deferred(self, session: Session) -> None:
        """Its refusals, once no room or document of it is read from the log any more."""
        if session.deferred and not session.lag and not session.revisions:
            deferred, session.deferred = session.deferred, []
            for item in deferred:
                session.outbox.push(item)
