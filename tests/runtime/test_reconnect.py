"""The runtime's reconnect loop over an in-memory transport: no wire library, no socket.

A ``FakeTransport`` hands out ``FakeCall``s the test drives (push a message, fail the call, end
it); a small machine says what the hello is (``hello`` + every unacknowledged text) and acks
what the server acknowledges, as the core's client machines do."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from helpers import eventually
from interplay.core.backoff import BackoffPolicy
from interplay.runtime.reconnect import (
    TRANSIENT_STATUSES,
    CallError,
    ConnectionState,
    ReconnectingCall,
    is_transient,
)

pytestmark = pytest.mark.anyio

POLICY = BackoffPolicy(initial=0.01, multiplier=2, jitter=0.5, cap=1)


class FakeCall:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.ended = self.closed = False
        self.failing_writes: CallError | None = None
        self._in, self._out = anyio.create_memory_object_stream[bytes | CallError | None](100)

    async def send(self, message: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        if self.failing_writes is not None:
            raise self.failing_writes
        self.sent.append(message)

    async def recv(self) -> bytes | None:
        item = await self._out.receive()
        if isinstance(item, CallError):
            raise item
        return item

    async def end(self) -> None:
        self.ended = True
        await self._in.send(None)  # the peer flushes, then ends the call with OK

    async def close(self) -> None:
        self.closed = True
        self._in.close()
        self._out.close()

    # the test's side
    def push(self, item: bytes | CallError | None) -> None:
        self._in.send_nowait(item)


class Fatal(Exception):
    pass


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[FakeCall] = []
        self.refuse = 0  # refuse this many connects (UNAVAILABLE)
        self.gate = anyio.Event()
        self.gate.set()

    async def connect(self) -> FakeCall:
        await self.gate.wait()
        if self.refuse:
            self.refuse -= 1
            raise CallError("UNAVAILABLE", "connection refused")
        self.calls.append(FakeCall())
        return self.calls[-1]

    def encode(self, request: str) -> bytes:
        return request.encode()

    def decode(self, message: bytes) -> str | None:
        return None if message == b"cursor" else message.decode()

    def fatal(self, error: CallError) -> Exception:
        return Fatal(error.status)


class Machine:
    def __init__(self) -> None:
        self.pending: list[str] = []

    def say(self, text: str) -> list[str]:
        self.pending.append(text)
        return [text]

    def connected(self) -> list[str]:
        return ["hello", *self.pending]

    def receive(self, message: str) -> tuple[list[str], list[str]]:
        if message.startswith("ack "):
            self.pending.remove(message[4:])
            return [], []
        if message == "ping":
            return [], ["pong"]
        return [message], []


class Client(ReconnectingCall[str, str, str]):
    def __init__(self, transport: FakeTransport, **options: Any) -> None:
        self.machine = Machine()
        super().__init__(
            transport, self.machine, backoff=POLICY, random_source=lambda: 0.5, **options
        )

    async def say(self, text: str) -> None:
        await self._submit(lambda: self.machine.say(text))


async def connected(client: Client, calls: int) -> FakeCall:
    """Until the ``calls``-th call is connected (woken by state changes, not polling)."""
    transport = client._transport
    assert isinstance(transport, FakeTransport)
    with anyio.fail_after(5):
        await client._wait_until(
            lambda: len(transport.calls) == calls and client.state is ConnectionState.CONNECTED
        )
    return transport.calls[-1]


def test_the_classification_table_is_on_status_names() -> None:
    expected = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "DEADLINE_EXCEEDED"}
    assert expected == TRANSIENT_STATUSES
    for name in ("INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED", "CANCELLED"):
        assert not is_transient(name) and not CallError(name).transient
    assert CallError("UNAVAILABLE", "gone").transient and str(CallError("ABORTED")) == "ABORTED"


async def test_hello_first_then_messages_both_ways_then_a_clean_half_close() -> None:
    transport, states = FakeTransport(), []
    async with Client(transport, on_state=states.append) as client:
        call = await connected(client, 1)
        assert call.sent == [b"hello"]
        await client.say("a")
        assert call.sent == [b"hello", b"a"]
        for item in (b"cursor", b"x", b"ping", b"ack a", b"y"):
            call.push(item)
        shown = []
        with anyio.fail_after(5):
            async for message in client:
                shown.append(message)
                if message == "y":
                    break
        assert shown == ["x", "y"]  # the cursor decoded to nothing, the ack to no event
        await eventually(lambda: call.sent[-1] == b"pong")  # a reply the machine asked for
        assert client.machine.pending == []
    assert call.ended and call.closed and client.state is ConnectionState.CLOSED
    assert states == [ConnectionState.CONNECTED, ConnectionState.CLOSED]
    assert client.reconnect_delays == [] and client.error is None


async def test_a_transient_failure_backs_off_reconnects_and_the_hello_carries_the_rest() -> None:
    transport = FakeTransport()
    async with Client(transport) as client:
        call = await connected(client, 1)
        await client.say("a")
        transport.refuse = 2  # then the server is down for two attempts
        call.push(CallError("UNAVAILABLE", "connection reset"))
        second = await connected(client, 2)
        assert second.sent == [b"hello", b"a"]  # re-sent: never acknowledged
        assert call.closed
        assert client.reconnect_delays == pytest.approx([0.01, 0.02, 0.04])  # no message came
        second.push(b"x")  # a message: the connection works, the schedule starts over
        second.push(CallError("RESOURCE_EXHAUSTED", "slow consumer"))
        await connected(client, 3)
        assert client.reconnect_delays[3:] == pytest.approx([0.01])


async def test_what_is_made_while_disconnected_goes_with_the_next_hello_only() -> None:
    transport = FakeTransport()
    async with Client(transport) as client:
        call = await connected(client, 1)
        transport.gate = anyio.Event()  # the next connect waits
        call.push(None)  # the server ended the call, unasked: transient
        with anyio.fail_after(5):
            await client.wait_for(ConnectionState.RECONNECTING)
        await client.say("b")  # nowhere to write it
        transport.gate.set()
        second = await connected(client, 2)
        assert call.sent == [b"hello"] and second.sent == [b"hello", b"b"]


async def test_a_failed_write_fails_the_connection_not_the_caller() -> None:
    transport = FakeTransport()
    async with Client(transport) as client:
        call = await connected(client, 1)
        call.failing_writes = CallError("UNAVAILABLE", "broken pipe")
        await client.say("c")  # returns: the machine keeps it for the next hello
        second = await connected(client, 2)
        assert second.sent == [b"hello", b"c"]


async def test_a_fatal_status_closes_the_call_and_is_raised_from_iteration_and_calls() -> None:
    transport = FakeTransport()
    async with Client(transport) as client:
        call = await connected(client, 1)
        call.push(CallError("PERMISSION_DENIED", "not your room"))
        with pytest.raises(Fatal, match="PERMISSION_DENIED"), anyio.fail_after(5):
            async for _ in client:
                pass
        assert client.state is ConnectionState.CLOSED and client.reconnect_delays == []
        assert client.failure is not None and client.failure.message == "not your room"
        with pytest.raises(Fatal):
            await client.say("after the end")
        with pytest.raises(Fatal):
            await client._wait_until(lambda: False)
        assert len(transport.calls) == 1 and call.closed
