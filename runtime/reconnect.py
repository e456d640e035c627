"""One reconnect loop for every transport's clients (DESIGN §6, §8 "Clients mirror it").

A ``ReconnectingCall`` keeps one logical call alive over successive connections:

    connect -> send what re-establishes the session -> pump messages both ways
      -> on failure: transient? back off (``core.backoff``) and reconnect : surface it, CLOSED

The rules of *what* to send live in a core state machine (a ``ClientMachine``: ``ClientRooms``,
``ClientEditor``, ``ClientPlayer``): ``connected()`` says what a new connection sends first,
``receive(message)`` what the application sees and what to send in reply. A transport supplies
only a ``Transport``: ``connect()`` returning a small ``Call`` (send, recv, end, close) whose
failures are ``CallError``s naming a status, and its codec (``encode`` a core request to a wire
message, ``decode`` a wire message to what the machine receives).

A transport marks the connection failures no retry can cure (TLS and protocol mismatches,
an unresolvable host) as not transient, whatever their status. A server's refusal of one
message is not a failure at all: it arrives as a message, and the machine deals with it.

Failures are classified here, once, by status *name* (gRPC's vocabulary, which the WebSocket
close codes 4000 + n carry too): UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED and DEADLINE_EXCEEDED
are transient (retry); a broken connection is UNAVAILABLE; any other status is fatal: the loop
stops, iteration and later calls raise it (as ``Transport.fatal`` makes it), state is CLOSED.

What is made while disconnected, or on a connection that breaks before writing it, is not lost:
the machine still holds it, and the next ``connected()`` carries it. Hence the one rule of
``_submit``: requests are made from the machine's state at once and written on the connection
current at that moment, unless a reconnect happened since (then its hello carried them), so
nothing is sent twice on one connection and nothing is skipped.
"""

from __future__ import annotations

import contextlib
import enum
import random
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import anyio
from anyio.abc import TaskGroup

from interplay.core.backoff import Backoff, BackoffPolicy

# The classification table: status names, as every transport reports them.
TRANSIENT_STATUSES = frozenset(
    {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "DEADLINE_EXCEEDED"}
)


def is_transient(status: str) -> bool:
    """Retry after this status (else it is fatal and surfaces to the caller)."""
    return status in TRANSIENT_STATUSES


class CallError(Exception):
    """A call failed with ``status`` (a gRPC status name such as "UNAVAILABLE") and a message.

    A transport raises it from every ``Call`` method and from ``connect``; a connection that
    broke, or could not be made, is UNAVAILABLE. The transport's own exception, if any, is the
    ``__cause__``."""

    def __init__(self, status: str, message: str = "", *, transient: bool | None = None) -> None:
        super().__init__(f"{status}: {message}" if message else status)
        self.status = status
        self.message = message
        self._transient = transient

    @property
    def transient(self) -> bool:
        """Retry after it: by its status, unless the transport knew better (a TLS or protocol
        mismatch, a host that does not resolve: UNAVAILABLE, and no retry will help)."""
        return is_transient(self.status) if self._transient is None else self._transient


async def unrecoverable(
    failure: CallError, exc: BaseException, *, host: str, port: int, tls: bool, dropped: bool
) -> CallError:
    """``failure`` (a connect, or a call's first exchange, failed with ``exc``), unless ``exc``
    shows that no retry can succeed: then a CallError that is not transient and says what to
    change (DESIGN §6: classify, and say why). ``dropped``: the connection was dropped before
    the server said anything, which a TLS port does to a plaintext client."""
    where = f"{host}:{port}"
    why: str | None = None
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = (
            f"TLS: the certificate of {where} is not trusted ({exc.verify_message}); "
            "trust the authority that signed it (ssl=, interplay chat --tls-ca)"
        )
    elif isinstance(exc, ssl.SSLError):
        why = f"TLS: {where} does not speak TLS ({exc.reason}): is it a plaintext port?"
    elif isinstance(exc, socket.gaierror):
        why = f"cannot resolve host {host!r} ({exc.strerror})"
    elif dropped and (speaks := await _speaks_tls(host, port)) is not None and speaks != tls:
        why = (
            f"{where} speaks TLS, and this client connected without it (ssl=)"
            if speaks
            else f"TLS: {where} does not speak TLS (it dropped the handshake): is it a "
            "plaintext port?"
        )
    if why is None:
        return failure
    error = CallError(failure.status, why, transient=False)
    error.__cause__ = exc
    return error


async def _speaks_tls(host: str, port: int) -> bool | None:
    """Whether a TLS handshake with ``host:port`` succeeds (its certificate unchecked); None
    if nothing accepts a connection there (a server down: that may pass). Asked only after a
    connection was dropped before the server said anything."""
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with anyio.fail_after(2):
            plain = await anyio.connect_tcp(host, port)
    except (OSError, TimeoutError):
        return None
    await plain.aclose()
    try:
        with anyio.fail_after(2):
            stream = await anyio.connect_tcp(
                host, port, ssl_context=probe, tls_standard_compatible=False
            )
    except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError):
        return False
    await stream.aclose()
    return True


