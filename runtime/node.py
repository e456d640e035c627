"""One node of many (DESIGN §10): how a runtime hears what other nodes' sessions said.

Alone, a ``RoomHub`` gives each TEXT the room's next seq and the runtime stores it. On many
nodes no hub can: two would give out one seq. So the seq comes from the shared engine's answer
(``SharedRooms.publish_many``: one script assigns it, checks the idempotency key, appends to the
room's stream and publishes, atomically), and the hub *follows* the stream instead of leading
it: ``RoomHub.propose`` checks a TEXT without sequencing it; the sequenced message comes back
like every other node's, through ``heard``, and ``RoomHub.observe`` delivers it to this node's
members through the runtime's one fan-out path. Why not let the hub propose the seq and have
the script confirm or refuse it: under contention most proposals would lose and be retried
(a round trip each), and the hub would hold a message no one may see yet; taking the seq from
the script costs one round trip, always, and the hub never holds anything unconfirmed.

A node hears of a room's messages from pub/sub, from its own publish answers and from reading
the stream, in any order: a ``Follower`` per room (core/follow.py) puts them back in seq order
and says when the stream must be read to fill a gap (after ``fill_delay``, in case pub/sub is
only late). A room is subscribed before it is loaded (``before`` a JOIN, the subscription
confirmed), so nothing published after the load can be missed; what arrives while it loads is
held and handed over after the JOIN (``after``). Every room is read again from its head after a
reconnect (once every channel is subscribed again) and every ``head_check`` seconds (a pub/sub
that silently delivers nothing is caught there). The core stays sans-I/O: all of this is here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from interplay.core.errors import CoreError
from interplay.core.follow import Follower
from interplay.core.rooms import (
    Deleted,
    DeleteHistory,
    Join,
    Kind,
    Post,
    Proposal,
    Publish,
    RoomMessage,
    Typing,
)
from interplay.core.rooms import Published as RoomPublished

from .errors import StorageFailed, admin_disconnect
from .node_documents import DocumentReplicas, SharedDocuments, SharedEdit
from .node_matches import LEASE, NodeMatches, SharedMatches
from .outbox import Broadcast

if TYPE_CHECKING:
    from .server import Runtime

log = logging.getLogger("interplay.node")


class EngineUnavailable(StorageFailed):
    """The shared engine cannot be reached: the call ends UNAVAILABLE, and the client retries
    (with its ids, so nothing is stored twice)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """The engine's answer to a publish: the stored message (the original if ``duplicate``)."""

    message: RoomMessage
    duplicate: bool


class Listener(Protocol):
    """What the engine's reader tells its node."""

    def heard(self, message: RoomMessage) -> None: ...

    def lost(self) -> None: ...

    def reconnected(self) -> None: ...

    def presence(self, room: str, user: str, node: str, *, present: bool) -> None: ...

    def heard_edit(self, edit: SharedEdit) -> None: ...

    def disconnect(self, user: str, reason: str, *, reconnect: bool) -> int: ...

    def deleted(self, room: str, epoch: str, head: int, user: str) -> None: ...

    def heard_state(self, match: str, payload: bytes) -> None: ...

    def heard_notice(self, payload: bytes) -> None: ...


class SharedRooms(SharedDocuments, SharedMatches, Protocol):
    """The engine many nodes share (``interplay.backends.redis.RedisEngine``): rooms here,
    documents in ``SharedDocuments`` (runtime/node_documents.py), matches in
    ``SharedMatches`` (runtime/node_matches.py)."""

    healthy: bool
    node: str  # this node's id among them

    async def presence(self, room: str, user: str, present: bool) -> None: ...

    async def typing(self, room: str, user: str, stamp: int) -> None: ...

    async def heartbeat(self, ttl: float) -> tuple[bool, int]: ...

    async def delete_history(self, room: str, user: str) -> tuple[int, str, int]: ...

    async def disconnect(
        self, user: str, reason: str, *, reconnect: bool, here: Callable[[], int], wait: float
    ) -> int: ...

    async def publish_many(self, proposals: Sequence[Proposal]) -> list[Published]: ...

    async def read_after(self, room: str, after: int, limit: int) -> list[RoomMessage]: ...

    async def recent(self, room: str, count: int) -> list[RoomMessage]: ...

    async def heads(self, rooms: Sequence[str]) -> dict[str, tuple[str, int] | None]: ...

    async def subscribe(self, room: str) -> None: ...

    async def unsubscribe(self, room: str) -> None: ...

    async def run(self, listener: Listener) -> None: ...


