"""What waits for one session's writer: a queue with water marks, or the newest game state.

Items are encoded lazily, at most once per codec: a broadcast to a room is one ``Broadcast``
shared by every member's outbox, and the first writer of each wire format encodes it for all
the others of that format (gRPC and WebSocket members of one room, say).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio

from interplay.core.buffer import BackpressureBuffer, Signal
from interplay.core.game import TickState
from interplay.core.latest import LatestState

# Items one write may carry: what queued while the writer was busy goes out together.
BATCH = 64


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

    __slots__ = ("_codec", "_frames", "_others", "event", "stamp")

    def __init__(self, event: object, stamp: int) -> None:
        self.event = event
        self.stamp = stamp
        self._codec: Codec | None = None
        self._frames: Sequence[bytes] = ()
        self._others: dict[int, Sequence[bytes]] | None = None

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

    __slots__ = ("_failure", "_ready", "closed")

    def __init__(self) -> None:
        self.closed = False
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

    def _wake(self) -> None:
        """Wake a waiting writer, once (not once per item)."""
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.set()

    async def _wait(self) -> None:
        """Until there is something to write, the outbox closed, or it failed (raised)."""
        while not len(self) and not self.closed and self._failure is None:
            self._ready = ready = anyio.Event()
            try:
                await ready.wait()
            finally:
                self._ready = None
        if self._failure is not None:
            raise self._failure


class Outbox(_Waiting):
    """What is queued for one session, with water marks (``BackpressureBuffer``)."""

    __slots__ = ("_on_resume", "buffer")

    def __init__(self, high: int, low: int, on_resume: Callable[[], None]) -> None:
        super().__init__()
        self.buffer: BackpressureBuffer[Broadcast] = BackpressureBuffer(high=high, low=low)
        self._on_resume = on_resume

    def __len__(self) -> int:
        return len(self.buffer)

    def push(self, item: Broadcast) -> Signal | None:
        signal = self.buffer.push(item)
        if self._ready is not None:
            self._wake()
        return signal

    async def next(
        self, codec: Codec, settle: Callable[[], Awaitable[None]] | None = None
    ) -> list[bytes] | None:
        """The frames to write next, oldest first (up to ``BATCH`` items); None once closed
        and flushed. Raises what ``fail`` was given. ``settle``, if given, is awaited once
        there is something to write and room for more, before taking it: what it lets
        arrive meanwhile goes in the same write."""
        await self._wait()
        if settle is not None and 0 < len(self.buffer) < BATCH and not self.closed:
            await settle()
            await self._wait()  # a failure meanwhile is raised
        if not self.buffer:
            return None
        items, signal = self.buffer.pop_many(BATCH)
        if signal is Signal.RESUME:
            self._on_resume()
        frames: list[bytes] = []
        for item in items:
            frames.extend(item.frames(codec))
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

    def push(self, item: Broadcast) -> Signal | None:
        """A notice for this player (its sender bounds how many: see ``Runtime``)."""
        self.notices.append(item)
        self._wake()
        return None

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
