"""ClientRooms: what a reconnecting chat client remembers. A state machine runs real
``RoomHub`` servers and clients over in-memory FIFO links that a disconnect cuts (losing
whatever was in flight both ways) and that may lose a message; after everything settles, each
client has shown every TEXT of its rooms exactly once, in seq order, and the store holds each
TEXT it sent exactly once."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from interplay.backends import MemoryBackend
from interplay.core import (
    Disconnect,
    Join,
    Kind,
    Leave,
    NotJoined,
    Post,
    RoomMessage,
    Typing,
)
from interplay.core.backoff import Backoff, BackoffPolicy
from interplay.core.chat_client import (
    ClientRooms,
    JoinRequest,
    LeaveRequest,
    Request,
    TextRequest,
    TypingRequest,
)
from interplay.core.effects import ReadHistory
from interplay.testing.hubs.stored import stored_rooms

USERS = ["ann", "bob", "cé😀"]
ROOMS = ["r0", "r1"]


def to_command(request: Request, session: str, user: str) -> Join | Post | Leave | Typing:
    if isinstance(request, JoinRequest):
        return Join(
            session=session,
            user=request.user,
            room=request.room,
            resume_after_seq=request.resume_after_seq,
            epoch=request.epoch,
        )
    if isinstance(request, TextRequest):
        return Post(session=session, room=request.room, content=request.content, id=request.id)
    if isinstance(request, LeaveRequest):
        return Leave(session=session, room=request.room)
    assert isinstance(request, TypingRequest)
    return Typing(session=session, room=request.room)


def test_a_gap_is_answered_by_a_resuming_join_and_duplicates_are_dropped() -> None:
    client = ClientRooms("ann", id_prefix="p")
    [join] = client.join("r")
    assert join == JoinRequest(room="r", user="ann", resume_after_seq=None, epoch="")
    echo = RoomMessage(kind=Kind.JOIN, room="r", sender="ann", seq=3, epoch="e1")
    assert client.receive(echo) == ([echo], [])
    texts = [RoomMessage(kind=Kind.TEXT, room="r", sender="bob", seq=n, epoch="e1") for n in (1, 2)]
    for text in texts:
        assert client.receive(text) == ([text], [])
    assert client.receive(texts[1]) == ([], [])  # duplicate
    later = RoomMessage(kind=Kind.TEXT, room="r", sender="bob", seq=5, epoch="e1")
    shown, replies = client.receive(later)
    assert shown == [] and replies == [
        JoinRequest(room="r", user="ann", resume_after_seq=2, epoch="e1")
    ]
    assert client.receive(later) == ([], [])  # dropped until the echo: history brings it
    assert client.receive(echo) == ([], [])  # a rejoin is invisible to the application
    stats = client.statistics()
    assert (stats.duplicates_dropped, stats.gaps_resynced) == (1, 1)


def test_a_first_text_past_the_joins_head_is_a_gap_too() -> None:
    """Found by the long Hypothesis run: the room was empty at the JOIN (head 0), seq 1 was
    lost on the way, and seq 2 was shown as the start; the resync that followed then dropped 1
    as a duplicate. The echo's head bounds the first TEXT."""
    client = ClientRooms("bob", id_prefix="p")
    client.join("r")
    echo = RoomMessage(kind=Kind.JOIN, room="r", sender="bob", seq=0, epoch="e1")
    assert client.receive(echo) == ([echo], [])
    second = RoomMessage(kind=Kind.TEXT, room="r", sender="ann", seq=2, epoch="e1")
    assert client.receive(second) == (
        [],
        [JoinRequest(room="r", user="bob", resume_after_seq=None, epoch="e1")],
    )
    assert client.receive(replace(echo, seq=2)) == ([], [])  # the rejoin's echo: invisible
    first = RoomMessage(kind=Kind.TEXT, room="r", sender="ann", seq=1, epoch="e1")
    assert client.receive(first) == ([first], [])
    assert client.receive(second) == ([second], [])
    assert client.statistics().gaps_resynced == 1