@dataclass(slots=True)
class _Watched:
    """A room this node is subscribed to (or subscribing)."""

    ready: anyio.Event
    follower: Follower
    joining: int = 0  # JOINs between ``before`` and ``after``: not to be unsubscribed
    filling: bool = False
    # (user, node, present) heard while a JOIN loads the room: applied, in order, after it
    held: list[tuple[str, str, bool]] = field(default_factory=list)


class Node:
    """This runtime's part in many nodes (see the module docstring)."""

    def __init__(
        self,
        shared: SharedRooms,
        *,
        head_check: float = 30.0,
        fill_delay: float = 0.02,
        read_batch: int = 1000,
        stuck: int = 50,
        heartbeat: float = 2.0,
        node_ttl: float = 6.0,
        max_queued: int = 1000,
        in_flight: int = 64,
        answer_wait: float = 2.0,
        match_lease: float = LEASE,
        match_renew: float | None = None,
        snapshot_every: int = 30,
    ) -> None:
        if not head_check > 0 or fill_delay < 0 or read_batch < 1:
            raise ValueError(
                "head_check must be > 0 s, fill_delay >= 0 s, read_batch >= 1; got "
                f"{head_check}, {fill_delay}, {read_batch}"
            )
        self.shared = shared
        self.head_check = head_check
        self.fill_delay = fill_delay
        self.read_batch = read_batch
        self.stuck = stuck
        if not 0 < heartbeat < node_ttl:
            raise ValueError(f"need 0 < heartbeat < node_ttl, got {heartbeat}, {node_ttl}")
        self.heartbeat = heartbeat
        self.node_ttl = node_ttl
        # What this node tells the others, in order: (room, user, present) or a TYPING.
        self._outgoing: deque[tuple[str, str, bool] | RoomMessage] = deque()
        self._outgoing_wakeup = anyio.Event()
        self._outgoing_done = anyio.Event()
        self._outgoing_done.set()
        self.reaped = 0  # dead nodes this node reaped (their members left)
        self.max_queued = max_queued
        self.in_flight = in_flight
        self.answer_wait = answer_wait
        self._posting: list[tuple[Proposal, Any]] = []  # TEXTs for the engine, and their wire
        self._posting_wakeup = anyio.Event()
        self._posted = anyio.Event()  # set (and replaced) after each round of answers
        self._pending: dict[str, int] = {}  # session -> TEXTs queued, not answered yet
        self._runtime: Runtime | None = None
        self._watched: dict[str, _Watched] = {}
        self._resync = anyio.Event()
        self.gap_reads = 0  # stream reads that filled a gap (counted: pub/sub was late/lost)
        self.resyncs = 0
        # Replicas of the documents open here, in their shared logs' order.
        self.documents = DocumentReplicas(shared, fill_delay=fill_delay, read_batch=read_batch)
        # Matches: one node ticks each (by lease); every node serves its players.
        self.matches = NodeMatches(
            shared, lease=match_lease, renew=match_renew, snapshot_every=snapshot_every
        )

    @property
    def healthy(self) -> bool:
        return self.shared.healthy

    async def run(self, runtime: Runtime) -> None:
        """The node's tasks, until cancelled: the engine's reader, the resync loop."""
        self._runtime = runtime
        self.documents.bind(runtime)
        self.matches.bind(runtime)
        runtime.rooms.share_presence()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.shared.run, self)
            tasks.start_soon(self._check_heads)
            tasks.start_soon(self._tell_others)
            tasks.start_soon(self._beat)
            tasks.start_soon(self._publish_queued)
            tasks.start_soon(self.matches.run)

    # -- the runtime's hooks ---------------------------------------------------------------

    async def before(self, session: str, command: Any, message: Any = None) -> bool:
        """Before the runtime handles a chat command: a TEXT is handled here (True); a JOIN
        first subscribes to its room, so nothing published after its load is missed."""
        if isinstance(command, Post):
            await self._post(session, command, message)
            return True
        await self.settled(session)  # what it sent before is answered before this is handled
        if isinstance(command, Join):
            watched = await self._watch(command.room)
            watched.joining += 1
        elif isinstance(command, Typing):
            runtime = self._runtime
            assert runtime is not None
            user = runtime.rooms.user_of(session)
            if user is not None and command.room in runtime.rooms.rooms_of(session):
                stamp = int(runtime.wall_clock() * 1000)
                typing = RoomMessage(
                    kind=Kind.TYPING, room=command.room, sender=user, timestamp=stamp
                )
                self._tell(typing)
        return False

    def after(self, command: Any) -> None:
        """After the runtime handled a chat command (or failed to), or ended a session
        (``None``): a JOIN's room is loaded, so what arrived meanwhile can be delivered; the
        users who arrived or left through this node are told to the others."""
        runtime = self._runtime
        if isinstance(command, Join):
            watched = self._watched.get(command.room)
            if watched is not None:
                watched.joining -= 1
                self._drain(command.room, watched)
                held, watched.held = watched.held, []
                for user, node, present in held:
                    self.presence(command.room, user, node, present=present)
        if runtime is not None:
            for change in runtime.rooms.take_presence():
                self._tell(change)

    # -- the admin API across nodes -------------------------------------------------------

    async def disconnect_user(self, user: str, reason: str, *, reconnect: bool) -> int:
        """The admin API's Disconnect on every node: the others are asked first (if the
        engine is unreachable nothing is done: the call fails UNAVAILABLE and may be sent
        again), then this node's sessions end, then each other node says how many of its
        own it ended. A node that does not answer within ``answer_wait`` (it died: its
        sessions went with it) is not waited for further."""
        runtime = self._runtime
        assert runtime is not None, "the node is not running"
        error = admin_disconnect(reason, reconnect=reconnect)
        return await self.shared.disconnect(
            user,
            reason,
            reconnect=reconnect,
            here=lambda: runtime.disconnect_user(user, error),
            wait=self.answer_wait,
        )

    async def delete_history(self, command: DeleteHistory) -> Deleted:
        """The admin API's DeleteHistory on many nodes: done once, in the shared stream (one
        script); every node following the room (this one too) hears of it and tells its
        members (``deleted``)."""
        runtime = self._runtime
        assert runtime is not None, "the node is not running"
        runtime.rooms.check(command)
        removed, epoch, head = await self.shared.delete_history(command.room, command.user)
        return Deleted(removed=removed, epoch=epoch, head=head, deliveries=[])

    def deleted(self, room: str, epoch: str, head: int, user: str) -> None:
        """Some node deleted ``room``'s history (``Listener``): once the kept messages are
        read, the room here starts over under ``epoch``, its members told."""
        watched, runtime = self._watched.get(room), self._runtime
        if watched is None or runtime is None:
            return
        mine = runtime.rooms.head(room)
        if mine is None:
            if watched.joining:  # its load may have read the stream before the delete
                self._fill_soon(room, watched, new_epoch=True)
            return
        if mine[0] != epoch:
            runtime.start_soon(self._take_deleted, room, watched, epoch, head, user)

    async def _take_deleted(
        self, room: str, watched: _Watched, epoch: str, head: int, user: str
    ) -> None:
        runtime = self._runtime
        assert runtime is not None
        try:
            found = await self.shared.read_after(room, 0, max(1, head)) if head else []
        except StorageFailed as error:
            log.warning("room %r: cannot read its stream (%s); the next check resyncs", room, error)
            return
        if self._watched.get(room) is not watched or runtime.rooms.head(room) is None:
            return
        kept = [m for m in found if m.epoch == epoch and m.seq <= head]
        if len(kept) != head:
            self._fill_soon(room, watched, new_epoch=True)  # changed again meanwhile
            return
        watched.follower.clear()
        now = runtime.wall_clock()
        events = runtime.rooms.observe_deleted(room, epoch=epoch, kept=kept, user=user, now=now)
        self._deliver(events)
        self._fill_soon(room, watched, force=True)  # what was posted since

    def disconnect(self, user: str, reason: str, *, reconnect: bool) -> int:
        """Another node's admin API disconnects ``user`` (``Listener``): end the sessions
        here; how many."""
        runtime = self._runtime
        if runtime is None:
            return 0
        return runtime.disconnect_user(user, admin_disconnect(reason, reconnect=reconnect))

    # -- posting ---------------------------------------------------------------------------

    async def _post(self, session: str, command: Post, message: Any) -> None:
        """Check the TEXT now (a ``CoreError`` refuses it), queue it for the engine and let
        the session read on: its seq, like every other node's, comes through ``heard``.
        Queued TEXTs go in one pipeline per round (``_publish_queued``), so a fast sender's
        messages, and their deliveries, travel in batches, as the group commit does alone."""
        runtime = self._runtime
        assert runtime is not None, "the node is not running"
        proposed = runtime.rooms.propose(command, now=runtime.wall_clock())
        if not isinstance(proposed, Proposal):
            self._deliver(proposed)  # a re-send of what this node's window holds
            return
        # Bounded per session too: a sender runs at most ``in_flight`` TEXTs ahead of the
        # engine's answers, so a receiver over high water holds it back soon, as alone.
        while len(self._posting) >= self.max_queued or self._pending.get(session, 0) >= (
            self.in_flight
        ):
            await self._posted.wait()
        self._posting.append((proposed, message))
        self._pending[session] = self._pending.get(session, 0) + 1
        self._posting_wakeup.set()

    async def publish(self, command: Publish) -> RoomPublished:
        """The admin API's publish on many nodes: sequenced by the shared stream as a TEXT is,
        and delivered to this node's members as it follows the stream (the other nodes' as
        they follow it); returns once the stream holds it. A re-sent id (same sender) returns
        the original."""
        runtime = self._runtime
        assert runtime is not None, "the node is not running"
        await runtime.read_for_rooms(command)
        proposed = runtime.rooms.propose_publish(command, now=runtime.wall_clock())
        if isinstance(proposed, RoomPublished):
            return proposed
        [published] = await self.shared.publish_many([proposed])
        if published.duplicate:
            runtime.rooms.duplicate(proposed, published.message)  # another content: refused
            return RoomPublished(message=published.message, duplicate=True, deliveries=[])
        self.heard(published.message)
        return RoomPublished(message=published.message, duplicate=False, deliveries=[])

    async def settled(self, session: str) -> None:
        """Until every TEXT ``session`` queued has its answer from the engine."""
        while self._pending.get(session):
            await self._posted.wait()

    async def _publish_queued(self) -> None:
        runtime = self._runtime
        assert runtime is not None
        rooms = runtime.rooms
        while True:
            if not self._posting:
                self._posting_wakeup = anyio.Event()
                await self._posting_wakeup.wait()
                continue
            # A JOIN reaches the other nodes before the TEXTs after it; bounded, so that while
            # Redis is down a TEXT still fails (UNAVAILABLE) instead of waiting on presence.
            with anyio.move_on_after(1.0):
                await self._outgoing_done.wait()
            batch, self._posting = self._posting, []
            proposals = [proposal for proposal, _ in batch]
            try:
                answers = await self.shared.publish_many(proposals)
            except StorageFailed as error:
                for proposal in proposals:  # not stored: the client retries with its ids
                    runtime.fail_session(proposal.session, error)
            else:
                for (proposal, message), published in zip(batch, answers, strict=True):
                    if not published.duplicate:
                        self.heard(published.message)  # the path of every node's messages
                        continue
                    try:
                        self._deliver(rooms.duplicate(proposal, published.message))
                    except CoreError as error:  # that id, with another content
                        runtime.refuse(proposal.session, message, error)
            finally:
                for proposal in proposals:
                    left = self._pending.pop(proposal.session, 1) - 1
                    if left:
                        self._pending[proposal.session] = left
                self._posted.set()
                self._posted = anyio.Event()

    def _deliver(self, events: list[Any]) -> None:
        runtime = self._runtime
        assert runtime is not None
        runtime.deliver([(e.to, Broadcast(e.message, 0)) for e in events])

    # -- following the rooms' streams ----------------------------------------------------

    async def _watch(self, room: str) -> _Watched:
        while True:
            watched = self._watched.get(room)
            if watched is None:
                watched = self._watched[room] = _Watched(anyio.Event(), Follower())
                try:
                    await self.shared.subscribe(room)
                except BaseException:
                    del self._watched[room]
                    raise
                finally:
                    watched.ready.set()
                return watched
            await watched.ready.wait()
            if self._watched.get(room) is watched:
                return watched

    def heard(self, message: RoomMessage) -> None:
        """A message of a room's stream, from any node (``Listener``)."""
        watched = self._watched.get(message.room)
        runtime = self._runtime
        if watched is None or runtime is None:
            return  # not (or no longer) followed here
        if message.kind is Kind.TYPING:  # relayed, not sequenced
            self._deliver(runtime.rooms.relay(message))
            return
        head = runtime.rooms.head(message.room)
        if head is None:
            if watched.joining:
                watched.follower.hold(message)  # handed over once the JOIN loaded the room
            return
        ordered = watched.follower.offer(message, head)
        self._observe(message.room, ordered.ready)
        if ordered.behind:
            self._fill_soon(message.room, watched, new_epoch=ordered.new_epoch)

    def _drain(self, room: str, watched: _Watched) -> None:
        runtime = self._runtime
        head = runtime.rooms.head(room) if runtime is not None else None
        if head is None:
            return
        ordered = watched.follower.drain(head)
        self._observe(room, ordered.ready)
        if ordered.behind:
            self._fill_soon(room, watched)

    def _observe(self, room: str, messages: list[RoomMessage]) -> None:
        runtime = self._runtime
        assert runtime is not None
        events = []
        for message in messages:
            events += runtime.rooms.observe(message)
        if events:
            self._deliver(events)

    def _fill_soon(
        self, room: str, watched: _Watched, *, new_epoch: bool = False, force: bool = False
    ) -> None:
        runtime = self._runtime
        if watched.filling or runtime is None:
            return
        watched.filling = True
        runtime.start_soon(self._fill, room, watched, new_epoch, force)

    async def _fill(self, room: str, watched: _Watched, new_epoch: bool, force: bool) -> None:
        """Read the stream after the hub's head until nothing is missing (or the room went).
        What waits ahead and is not in the stream after ``stuck`` rounds is let go (a stream
        that lost it: the next post starts a new epoch)."""
        runtime = self._runtime
        assert runtime is not None
        rounds = 0
        try:
            await anyio.sleep(self.fill_delay)  # pub/sub may only be late
            if new_epoch:
                await self._restart_epoch(room, watched)
                force = True
            while self._watched.get(room) is watched:
                head = runtime.rooms.head(room)
                if head is None or not (force or len(watched.follower)):
                    return
                force = False
                found = await self.shared.read_after(room, head[1], self.read_batch)
                self.gap_reads += 1
                if self._watched.get(room) is not watched or runtime.rooms.head(room) is None:
                    return  # its last member left meanwhile: the hub let the room go
                if found and found[0].epoch != head[0]:
                    await self._restart_epoch(room, watched)
                    force = True
                    continue
                for message in found:
                    self._observe(room, watched.follower.offer(message, head).ready)
                    head = runtime.rooms.head(room) or head
                self._drain(room, watched)
                if len(found) == self.read_batch:
                    force = True  # more to read
                elif len(watched.follower):
                    rounds += 1
                    if rounds >= self.stuck:
                        log.warning("room %r: messages ahead of its stream let go", room)
                        watched.follower.clear()
                        return
                    await anyio.sleep(self.fill_delay)  # what is ahead may be on its way
        except StorageFailed as error:
            log.warning("room %r: cannot read its stream (%s); retrying on reconnect", room, error)
        finally:
            watched.filling = False

    async def _restart_epoch(self, room: str, watched: _Watched) -> None:
        """The stream started over under another epoch: take its retained window."""
        runtime = self._runtime
        assert runtime is not None
        watched.follower.clear()
        recent = await self.shared.recent(room, max(1, runtime.rooms.history))
        if recent and runtime.rooms.head(room) is not None:
            self._observe(room, recent[:1])  # resets the room (announced), then in order
            self._observe(room, recent[1:])

    # -- presence across nodes -----------------------------------------------------------

    def presence(self, room: str, user: str, node: str, *, present: bool) -> None:
        """``user`` arrived in (left) ``room`` through another ``node`` (``Listener``)."""
        runtime, watched = self._runtime, self._watched.get(room)
        if runtime is None or watched is None:
            return
        if runtime.rooms.head(room) is None:
            if watched.joining:
                watched.held.append((user, node, present))
            return
        now = runtime.wall_clock()
        self._deliver(runtime.rooms.elsewhere(room, user, node, present=present, now=now))

    def _tell(self, item: tuple[str, str, bool] | RoomMessage) -> None:
        self._outgoing.append(item)
        self._outgoing_done = anyio.Event() if self._outgoing_done.is_set() else self._outgoing_done
        self._outgoing_wakeup.set()

    async def _tell_others(self) -> None:
        """Send what ``_tell`` queued, in order; what cannot be sent waits for the engine."""
        outgoing, shared = self._outgoing, self.shared
        while True:
            if not outgoing:
                self._outgoing_done.set()
                self._outgoing_wakeup = anyio.Event()
                await self._outgoing_wakeup.wait()
                continue
            item = outgoing[0]
            try:
                if isinstance(item, RoomMessage):
                    await shared.typing(item.room, item.sender, item.timestamp)
                else:
                    await shared.presence(*item)
            except StorageFailed:
                if isinstance(item, RoomMessage):
                    outgoing.popleft()  # a TYPING is not worth waiting for
                await anyio.sleep(0.2)
                continue
            outgoing.popleft()

    async def _beat(self) -> None:
        """Renew this node's liveness; reap dead nodes (their members leave everywhere). A
        node the others reaped while it could not reach the engine tells its members again."""
        beats = 0
        while True:
            try:
                unknown, reaped = await self.shared.heartbeat(self.node_ttl)
            except StorageFailed:
                pass
            else:
                self.reaped += reaped
                if unknown and beats and self._runtime is not None:
                    for room, user in self._runtime.rooms.present_here():
                        self._tell((room, user, True))
                    self.matches.rejoin()
                beats += 1
            await anyio.sleep(self.heartbeat)

    # -- resync: after a reconnect, and every head_check seconds ------------------------

    def lost(self) -> None:
        """The engine's connection dropped (``Listener``): health says NOT_SERVING."""

    def reconnected(self) -> None:
        self._resync.set()

    def heard_edit(self, edit: SharedEdit) -> None:
        """Another node's revision of a document (``Listener``)."""
        self.documents.heard(edit)

    def heard_state(self, match: str, payload: bytes) -> None:
        """A match's state, published by its owner (``Listener``)."""
        self.matches.heard_state(match, payload)

    def heard_notice(self, payload: bytes) -> None:
        """Something another node tells this one alone (``Listener``)."""
        self.matches.heard_notice(payload)

    async def _check_heads(self) -> None:
        while True:
            with anyio.move_on_after(self.head_check):
                await self._resync.wait()
            self._resync = anyio.Event()
            try:
                await self.resync()
            except StorageFailed as error:
                log.warning("resync: the engine is unreachable (%s); retrying", error)

    async def resync(self) -> None:
        """Compare every followed room's head with the stream's; read what is missing; let
        go of rooms no session here is in any more."""
        runtime = self._runtime
        assert runtime is not None
        self.resyncs += 1
        await self.documents.resync()
        rooms = runtime.rooms
        for room, watched in list(self._watched.items()):
            if rooms.head(room) is None and not watched.joining and watched.ready.is_set():
                watched.ready = leaving = anyio.Event()  # a JOIN meanwhile waits, then resubscribes
                try:
                    await self.shared.unsubscribe(room)
                finally:
                    del self._watched[room]
                    leaving.set()
        followed = [room for room in self._watched if rooms.head(room) is not None]
        if not followed:
            return
        heads = await self.shared.heads(followed)
        for room, stream in heads.items():
            mine, following = rooms.head(room), self._watched.get(room)
            if mine is None or following is None:
                continue
            if stream is None or stream[0] != mine[0]:
                self._fill_soon(room, following, new_epoch=True)
            elif stream[1] > mine[1]:
                self._fill_soon(room, following, force=True)
