"""Server and client documents: a model-based convergence machine (ot.js test-client-server)
and the server's rules."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interplay.core.errors import Expired, InvalidArgument
from interplay.core.ot import ClientDocument, Send, ServerDocument, State, TextOp
from interplay.testing.strategies import ops_for, texts


class EditingClients(RuleBasedStateMachine):
    """The local rules both machines share: a client edits, undoes or redoes."""

    clients: list[ClientDocument]

    def _send(self, who: int, send: Send | None) -> None:
        raise NotImplementedError

    def _checked(self, send: Send | None) -> Send | None:
        """What goes on the wire is one splice (position-based edits carry no more)."""
        assert send is None or len(list(send.op.splices())) == 1, send
        return send

    @rule(data=st.data())
    def edit(self, data: st.DataObject) -> None:
        who = data.draw(st.integers(0, len(self.clients) - 1))
        client = self.clients[who]
        self._send(who, self._checked(client.edit(data.draw(ops_for(client.text)))))

    @rule(data=st.data(), redo=st.booleans())
    def undo_or_redo(self, data: st.DataObject, redo: bool) -> None:
        who = data.draw(st.integers(0, len(self.clients) - 1))
        client = self.clients[who]
        self._send(who, self._checked(client.redo() if redo else client.undo()))


class ClientServerMachine(EditingClients):
    """One server document, 2-4 clients, FIFO channels both ways; after draining, everyone
    holds the server's text and every operation was applied exactly once."""

    @initialize(start=texts, n=st.integers(2, 4))
    def create(self, start: str, n: int) -> None:
        self.server = ServerDocument(start, keep=10_000)
        self.clients = [ClientDocument(start) for _ in range(n)]
        self.to_server: deque[tuple[int, Send, str]] = deque()
        self.to_client: list[deque[tuple[str, TextOp | None]]] = [deque() for _ in range(n)]
        self.sent_ids: list[str] = []
        self.inflight: dict[int, str] = {}  # client -> op id of its unacknowledged op
        self.counter = 0

    def _send(self, who: int, send: Send | None) -> None:
        if send is not None:
            self.counter += 1
            op_id = f"{who}-{self.counter}"
            self.sent_ids.append(op_id)
            self.inflight[who] = op_id
            self.to_server.append((who, send, op_id))

    def _ack(self, who: int) -> None:
        del self.inflight[who]
        self._send(who, self._checked(self.clients[who].ack()))

    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        """A client's connection drops: what was in flight either way is lost. It comes back
        at its revision, catches up (its own applied op comes back as an ack), and re-sends
        its unacknowledged op under the same id; the server must not apply anything twice."""
        who = data.draw(st.integers(0, len(self.clients) - 1))
        client = self.clients[who]
        lost = [m for m in self.to_server if m[0] == who]
        self.to_server = deque(m for m in self.to_server if m[0] != who)
        self.to_client[who].clear()
        pending = self.inflight.get(who)
        for applied in self.server.history_since(client.revision):
            if applied.author == str(who) and applied.op_id == pending:
                self._ack(who)  # may send the buffered op, under a new id
            else:
                client.receive(applied.op)
        if pending is not None and self.inflight.get(who) == pending:
            send = client.resend()
            assert send is not None and lost  # not applied, so it was lost on the way
            self.to_server.append((who, send, self.inflight[who]))
            if data.draw(st.booleans()):  # a nervous client sends it twice
                self.to_server.append((who, send, self.inflight[who]))

    @precondition(lambda self: self.to_server)
    @rule()
    def deliver_to_server(self) -> None:
        who, send, op_id = self.to_server.popleft()
        applied = self.server.receive(send.op, base=send.base, author=str(who), op_id=op_id)
        if applied.duplicate:
            return  # acknowledged when it was first applied
        for other, channel in enumerate(self.to_client):
            channel.append(("ack", None) if other == who else ("op", applied.op))

    @precondition(lambda self: any(self.to_client))
    @rule(data=st.data())
    def deliver_to_client(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from([i for i, c in enumerate(self.to_client) if c]))
        kind, op = self.to_client[who].popleft()
        if kind == "ack":
            self._ack(who)
        else:
            assert op is not None
            self.clients[who].receive(op)

    @invariant()
    def revisions_never_run_ahead(self) -> None:
        for client in self.clients:
            assert client.revision <= self.server.revision

    def teardown(self) -> None:
        if not hasattr(self, "server"):
            return
        while self.to_server or any(self.to_client):
            while self.to_server:
                self.deliver_to_server()
            for who, channel in enumerate(self.to_client):
                while channel:
                    kind, op = channel.popleft()
                    if kind == "ack":
                        self._ack(who)
                    else:
                        assert op is not None
                        self.clients[who].receive(op)
        for client in self.clients:
            assert client.state is State.SYNCHRONIZED
            assert client.text == self.server.text
            assert client.revision == self.server.revision
        assert self.server.revision == len(self.sent_ids)  # each op applied exactly once
        assert not self.inflight


TestClientServer = ClientServerMachine.TestCase


