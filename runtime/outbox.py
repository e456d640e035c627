"""What waits for one session's writer: a queue with water marks, or the newest game state.

Items are encoded lazily, at most once per codec: a broadcast to a room is one ``Broadcast``
shared by every member's outbox, and the first writer of each wire format encodes it for all
the others of that format (gRPC and WebSocket members of one room, say).

Queued bytes are counted per outbox and in ``Tally``s shared by several (a connection's, the
whole server's), so the runtime can hold each under its budget. A broadcast's size is what
its event carries (text, ids, names) plus a fixed overhead, counted before it is encoded: an
estimate of the wire bytes, the same for every codec.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio

from interplay.core.buffer import BackpressureBuffer
from interplay.core.documents import Remote, Snapshot
from interplay.core.game import TickState
from interplay.core.latest import LatestState
from interplay.core.rooms import RoomMessage

# Items one write may carry: what queued while the writer was busy goes out together.
BATCH = 64
# What every event costs beside the text it carries: the frame, the field tags, numbers.
OVERHEAD = 48


def event_size(event: object) -> int:
    """About how many bytes ``event`` takes on the wire (see the module docstring)."""
    if isinstance(event, RoomMessage):
        return OVERHEAD + len(event.content) + len(event.id) + len(event.sender) + len(event.room)
    if isinstance(event, Remote):
        text = 0
        for piece in event.pieces:  # mostly one: a loop, not a generator
            text += len(piece.inserted) + len(piece.deleted)
        return OVERHEAD + text + len(event.op_id) + len(event.user) + len(event.document)
    if isinstance(event, Snapshot):
        return OVERHEAD + len(event.text) + len(event.document)
    return OVERHEAD * 2


class Tally:
    """Bytes queued in a group of outboxes (one connection's, the whole server's)."""

    __slots__ = ("bytes", "key", "outboxes")

    def __init__(self, key: object = None) -> None:
        self.key = key  # what its owner knows it by (a connection)
        self.bytes = 0
        self.outboxes = 0  # how many count into it (a connection's goes when the last does)


class Codec(Protocol):
    """A transport's wire format, as the runtime uses it."""

    def decode(self, message: Any, session: str) -> Any:
        """A received wire message as a core command of ``session`` (or a ``CoreError``)."""

    def encode(self, event: object, stamp: int) -> Sequence[bytes]:
        """A core event (chat or document) as the frames that carry it; ``stamp``: Unix ms."""

    def encode_state(self, match: str, state: TickState, *, full: bool, stamp: int) -> bytes:
        """One tick's state of ``match``, full or only what changed."""


class Broadcast:
    """One event for many sessions, encoded at most once per codec."""

    __slots__ = ("_codec", "_frames", "_others", "_size", "event", "stamp")

    def __init__(self, event: object, stamp: int) -> None:
        self.event = event
        self.stamp = stamp
        self._size = -1
        self._codec: Codec | None = None
        self._frames: Sequence[bytes] = ()
        self._others: dict[int, Sequence[bytes]] | None = None

    @property
    def size(self) -> int:
        """``event_size`` of its event, computed once for every outbox it is queued in."""
        if self._size < 0:
            self._size = event_size(self.event)
        return self._size

    def frames(self, codec: Codec) -> Sequence[bytes]:
        if codec is self._codec:
            return self._frames
        if self._codec is None:
            self._codec = codec
            self._frames = codec.encode(self.event, self.stamp)
            return self._frames
        others = self._others if self._others is not None else {}
        self._others = others
        frames = others.get(id(codec))
        if frames is None:
            frames = others[id(codec)] = codec.encode(self.event, self.stamp)
        return frames