def connection_lost(message: str = "the connection broke") -> CallError:
    return CallError("UNAVAILABLE", message)


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


Wire = TypeVar("Wire")
Request = TypeVar("Request")
Reply = TypeVar("Reply")
Shown = TypeVar("Shown")
WireOut_contra = TypeVar("WireOut_contra", contravariant=True)
WireIn_co = TypeVar("WireIn_co", covariant=True)
Request_co = TypeVar("Request_co", covariant=True)
Request_contra = TypeVar("Request_contra", contravariant=True)
Reply_co = TypeVar("Reply_co", covariant=True)
Reply_contra = TypeVar("Reply_contra", contravariant=True)
Shown_co = TypeVar("Shown_co", covariant=True)


class Call(Protocol[WireOut_contra, WireIn_co]):
    """One connection's call, as a transport opens it. Every method raises ``CallError``."""

    async def send(self, message: WireOut_contra) -> None:
        """Write one message; waits while the transport is full (never drops)."""
        ...

    async def recv(self) -> WireIn_co | None:
        """The next message; None once the peer ended the call cleanly (OK)."""
        ...

    async def end(self) -> None:
        """Half-close: nothing more will be sent; the peer flushes, then ends the call."""
        ...

    async def close(self) -> None:
        """Release the connection (idempotent; never raises)."""
        ...


class Transport(Protocol[Request_contra, Reply_co, Wire]):
    """What a transport supplies: how to open a call, and its codec."""

    async def connect(self) -> Call[Wire, Any]:
        """A new call, ready to send and receive; ``CallError`` if it cannot be made."""
        ...

    def encode(self, request: Request_contra) -> Wire:
        """A machine's request as a wire message."""
        ...

    def decode(self, message: Any) -> Reply_co | None:
        """A received wire message as what the machine receives; None: nothing for it."""
        ...

    def fatal(self, error: CallError) -> Exception:
        """The exception the application sees for a fatal ``error`` (e.g. its cause)."""
        ...


class ClientMachine(Protocol[Request_co, Reply_contra, Shown_co]):
    """A core client state machine, as the loop drives it."""

    def connected(self) -> Sequence[Request_co]:
        """What a new connection sends first."""
        ...

    def receive(self, message: Reply_contra) -> tuple[Sequence[Shown_co], Sequence[Request_co]]:
        """What the application sees of ``message``, and what to send in reply."""
        ...


@dataclass(eq=False)
class _Connection:
    call: Call[Any, Any]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)  # the reader's
    writes: set[anyio.CancelScope] = field(default_factory=set)
    failure: CallError | None = None

    def fail(self, failure: CallError) -> None:
        if self.failure is None:
            self.failure = failure
        self.scope.cancel()


