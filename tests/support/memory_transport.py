"""An in-memory adapter for the runtime: ``Runtime.serve`` with no wire library at all.

``MemoryCall`` is one session as a transport would run it: ``receive()`` takes the next command
from an anyio memory stream the test feeds (``put``; ``end`` is the client's half-close), and
``send(frames)`` records what was written. ``block()`` makes ``send`` wait until ``unblock()``,
as a peer that stops reading would. Everything a test waits on is a condition checked on each
change (``wait_for``), never a sleep.

``MemoryCall(..., at_once=True)`` also offers ``send_now``: a write made at once unless the peer
is blocked (then it refuses, and the runtime's writer waits in ``send`` instead).

``RecordingCodec`` is a tiny ``runtime.outbox.Codec``: ``decode`` takes a core command with
any ``session`` and gives it the runtime's session id; ``encode`` frames an event as its
``repr`` (prefixed by the codec's name, so two codecs' frames differ) and counts how often each
event was encoded; ``events(frames)`` turns recorded frames back into the events.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from interplay.backends import MemoryBackend
from interplay.core.effects import AppendMessage, CreateRoom
from interplay.core.game import TickState
from interplay.core.rooms import Join, Kind, Post, RoomMessage
from interplay.runtime import Identity, Runtime, Service

WAIT = 5.0  # seconds any one condition may take before the test fails


@dataclass(frozen=True, slots=True)
class State:
    """A game state as ``RecordingCodec`` encoded it."""

    match: str
    tick: int
    full: bool


class RecordingCodec:
    def __init__(self, name: str = "codec") -> None:
        self.name = name
        self.encoded: Counter[object] = Counter()  # event -> times encoded
        self.decoded = 0
        self._frames: dict[bytes, object] = {}

    def decode(self, message: Any, session: str) -> Any:
        self.decoded += 1
        return dataclasses.replace(message, session=session)

    def encode(self, event: object, stamp: int) -> Sequence[bytes]:
        self.encoded[event] += 1
        frame = f"{self.name}|{event!r}".encode()
        self._frames[frame] = event
        return [frame]

    def encode_state(self, match: str, state: TickState, *, full: bool, stamp: int) -> bytes:
        frame = f"{self.name}|state|{match}|{state.tick}|{full}".encode()
        self._frames[frame] = State(match, state.tick, full)
        return frame

    def events(self, frames: Iterable[bytes]) -> list[object]:
        return [self._frames[frame] for frame in frames]


class MemoryCall:
    """One session of ``runtime``, run in the test's task group by ``start``."""

    def __init__(
        self,
        runtime: Runtime,
        service: Service = Service.CHAT,
        codec: RecordingCodec | None = None,
        *,
        identity: Identity | None = None,
        connection: object = None,
        at_once: bool = False,
    ) -> None:
        self.runtime = runtime
        self.at_once = at_once
        self.written_at_once = 0  # of ``writes``: made by ``send_now``
        self.refused_at_once = 0  # ``send_now`` calls that could not write (blocked)
        self.connection = connection  # shared by calls of one network connection
        self.service = service
        self.codec = codec if codec is not None else RecordingCodec()
        self.identity = identity
        self.frames: list[bytes] = []
        self.writes = 0  # send calls that completed
        self.reads = 0  # receive calls the runtime made
        self.on_send: Callable[[list[bytes]], None] | None = None  # sees each write as it lands
        self.ended: BaseException | None = None  # what serve raised (None: it returned)
        self.done = anyio.Event()
        self._inbox, self._feed = _pair()
        self._open = anyio.Event()
        self._open.set()
        self._changed = anyio.Event()

    # -- the transport's side: what the runtime calls ----------------------------------------

    async def receive(self) -> Any:
        self.reads += 1
        self._notify()
        try:
            return await self._feed.receive()
        except anyio.EndOfStream:
            return None

    async def send(self, frames: list[bytes]) -> None:
        await self._open.wait()
        if self.on_send is not None:
            self.on_send(frames)
        self.frames.extend(frames)
        self.writes += 1
        self._notify()

    def send_now(self, frames: list[bytes]) -> bool:
        if not self._open.is_set():
            self.refused_at_once += 1
            return False
        if self.on_send is not None:
            self.on_send(frames)
        self.frames.extend(frames)
        self.writes += 1
        self.written_at_once += 1
        self._notify()
        return True

    # -- the test's side ---------------------------------------------------------------------

    def start(self, tasks: TaskGroup) -> MemoryCall:
        tasks.start_soon(self._serve)
        return self

    async def _serve(self) -> None:
        try:
            await self.runtime.serve(
                self.service,
                self.codec,
                self.receive,
                self.send,
                identity=self.identity,
                connection=self.connection,
                send_now=self.send_now if self.at_once else None,
            )
        except Exception as error:  # what the adapter would map to a status
            self.ended = error
        finally:
            self.close()
            self.done.set()
            self._notify()

    def put(self, *commands: object) -> None:
        """Messages from the client, in order (a command with any ``session``)."""
        for command in commands:
            self._inbox.send_nowait(command)

    def end(self) -> None:
        """The client's half-close: ``receive`` returns None once the fed messages are read."""
        self._inbox.close()

    def close(self) -> None:
        """Release the message stream (done by ``start``'s task when ``serve`` ends)."""
        self._inbox.close()
        self._feed.close()

    def block(self) -> None:
        """The peer stops reading: ``send`` waits until ``unblock`` (blocking twice is
        blocking once)."""
        if self._open.is_set():
            self._open = anyio.Event()

    def unblock(self) -> None:
        self._open.set()

    def events(self) -> list[object]:
        return self.codec.events(self.frames)

    def texts(self) -> list[RoomMessage]:
        return [e for e in self.events() if isinstance(e, RoomMessage) and e.kind is Kind.TEXT]

    def states(self) -> list[State]:
        return [e for e in self.events() if isinstance(e, State)]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Until ``condition()`` holds, checked after each read, write and the end."""
        with anyio.fail_after(timeout):
            while not condition():
                changed = self._changed
                await changed.wait()

    async def wait_events(self, n: int, timeout: float = WAIT) -> list[object]:
        """Until at least ``n`` events were written; all of them."""
        await self.wait_for(lambda: len(self.frames) >= n or self.done.is_set(), timeout)
        assert len(self.frames) >= n, f"ended after {len(self.frames)} of {n}: {self.ended!r}"
        return self.events()

    async def wait_texts(self, n: int, timeout: float = WAIT) -> list[RoomMessage]:
        await self.wait_for(lambda: len(self.texts()) >= n or self.done.is_set(), timeout)
        texts = self.texts()
        assert len(texts) >= n, f"ended after {len(texts)} of {n} TEXTs: {self.ended!r}"
        return texts

    async def result(self, timeout: float = WAIT) -> BaseException | None:
        """Wait for ``serve`` to end: what it raised, None if it returned."""
        with anyio.fail_after(timeout):
            await self.done.wait()
        return self.ended

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class SlowCall(MemoryCall):
    """A peer that takes ``delay`` seconds over each write it reads."""

    delay = 0.0

    async def send(self, frames: list[bytes]) -> None:
        if self.delay:
            await anyio.sleep(self.delay)
        await super().send(frames)


def replayed(events: Iterable[object]) -> tuple[str, list[int]]:
    """The text an editor holds after ``events`` (its snapshot, then the others' edits; it
    applies its own itself), and the revisions it was given, in order (its own as acks)."""
    from interplay.core.documents import Acked, Remote, Snapshot

    text, revisions = "", []
    for event in events:
        if isinstance(event, Snapshot):
            text, revisions = event.text, [event.revision]
        elif isinstance(event, Remote):
            for piece in event.pieces:
                end = piece.position + len(piece.deleted)
                assert text[piece.position : end] == piece.deleted
                text = text[: piece.position] + piece.inserted + text[end:]
            revisions.append(event.revision)
        elif isinstance(event, Acked):
            revisions.append(event.revision)
    return text, revisions


def _pair() -> tuple[Any, Any]:
    send, receive = anyio.create_memory_object_stream[Any](math.inf)
    return send, receive


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """For the runtime's counters, which have no event to wait on: poll, bounded."""
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 (polling is the point)
            await anyio.sleep(0.001)