def test_unacknowledged_texts_are_resent_after_the_joins_under_their_ids() -> None:
    client = ClientRooms("ann", id_prefix="p")
    client.join("r")
    [first] = client.text("r", "one")
    [second] = client.text("r", "two")
    assert (first.id, second.id) == ("p-1", "p-2")
    client.receive(RoomMessage(kind=Kind.JOIN, room="r", sender="ann", seq=0, epoch="e"))
    client.receive(RoomMessage(kind=Kind.TEXT, room="r", sender="ann", id="p-1", seq=1))
    assert client.connected() == [
        JoinRequest(room="r", user="ann", resume_after_seq=1, epoch="e"),
        TextRequest(room="r", content="two", id="p-2"),
    ]
    with pytest.raises(NotJoined):
        client.text("elsewhere", "x")
    client.join("s")
    assert client.joined() == ["r", "s"]
    assert client.leave("r") == [LeaveRequest(room="r")]
    assert client.joined() == ["s"] and client.unacknowledged() == []  # p-2 went with "r"


def test_history_no_longer_retained_starts_the_room_over_after_the_notice() -> None:
    client = ClientRooms("ann")
    client.join("r")
    client.receive(RoomMessage(kind=Kind.JOIN, room="r", sender="ann", seq=2, epoch="e"))
    client.receive(RoomMessage(kind=Kind.TEXT, room="r", sender="bob", seq=2, epoch="e"))
    [rejoin] = client.connected()
    assert rejoin.resume_after_seq == 2
    client.receive(RoomMessage(kind=Kind.JOIN, room="r", sender="ann", seq=90, epoch="e"))
    notice = RoomMessage(kind=Kind.SYSTEM, room="r", content="history starts at seq 50")
    window = RoomMessage(kind=Kind.TEXT, room="r", sender="bob", seq=80, epoch="e")
    assert client.receive(notice) == ([notice], [])
    assert client.receive(window) == ([window], [])  # not a gap: the notice said so
    assert client.last_seq("r") == 80


def test_a_member_gone_while_we_were_away_is_reported_as_left() -> None:
    client = ClientRooms("ann")
    client.join("r")
    client.receive(RoomMessage(kind=Kind.JOIN, room="r", sender="ann", seq=0, epoch="e"))
    for user in ("bob", "cat"):
        client.receive(RoomMessage(kind=Kind.JOIN, room="r", sender=user))
    client.connected()
    client.receive(RoomMessage(kind=Kind.JOIN, room="r", sender="ann", seq=0, epoch="e"))
    assert client.receive(RoomMessage(kind=Kind.JOIN, room="r", sender="cat")) == ([], [])
    text = RoomMessage(kind=Kind.TEXT, room="r", sender="cat", seq=1, epoch="e")
    shown, _ = client.receive(text)
    assert shown == [RoomMessage(kind=Kind.LEAVE, room="r", sender="bob"), text]
    assert client.members("r") == {"ann", "cat"}


@dataclass
class Link:
    """One connection: FIFO both ways; ``session`` is the server's name for it."""

    session: str
    up: deque[Request] = field(default_factory=deque)
    down: deque[RoomMessage] = field(default_factory=deque)


