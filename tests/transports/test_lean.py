"""What an idle stream holds: grpclib's waiting objects made lazily (``transports/grpc/lean.py``),
and the runtime's per-session objects without a ``__dict__``."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from grpclib.protocol import Stream as H2Stream

from helpers import channel_for, chat_call
from interplay.core.buffer import BackpressureBuffer
from interplay.runtime.outbox import Broadcast, Outbox, Tally
from interplay.runtime.server import Service, Session
from interplay.transports.grpc.lean import FrameQueue, LazyEvent

pytestmark = pytest.mark.anyio


async def test_a_lazy_event_wakes_its_waiters_and_holds_no_event_while_none_waits() -> None:
    event = LazyEvent()
    assert not event.is_set() and event._event is None
    waiters = [asyncio.create_task(event.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert event._event is not None  # made for the waiters
    event.set()
    assert await asyncio.gather(*waiters) == [True, True]
    assert event.is_set() and event._event is None
    assert await event.wait()  # set: at once
    event.clear()  # what grpclib's send_data does before it waits for window
    waiter = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    event.set()
    assert await waiter
    assert LazyEvent(True).is_set()


async def test_a_frame_queue_is_fifo_and_holds_nothing_while_empty() -> None:
    queue: FrameQueue[int] = FrameQueue([1, 2])
    assert (queue.qsize(), queue.empty()) == (2, False)
    assert [await queue.get(), queue.get_nowait()] == [1, 2]
    assert queue.empty() and queue._items is None and queue._waiter is None
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert queue._waiter is not None
    queue.put_nowait(3)
    queue.put_nowait(4)
    assert await reader == 3
    assert queue.qsize() == 1 and queue.get_nowait() == 4
    cancelled = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert queue._waiter is None  # a cancelled reader leaves nothing behind
    queue.put_nowait(5)
    assert await queue.get() == 5
    assert FrameQueue().empty()


def _server_streams() -> list[Any]:
    """The server side's HTTP/2 streams: the ones ``slim`` gave a ``FrameQueue``."""
    return [
        o
        for o in gc.get_objects()
        if type(o) is H2Stream
        and isinstance(getattr(o, "buffer", None) and o.buffer._unacked, FrameQueue)
    ]


async def test_an_idle_chat_stream_holds_no_deque_and_no_event() -> None:
    """Joined and read up, a Chat stream's server side waits with its queue and its events
    empty (no deque, no asyncio.Event: 760 bytes each), and still works after."""
    earlier = {id(o) for o in _server_streams()}  # other tests' streams not collected yet
    async with channel_for() as (_, channel), chat_call(channel) as ann:
        await ann.join("ann")
        await ann.recv_n(1)
        [stream] = [o for o in _server_streams() if id(o) not in earlier]
        queue = stream.buffer._unacked
        assert queue._items is None and queue._waiter is not None  # its reader waits
        events = (stream.window_updated, stream.headers_received, stream.trailers_received)
        assert all(type(e) is LazyEvent and e._event is None for e in events)
        await ann.text("still works")
        [echo] = await ann.recv_n(1)
        assert echo.content == "still works"
        await ann.stream.end()


def test_per_session_objects_have_no_dict() -> None:
    """Slots only: a ``__dict__`` is ~100 bytes more per object, per session."""

    async def send(frames: list[bytes]) -> None: ...

    outbox = Outbox(8, 2, tallies=(Tally(),))
    objects = [
        Session("1", Service.CHAT, None, None, outbox, None, send),  # type: ignore[arg-type]
        outbox,
        outbox.buffer,
        BackpressureBuffer[int](high=1, low=0),
        Broadcast(None, 0),
        LazyEvent(),
        FrameQueue[int](),
    ]
    assert [type(o).__name__ for o in objects if hasattr(o, "__dict__")] == []