class PipelinedMachine(EditingClients):
    """Clients with up to 1-4 operations in flight, each sent against the newest revision the
    client has received; the server rebases through per-stream bridges. FIFO channels per
    client both ways, interleaved at random; after draining everyone holds the server's text."""

    @initialize(start=texts, limits=st.lists(st.integers(1, 4), min_size=2, max_size=4))
    def create(self, start: str, limits: list[int]) -> None:
        self.server = ServerDocument(start, keep=10_000)
        self.clients = [ClientDocument(start, max_in_flight=m) for m in limits]
        self.up: list[deque[Send]] = [deque() for _ in limits]
        self.down: list[deque[TextOp | None]] = [deque() for _ in limits]  # None: an ack
        self.sent = 0

    def _send(self, who: int, send: Send | None) -> None:
        if send is not None:
            self.sent += 1
            self.up[who].append(send)
            assert len(self.clients[who].in_flight) <= self.clients[who].max_in_flight

    @precondition(lambda self: any(self.up))
    @rule(data=st.data())
    def deliver_to_server(self, data: st.DataObject) -> None:
        self._to_server(data.draw(st.sampled_from([i for i, c in enumerate(self.up) if c])))

    def _to_server(self, who: int) -> None:
        send = self.up[who].popleft()
        applied = self.server.receive(send.op, base=send.base, author=str(who), session=str(who))
        for other, channel in enumerate(self.down):
            channel.append(None if other == who else applied.op)

    @precondition(lambda self: any(self.down))
    @rule(data=st.data())
    def deliver_to_client(self, data: st.DataObject) -> None:
        self._to_client(data.draw(st.sampled_from([i for i, c in enumerate(self.down) if c])))

    def _to_client(self, who: int) -> None:
        op = self.down[who].popleft()
        if op is None:
            self._send(who, self._checked(self.clients[who].ack()))
        else:
            self.clients[who].receive(op)

    def teardown(self) -> None:
        if not hasattr(self, "server"):
            return
        while any(self.up) or any(self.down):
            for who in range(len(self.clients)):
                while self.up[who]:
                    self._to_server(who)
                while self.down[who]:
                    self._to_client(who)
        for client in self.clients:
            assert client.state is State.SYNCHRONIZED
            assert (client.text, client.revision) == (self.server.text, self.server.revision)
        assert self.server.revision == self.sent  # each op applied exactly once


TestPipelined = PipelinedMachine.TestCase


def test_server_rejects_future_and_misfit_edits_and_leaves_the_document_alone() -> None:
    doc = ServerDocument("hello")
    with pytest.raises(InvalidArgument, match=r"^version: revision 1 is in the future"):
        doc.receive(TextOp.identity(5), base=1, author="a")
    with pytest.raises(InvalidArgument, match=r"^position: the edit spans 3 code points"):
        doc.receive(TextOp.identity(3), base=0, author="a")
    assert (doc.text, doc.revision) == ("hello", 0)


def test_server_transforms_a_stale_edit_and_dedupes_by_op_id() -> None:
    doc = ServerDocument("ac")
    first = doc.receive(TextOp.splice(2, 1, 0, "b"), base=0, author="x", op_id="1")
    late = doc.receive(TextOp.splice(2, 2, 0, "d"), base=0, author="y", op_id="1")
    assert (doc.text, late.revision) == ("abcd", 2)
    again = doc.receive(TextOp.splice(2, 1, 0, "b"), base=0, author="x", op_id="1")
    assert again.duplicate and again.revision == first.revision and doc.text == "abcd"


def test_compacted_revisions_expire() -> None:
    doc = ServerDocument("", keep=2)
    for n in range(3):
        doc.receive(TextOp.splice(n, n, 0, "x"), base=n, author="a")
    assert doc.oldest_base == 1
    with pytest.raises(Expired, match="join again"):
        doc.receive(TextOp.identity(0), base=0, author="a")


@given(start=texts, data=st.data())
def test_undo_takes_every_local_edit_back_and_redo_replays_it(start: str, data) -> None:  # type: ignore[no-untyped-def]
    client = ClientDocument(start)
    states = [start]
    for _ in range(data.draw(st.integers(1, 6))):
        client.edit(data.draw(ops_for(client.text)), group=False)
        states.append(client.text)
    for expected in reversed(states[:-1]):
        client.undo()
        assert client.text == expected
    assert not client.can_undo and client.undo() is None
    for expected in states[1:]:
        client.redo()
        assert client.text == expected
    assert not client.can_redo


def test_typing_is_one_undo_step_and_undo_keeps_remote_text() -> None:
    client = ClientDocument("")
    for position, char in enumerate("hello"):
        client.edit(TextOp.splice(position, position, 0, char))
    client.ack()  # the first keystroke was in flight; the rest were buffered
    client.ack()
    client.receive(TextOp.splice(5, 0, 0, ">> "))  # someone else types in front
    assert client.text == ">> hello"
    client.undo()
    assert client.text == ">> "  # all five keystrokes, not the remote text
    client.redo()
    assert client.text == ">> hello"
    client.edit(TextOp.splice(8, 8, 0, "!"))
    client.edit(TextOp.splice(9, 0, 3, ""), group=None)  # a delete elsewhere: a new step
    client.undo()
    assert client.text == ">> hello!"


def test_undo_history_is_bounded() -> None:
    client = ClientDocument("", undo_limit=3)
    for n in range(5):
        client.edit(TextOp.splice(n, n, 0, str(n)), group=False)
    for _ in range(5):
        client.undo()
    assert client.text == "01"  # the two oldest steps were forgotten