# -- the runtime's sessions as tests drive them -----------------------------------------


@asynccontextmanager
async def running(backend: Any = None, **options: Any) -> AsyncIterator[tuple[Runtime, TaskGroup]]:
    """A runtime and a task group for its calls; the whole test is bounded."""
    with anyio.fail_after(15):
        async with (
            Runtime(backend if backend is not None else MemoryBackend(), **options) as runtime,
            anyio.create_task_group() as tasks,
        ):
            yield runtime, tasks
            tasks.cancel_scope.cancel()  # a call a failed assertion left running


def chat(runtime: Runtime, tasks: TaskGroup, codec: RecordingCodec | None = None) -> MemoryCall:
    return MemoryCall(runtime, Service.CHAT, codec).start(tasks)


async def join(call: MemoryCall, user: str, room: str = "lobby", *, as_: str = "") -> RoomMessage:
    """JOIN and wait for the echo (the JOIN to oneself, which carries the room's epoch);
    ``as_``: the user the echo names, when the identity fills it in."""
    call.put(Join(session="", user=user, room=room))
    user = as_ or user

    def echo() -> RoomMessage | None:
        for event in call.events():
            if (
                isinstance(event, RoomMessage)
                and event.kind is Kind.JOIN
                and event.room == room
                and event.sender == user
                and event.epoch
            ):
                return event
        return None

    await call.wait_for(lambda: echo() is not None or call.done.is_set())
    found = echo()
    assert found is not None, f"no JOIN echo: {call.ended!r}"
    return found


def post(content: str, room: str = "lobby", id: str = "") -> Post:
    return Post(session="", room=room, content=content, id=id)


async def finish(*calls: MemoryCall) -> None:
    """The clients end; each ``serve`` returns."""
    for call in calls:
        call.end()
    for call in calls:
        assert await call.result() is None


def seeded(rooms: dict[str, int], size: int) -> MemoryBackend:
    """A backend whose rooms already hold ``rooms[name]`` TEXTs of ``size`` characters."""
    backend = MemoryBackend()
    for room, count in rooms.items():
        writes: list[Any] = [CreateRoom(room=room, epoch=f"e-{room}")]
        writes += [
            AppendMessage(
                message=RoomMessage(
                    kind=Kind.TEXT,
                    room=room,
                    sender="old",
                    id=f"old-{seq}",
                    content="x" * size,
                    timestamp=seq,
                    seq=seq,
                    epoch=f"e-{room}",
                )
            )
            for seq in range(1, count + 1)
        ]
        backend.write_now(writes)
    return backend