class _Waiting:
    """What both outboxes share: closing, failing, and the one writer waiting for more."""

    __slots__ = ("_failure", "_poked", "_ready", "bytes", "closed")

    def __init__(self) -> None:
        self.closed = False
        self._poked = False
        self.bytes = 0  # queued (a newest-state slot counts none: it holds one state)
        self._failure: BaseException | None = None
        self._ready: anyio.Event | None = None  # while its writer waits (an idle one has none)

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def done(self) -> bool:
        """Closed and flushed: its writer has nothing more to do."""
        return self.closed and not len(self)

    def close(self) -> None:
        """No more items; the writer returns once what is there has gone."""
        self.closed = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The writer raises ``error`` instead of writing more (a cut session)."""
        self._failure = error
        self._wake()

    def poke(self) -> None:
        """Wake the writer even with nothing queued: it has something else to do (read the
        log); ``next`` then returns no frames."""
        self._poked = True
        self._wake()

    def _wake(self) -> None:
        """Wake a waiting writer, once (not once per item)."""
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.set()

    async def _wait(self) -> None:
        """Until there is something to write, the outbox closed, or it failed (raised)."""
        while not len(self) and not self.closed and self._failure is None and not self._poked:
            self._ready = ready = anyio.Event()
            try:
                await ready.wait()
            finally:
                self._ready = None
        self._poked = False
        if self._failure is not None:
            raise self._failure


class Outbox(_Waiting):
    """What is queued for one session, with water marks in messages (``BackpressureBuffer``)
    and a count of its bytes, added into ``tallies`` too; over ``high`` messages or ``budget``
    bytes its session should read from the log instead (``push`` says so)."""

    __slots__ = ("batch_bytes", "budget", "buffer", "high", "tallies")

    def __init__(
        self,
        high: int,
        low: int,
        *,
        tallies: tuple[Tally, ...] = (),
        budget: int = 1 << 62,
        batch_bytes: int = 1 << 62,
    ) -> None:
        super().__init__()
        self.buffer: BackpressureBuffer[Broadcast] = BackpressureBuffer(high=high, low=low)
        self.high = high
        self.tallies = tallies
        self.budget = budget
        self.batch_bytes = batch_bytes  # one write takes at least one item, and about this

    def __len__(self) -> int:
        return len(self.buffer)

    def push(self, item: Broadcast) -> bool:
        """Queue ``item``; True when the outbox is then over its high water mark or its byte
        budget (the buffer's PAUSE is the first such push)."""
        buffer = self.buffer
        buffer.push(item)
        size = item.size
        self.bytes += size
        for tally in self.tallies:
            tally.bytes += size
        if self._ready is not None:
            self._wake()
        return len(buffer) > self.high or self.bytes > self.budget

    def release(self, predicate: Callable[[Broadcast], bool]) -> list[Broadcast]:
        """Take out the items ``predicate`` picks (what the session will read from the log
        instead), their bytes with them."""
        items, _ = self.buffer.remove_if(predicate)
        self._uncount(items)
        return items

    def _uncount(self, items: list[Broadcast]) -> None:
        self._uncount_bytes(sum(item.size for item in items))

    def _uncount_bytes(self, size: int) -> None:
        self.bytes -= size
        for tally in self.tallies:
            tally.bytes -= size

    def discard(self) -> None:
        """Forget what is queued (the session is gone): its bytes leave the tallies."""
        items, _ = self.buffer.remove_if(lambda item: True)
        self._uncount(items)

    async def next(
        self, codec: Codec, settle: Callable[[], Awaitable[None]] | None = None
    ) -> list[bytes] | None:
        """The frames to write next, oldest first (up to ``BATCH`` items, and about
        ``batch_bytes``); None once closed and flushed. Raises what ``fail`` was given.
        ``settle``, if given, is awaited once there is something to write and room for more,
        before taking it: what it lets arrive meanwhile goes in the same write."""
        await self._wait()
        if settle is not None and 0 < len(self.buffer) < BATCH and not self.closed:
            await settle()
            await self._wait()  # a failure meanwhile is raised
        if not self.buffer:
            return None if self.closed else []
        return self.take(codec)

    def take(self, codec: Codec) -> list[bytes]:
        """``next``'s batch, taken now: the frames of up to ``BATCH`` items, oldest first (a
        writer that need not wait: ``Runtime._flush``)."""
        limit, budget = BATCH, self.batch_bytes
        if self.bytes > budget:  # big items: fewer of them per write
            limit, total = 0, 0
            for item in self.buffer:
                limit += 1
                total += item.size
                if total >= budget or limit == BATCH:
                    break
        items, _ = self.buffer.pop_many(limit)
        frames: list[bytes] = []
        size = 0
        for item in items:
            size += item.size
            frames.extend(item.frames(codec))
        self._uncount_bytes(size)
        return frames


class EncodedTick:
    """One tick's state, encoded at most once per form (delta, full) and codec."""

    __slots__ = ("_cache", "match", "stamp", "state")

    def __init__(self, match: str, state: TickState, stamp: int) -> None:
        self.match = match
        self.state = state
        self.stamp = stamp
        self._cache: dict[tuple[int, bool], bytes] = {}

    def frame(self, codec: Codec, *, full: bool) -> bytes:
        full = full or self.state.periodic_full
        key = (id(codec), full)
        data = self._cache.get(key)
        if data is None:
            data = self._cache[key] = codec.encode_state(
                self.match, self.state, full=full, stamp=self.stamp
            )
        return data


class StateOutbox(_Waiting):
    """The newest game state waiting for one GameSync session: ``LatestState`` plus a wake-up
    for its writer. A slow player holds one state, never a queue, and blocks nobody.

    Beside it, the notices for that player alone (its refused actions), which are never
    superseded: they go out, in order, before the next state."""

    __slots__ = ("notices", "slot")

    def __init__(self) -> None:
        super().__init__()
        self.slot: LatestState[EncodedTick] = LatestState()
        self.notices: deque[Broadcast] = deque()

    def __len__(self) -> int:
        return len(self.notices) + (1 if self.slot else 0)

    def push(self, item: Broadcast) -> bool:
        """A notice for this player (its sender bounds how many: see ``Runtime``); never
        over a limit (False)."""
        self.notices.append(item)
        self._wake()
        return False

    def offer(self, tick: EncodedTick) -> bool:
        """True when it superseded a state this session never got."""
        superseded = self.slot.offer(tick)
        self._wake()
        return superseded

    async def next(
        self, codec: Codec, settle: Callable[[], Awaitable[None]] | None = None
    ) -> list[bytes] | None:
        """The state to write now (full if the session missed one); None once closed.
        (``settle`` is ``Outbox.next``'s; a newest-state slot never waits for more.)"""
        await self._wait()
        frames: list[bytes] = []
        while self.notices:
            frames.extend(self.notices.popleft().frames(codec))
        if self.slot:
            tick, full = self.slot.take()
            frames.append(tick.frame(codec, full=full))
        return frames or None
