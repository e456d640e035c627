"""grpclib's per-stream waiting objects, replaced by ones that cost nothing until waited on.

Every grpclib stream makes three ``asyncio.Event``s and an ``asyncio.Queue`` of received DATA
frames when it starts. Each Event and each of the Queue's three deques holds a 760-byte
deque (a 64-slot block), so an idle stream carried about 5 KiB of them (7 deques, by
tracemalloc, ``bench/chat_idle.py``); a server's streams mostly wait. ``slim`` swaps them
for ``LazyEvent`` and ``FrameQueue``, which hold a deque or a future only while there is
something in them or someone waits, and are otherwise a few words.

What grpclib uses of them (pinned at 0.4.9, ``pyproject.toml``): the Events' ``set``,
``clear``, ``is_set`` and ``wait`` (a server stream waits only on ``window_updated``, in
``send_data``; the other two are a client's), and the Queue's ``put_nowait``, ``get``,
``get_nowait``, ``qsize`` and ``empty``, with one reader (the call's). ``framing.py`` reads
the queue too. ``tests/transports/test_lean.py`` pins both against grpclib's own use.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, TypeVar

from grpclib.server import Stream

T = TypeVar("T")


class LazyEvent:
    """``asyncio.Event``'s ``set``/``clear``/``is_set``/``wait``; the Event is made only while
    someone waits."""

    __slots__ = ("_event", "_flag")

    def __init__(self, flag: bool = False) -> None:
        self._flag = flag
        self._event: asyncio.Event | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        event, self._event = self._event, None
        if event is not None:
            event.set()  # wakes every waiter; a later wait after a clear makes a new one

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> bool:
        if not self._flag:
            event = self._event
            if event is None:
                event = self._event = asyncio.Event()
            await event.wait()
        return True


class FrameQueue(Generic[T]):
    """A FIFO with one reader: ``asyncio.Queue``'s unbounded ``put_nowait``/``get``/
    ``get_nowait``/``qsize``/``empty``, holding a deque only while it holds items and a future
    only while its reader waits."""

    __slots__ = ("_items", "_waiter")

    def __init__(self, items: Any = ()) -> None:
        self._items: deque[T] | None = deque(items) or None
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items is not None else 0

    def empty(self) -> bool:
        return self._items is None

    def put_nowait(self, item: T) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def get_nowait(self) -> T:
        items = self._items
        if items is None:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        while self._items is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self.get_nowait()


def slim(stream: Stream[Any, Any]) -> None:
    """Swap ``stream``'s Events and its queue of received frames for the lazy ones; call once,
    at the start of the call, before anything reads or waits on them (frames already
    received move over, in order)."""
    h2_stream = stream._stream
    for name in ("window_updated", "headers_received", "trailers_received"):
        setattr(h2_stream, name, LazyEvent(getattr(h2_stream, name).is_set()))
    buffer = h2_stream.buffer
    old = buffer._unacked
    if not old._getters:  # (no one reads before the call's handler does)
        buffer._unacked = FrameQueue(old._queue)