class ReconnectingClients(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryBackend()
        self.hub = stored_rooms(self.store, history=100, retain=1000)
        self.clients = {user: ClientRooms(user, id_prefix=user) for user in USERS}
        self.links = {user: Link(f"{user}-0") for user in USERS}
        self.connections = dict.fromkeys(USERS, 0)
        self.shown: dict[tuple[str, str], list[RoomMessage]] = {}  # since the (re)join
        self.sent: dict[str, str] = {}  # id -> content, every TEXT any client sent
        self.texts = 0
        self.abandoned: set[str] = set()  # unacknowledged when their room was left
        self.restarts = 0

    def _send(self, user: str, requests: list[Request]) -> None:
        self.links[user].up.extend(requests)

    @rule(user=st.sampled_from(USERS), room=st.sampled_from(ROOMS))
    def join(self, user: str, room: str) -> None:
        if self.clients[user].last_seq(room) is None and (user, room) not in self.shown:
            self.shown[(user, room)] = []
        self._send(user, self.clients[user].join(room))

    @rule(user=st.sampled_from(USERS), room=st.sampled_from(ROOMS))
    def leave(self, user: str, room: str) -> None:
        if (user, room) in self.shown:
            client = self.clients[user]
            self.abandoned |= {t.id for t in client.unacknowledged() if t.room == room}
            self._send(user, client.leave(room))
            del self.shown[(user, room)]

    @precondition(lambda self: self.texts < 60)  # within the server's idempotency window
    @rule(user=st.sampled_from(USERS), room=st.sampled_from(ROOMS), typing=st.booleans())
    def say(self, user: str, room: str, typing: bool) -> None:
        if room not in self._rooms_of(user):
            return
        client = self.clients[user]
        requests = client.typing(room) if typing else client.text(room, f"{user} {self.texts}")
        for request in requests:
            if isinstance(request, TextRequest):
                self.sent[request.id] = request.content
                self.texts += 1
        self._send(user, requests)

    @rule(user=st.sampled_from(USERS))
    def to_server(self, user: str) -> None:
        link = self.links[user]
        if link.up:
            self._handle(link.session, user, link.up.popleft())

    @rule(user=st.sampled_from(USERS))
    def to_client(self, user: str) -> None:
        link = self.links[user]
        if link.down:
            self._receive(user, link.down.popleft())

    @rule(user=st.sampled_from(USERS))
    def reconnect(self, user: str) -> None:
        """The connection breaks: in-flight messages are lost both ways; a new one starts."""
        self.hub.handle(Disconnect(session=self.links[user].session), now=0)
        self.connections[user] += 1
        self.links[user] = Link(f"{user}-{self.connections[user]}")
        self._send(user, self.clients[user].connected())

    @precondition(lambda self: self.restarts < 2)
    @rule()
    def restart_without_history(self) -> None:
        """The server comes back with an empty store (a new epoch for every room): clients are
        told the history was reset and start over; their unacknowledged TEXTs still land."""
        self.restarts += 1
        self.store = MemoryBackend()
        self.hub = stored_rooms(self.store, history=100, retain=1000)
        for user in USERS:
            self.connections[user] += 1
            self.links[user] = Link(f"{user}-{self.connections[user]}")
            self._send(user, self.clients[user].connected())

    @rule(user=st.sampled_from(USERS))
    def lose_one(self, user: str) -> None:
        """A TEXT vanishes on its way to the client, one that a later TEXT of its room
        follows: the gap the contiguity check exists to notice. Only once the client holds a
        seq in that room: the first TEXT after a fresh JOIN may be any seq of the history window
        (the echo carries the head, not where the server's window starts), so a lost one there
        is invisible on this wire; the client still catches a first TEXT past the echo's head
        (test_a_first_text_past_the_joins_head_is_a_gap_too)."""
        down = self.links[user].down
        if (
            down
            and down[0].kind is Kind.TEXT
            and self.clients[user].last_seq(down[0].room) is not None
        ):
            room = down[0].room
            if any(m.kind is Kind.TEXT and m.room == room for m in list(down)[1:]):
                down.popleft()

    def _rooms_of(self, user: str) -> set[str]:
        return {room for (who, room) in self.shown if who == user}

    def _handle(self, session: str, user: str, request: Request) -> None:
        try:
            deliveries = self.hub.handle(to_command(request, session, user), now=0)
        except NotJoined:
            return  # e.g. TYPING for a room whose JOIN was lost: the stream would end
        for delivery in deliveries:
            for to in delivery.to:
                owner = to.split("-")[0]
                if self.links[owner].session == to:
                    self.links[owner].down.append(delivery.message)

    def _receive(self, user: str, message: RoomMessage) -> None:
        shown, replies = self.clients[user].receive(message)
        for event in shown:
            if event.kind is Kind.TEXT:
                self.shown[(user, event.room)].append(event)
            elif event.kind is Kind.SYSTEM:
                self.shown[(user, event.room)] = []  # "history was reset": start over
        self._send(user, replies)

    @invariant()
    def shown_texts_are_in_order_without_duplicates(self) -> None:
        for texts in self.shown.values():
            seqs = [t.seq for t in texts]
            assert seqs == sorted(set(seqs))

    def teardown(self) -> None:
        # Settle: no more faults; deliver everything until quiet.
        for _ in range(10_000):
            moved = False
            for user in USERS:
                link = self.links[user]
                while link.up:
                    self._handle(link.session, user, link.up.popleft())
                    moved = True
                while link.down:
                    self._receive(user, link.down.popleft())
                    moved = True
            if not moved:
                break
        stored = {
            room: self.store.read_now(ReadHistory(room=room, after_seq=0, limit=10_000))
            for room in ROOMS
        }
        for (user, room), texts in self.shown.items():
            # The first join shows the whole history (it is within the window), then every
            # later TEXT: all of the room's TEXTs, once each, in order.
            assert [t.seq for t in texts] == [m.seq for m in stored[room]], (user, room)
        for user, client in self.clients.items():
            assert client.unacknowledged() == [], user
        ids = [m.id for messages in stored.values() for m in messages]
        assert len(ids) == len(set(ids)), "a TEXT was stored twice"
        if not self.restarts:  # (a restart loses what was stored before it, by design)
            assert set(self.sent) - self.abandoned <= set(ids), "a TEXT sent was never stored"


ReconnectingClients.TestCase.settings = settings(stateful_step_count=60)
TestReconnectingClients = ReconnectingClients.TestCase


@given(
    policy=st.builds(
        BackoffPolicy,
        initial=st.floats(0.01, 10),
        multiplier=st.floats(1, 3),
        jitter=st.floats(0, 0.99),
        cap=st.floats(10, 300),
    ),
    draws=st.lists(st.floats(0, 1), min_size=1, max_size=40),
)
def test_backoff_stays_within_its_jittered_exponential_bounds(
    policy: BackoffPolicy, draws: list[float]
) -> None:
    backoff = Backoff(policy, iter(draws).__next__)
    for attempt in range(len(draws)):
        delay = backoff.next_delay()
        base = min(policy.cap, policy.initial * policy.multiplier**attempt)
        assert base * (1 - policy.jitter) - 1e-9 <= delay <= base * (1 + policy.jitter) + 1e-9
    backoff.reset()
    assert policy.bounds(0) == (
        policy.initial * (1 - policy.jitter),
        policy.initial * (1 + policy.jitter),
    )


def test_backoff_defaults_are_grpcs() -> None:
    policy = BackoffPolicy()
    assert (policy.initial, policy.multiplier, policy.jitter, policy.cap) == (1, 1.6, 0.2, 120)
    assert policy.bounds(1) == pytest.approx((1.28, 1.92))
    assert policy.bounds(50) == pytest.approx((96, 144))


# -- what the server's backend does to a room: published SYSTEM messages, deleted history ---


def _echo(room: str, user: str, head: int, epoch: str) -> RoomMessage:
    return RoomMessage(kind=Kind.JOIN, room=room, sender=user, seq=head, epoch=epoch)


def test_a_published_system_message_is_sequenced_like_a_text() -> None:
    client = ClientRooms(user="ann")
    client.join("lobby")
    client.receive(_echo("lobby", "ann", 0, "e1"))
    system = RoomMessage(kind=Kind.SYSTEM, room="lobby", sender="ops", seq=1, epoch="e1")
    text = RoomMessage(kind=Kind.TEXT, room="lobby", sender="bob", seq=2, epoch="e1")
    assert client.receive(system) == ([system], [])
    assert client.receive(text) == ([text], [])  # no gap: the SYSTEM message took seq 1
    assert client.receive(system) == ([], [])  # replayed history: a duplicate, dropped
    assert client.last_seq("lobby") == 2


def test_a_message_under_another_epoch_makes_the_client_resume() -> None:
    client = ClientRooms(user="ann")
    client.join("lobby")
    client.receive(_echo("lobby", "ann", 0, "e1"))
    first = RoomMessage(kind=Kind.TEXT, room="lobby", sender="bob", seq=1, epoch="e1")
    client.receive(first)
    notice = RoomMessage(kind=Kind.SYSTEM, room="lobby", content="history was deleted", epoch="e2")
    shown, requests = client.receive(notice)  # the room's history was deleted meanwhile
    assert shown == []
    assert requests == [JoinRequest(room="lobby", user="ann", resume_after_seq=1, epoch="e1")]
    client.receive(_echo("lobby", "ann", 1, "e2"))
    reset = RoomMessage(kind=Kind.SYSTEM, room="lobby", content="history was reset", epoch="e2")
    assert client.receive(reset) == ([reset], [])  # the application is told
    renumbered = RoomMessage(kind=Kind.TEXT, room="lobby", sender="bob", seq=1, epoch="e2")
    assert client.receive(renumbered) == ([renumbered], [])  # the room starts over