class ReconnectingCall(Generic[Request, Reply, Shown]):
    """One call kept alive across connections; an async context manager whose async iterator
    yields what the machine shows. ``state``, ``on_state=`` and ``reconnect_delays`` (every
    wait before a reconnect, in order) make the connection observable; ``error`` is the fatal
    failure, once CLOSED by one."""

    def __init__(
        self,
        transport: Transport[Request, Reply, Any],
        machine: ClientMachine[Request, Reply, Shown],
        *,
        backoff: BackoffPolicy | None = None,
        random_source: Callable[[], float] = random.random,
        inbox_size: int = 1024,
        on_state: Callable[[ConnectionState], None] | None = None,
    ) -> None:
        self._transport = transport
        self._machine = machine
        self._backoff = Backoff(backoff or BackoffPolicy(), random_source)
        self._on_state = on_state
        self.state = ConnectionState.CONNECTING
        self.reconnect_delays: list[float] = []
        self.failure: CallError | None = None  # the fatal failure, as the transport said it
        self.error: Exception | None = None  # ... as the application sees it
        self.last_failure: CallError | None = None  # why the latest connection ended
        self._current: _Connection | None = None  # the connection writes go to, if any
        self._lock = anyio.Lock()  # one writer at a time; see _submit
        self._inbox_in, self._inbox = anyio.create_memory_object_stream[Shown](inbox_size)
        self._tasks: TaskGroup | None = None
        self._changed = anyio.Event()  # set (and replaced) on every state change
        self._progress = anyio.Event()  # ... on every state change and message handled
        self._closing = False
        self._finished = anyio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tasks is not None
        self._closing = True
        if self._current is not None and exc is None:
            # Half-close: the server flushes what it queued for us, ends our session and the
            # call with OK; wait (a little) for that, so nothing in flight is cut off.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                async with self._lock:
                    if self._current is not None:
                        with contextlib.suppress(CallError):  # it ended anyway
                            await self._current.call.end()
                await self._finished.wait()
        self._tasks.cancel_scope.cancel()
        self._set_state(ConnectionState.CLOSED)
        try:
            # Not handed the block's exception: anyio would wrap it in an ExceptionGroup, and
            # ``except GRPCError`` around ``async with`` would never catch it. It propagates
            # as it is, once the tasks have stopped.
            await self._tasks.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            if exc is None:
                raise (group.exceptions[0] if len(group.exceptions) == 1 else group) from None
        finally:
            self._inbox.close()
        return None

    async def wait_for(self, state: ConnectionState) -> None:
        while self.state is not state:
            await self._changed.wait()

    def __aiter__(self) -> AsyncIterator[Shown]:
        return self._events()

    async def _events(self) -> AsyncIterator[Shown]:
        async for event in self._inbox:
            yield event
        if self.error is not None:
            raise self.error

    # -- for the clients built on it ------------------------------------------------------

    async def _submit(self, make: Callable[[], Sequence[Request]]) -> list[Request]:
        """Make requests from the machine's state, at once (an edit applies to the text the
        caller saw, before any other message is handled), then write them on the connection
        current now, unless a reconnect's hello has carried them since: what is made while
        disconnected, or before a reconnect, goes with the next hello; what is made while
        connected goes now; never both. Raises the fatal error once CLOSED by one."""
        if self.error is not None:
            raise self.error
        requests = list(make())
        await self._write(requests, self._current)
        return requests

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds (checked after every message and state change); raises
        the fatal error if the call ends with one first."""
        while not condition():
            if self.error is not None:
                raise self.error
            await self._progress.wait()

    # -- the connection -------------------------------------------------------------------

    async def _write(self, requests: list[Request], connection: _Connection | None) -> None:
        """Write ``requests``, made while ``connection`` was current, if it still is (else the
        next hello carries what they carried). A failed write fails the connection. Always
        a checkpoint (trio's rule), so a caller sending in a loop lets the connection run."""
        async with self._lock:
            if connection is None or connection is not self._current or connection.failure:
                return
            with anyio.CancelScope() as scope:  # cancelled if the connection ends meanwhile
                connection.writes.add(scope)
                try:
                    for request in requests:
                        await connection.call.send(self._transport.encode(request))
                except CallError as failure:
                    connection.fail(failure)
                finally:
                    connection.writes.discard(scope)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._connect_once()
                    return  # our half-close, answered with OK
                except CallError as failure:
                    self.last_failure = failure
                    if not failure.transient:
                        self.failure = failure
                        self.error = self._transport.fatal(failure)
                        return
                    if self._closing:
                        return
                self._set_state(ConnectionState.RECONNECTING)
                delay = self._backoff.next_delay()
                self.reconnect_delays.append(delay)
                await anyio.sleep(delay)
        finally:
            self._current = None
            self._set_state(ConnectionState.CLOSED)
            self._inbox_in.close()
            self._finished.set()

    async def _connect_once(self) -> None:
        """One connection, until it ends: returns after our half-close was answered with OK;
        raises ``CallError`` for everything else."""
        call = await self._transport.connect()
        connection = _Connection(call)
        try:
            with connection.scope:
                async with self._lock:
                    self._current = connection  # with the hello, in one step: see _submit
                    for request in self._machine.connected():
                        await call.send(self._transport.encode(request))
                self._set_state(ConnectionState.CONNECTED)
                await self._receive(connection)
                return
        except CallError as failure:
            connection.fail(failure)
        finally:
            if self._current is connection:
                self._current = None
            for scope in connection.writes:
                scope.cancel()
            with anyio.CancelScope(shield=True):
                await call.close()
        assert connection.failure is not None
        raise connection.failure

    async def _receive(self, connection: _Connection) -> None:
        working = False
        while True:
            message = await connection.call.recv()
            if message is None:
                if self._closing:
                    return
                raise connection_lost("the server ended the call")  # OK, unasked
            if not working:
                self._backoff.reset()  # a message came through: the connection works
                working = True
            reply = self._transport.decode(message)
            if reply is None:
                continue
            shown, replies = self._machine.receive(reply)
            if replies and self._tasks is not None:
                # Without making the reader wait for the write lock. (If this connection
                # breaks first, the next one's hello carries what they would have.)
                self._tasks.start_soon(self._write, list(replies), connection)
            self._notify()
            for event in shown:
                await self._inbox_in.send(event)

    def _notify(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    def _set_state(self, state: ConnectionState) -> None:
        if state is self.state:
            return
        self.state = state
        self._changed.set()
        self._changed = anyio.Event()
        self._notify()
        if self._on_state is not None:
            self._on_state(state)
