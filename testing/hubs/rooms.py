"""RoomHub against a plain model: membership, gapless seq, exactly-once in-order delivery,
history window and resume (including a changed epoch), idempotent ids, presence, restarts.

    from interplay.testing.hubs import RoomHubConformance

    class TestMyRoomHub(RoomHubConformance):
        def make_hub(self, **options):
            return MyRoomHub(**options)       # a RoomHub subclass, or a wrapper with its methods

``make_hub`` gets ``history``, ``retain`` and ``new_epoch`` (pass them on); the machine builds
a hub again over the same store to restart it, and runs its storage effects on a
``MemoryBackend`` as the runtime would (``stored.Stored``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from interplay.backends import MemoryBackend
from interplay.core import (
    Deliver,
    Disconnect,
    InvalidArgument,
    Join,
    Kind,
    Leave,
    NotJoined,
    PermissionDenied,
    Post,
    RoomHub,
    RoomMessage,
    Typing,
)
from interplay.core.effects import ReadHistory

from .run import run_hub_machine
from .stored import Stored

SESSIONS = ["s0", "s1", "s2"]
USERS = ["ann", "bob", "cé😀"]
ROOMS = ["r0", "r1"]
HISTORY = 2
RETAIN = 4


@dataclass
class ModelRoom:
    epoch: str
    texts: list[RoomMessage] = field(default_factory=list)  # seq == index + 1
    members: dict[str, str] = field(default_factory=dict)  # session -> user

    @property
    def head(self) -> int:
        return len(self.texts)

    @property
    def first_seq(self) -> int:
        return max(1, self.head - RETAIN + 1)

    def window(self) -> list[RoomMessage]:
        return self.texts[-HISTORY:]

    def retained(self) -> list[RoomMessage]:
        """What the store keeps: a re-sent id is recognised among these (not only the
        window)."""
        return self.texts[self.first_seq - 1 :]

    def users(self) -> set[str]:
        return set(self.members.values())


class RoomHubMachine(RuleBasedStateMachine):
    @initialize()
    def create(self) -> None:
        self.epoch_count = 0
        self.store = MemoryBackend()
        self.now = 1_000.0
        self.hub = self._new_hub()
        self.rooms: dict[str, ModelRoom] = {}
        self.bound: dict[str, str] = {}  # session -> user
        self.sent_ids: dict[str, str] = {}  # id -> content first sent with it
        # (session, room) -> seqs of live TEXT received since its JOIN, and the head at JOIN
        self.live: dict[tuple[str, str], list[int]] = {}
        self.join_head: dict[tuple[str, str], int] = {}

    def make_hub(self, **options: Any) -> RoomHub:
        """The hub under test (``RoomHubConformance.make_hub`` replaces it)."""
        return RoomHub(**options)

    def _new_hub(self) -> Stored[RoomHub]:
        hub = self.make_hub(history=HISTORY, retain=RETAIN, new_epoch=self._draw_epoch)
        return Stored(hub, self.store)

    def _draw_epoch(self) -> str:
        self.epoch_count += 1
        return f"epoch-{self.epoch_count - 1}"

    def _room(self, name: str) -> ModelRoom:
        if name not in self.rooms:
            # A room the model has never seen gets the epoch the hub will draw next.
            self.rooms[name] = ModelRoom(epoch="")
        return self.rooms[name]

    def _handle(self, command: object) -> list[Deliver[RoomMessage]]:
        self.now += 0.25
        return self.hub.handle(command, now=self.now)

    # -- rules -----------------------------------------------------------------------------

    @rule(
        session=st.sampled_from(SESSIONS),
        user=st.sampled_from(USERS),
        room=st.sampled_from(ROOMS),
        resume=st.none() | st.integers(-6, 1),  # relative to the room's head
        epoch_choice=st.sampled_from(["", "current", "stale"]),
    )
    def join(
        self, session: str, user: str, room: str, resume: int | None, epoch_choice: str
    ) -> None:
        model = self._room(room)
        if resume is not None:
            resume = max(0, model.head + resume)
        if session in self.bound and self.bound[session] != user:
            with pytest.raises(PermissionDenied):
                self._handle(Join(session=session, user=user, room=room))
            return
        if not model.epoch:  # the hub creates the room now, under the next epoch
            model.epoch = f"epoch-{self.epoch_count}"
        epoch = {"": "", "current": model.epoch, "stale": "gone-epoch"}[epoch_choice]
        command = Join(session=session, user=user, room=room, resume_after_seq=resume, epoch=epoch)
        same_epoch = epoch in ("", model.epoch)
        if resume is not None and same_epoch and resume > model.head:
            with pytest.raises(InvalidArgument, match="resume_after_seq"):
                self._handle(command)
            return
        events = self._handle(command)
        already = session in model.members
        present_before = model.users()
        newly_present = not already and user not in present_before

        mine = [e.message for e in events if e.to == (session,)]
        others = [e for e in events if e.to != (session,)]
        echo, rest = mine[0], mine[1:]
        assert (echo.kind, echo.sender, echo.seq, echo.epoch) == (
            Kind.JOIN,
            user,
            model.head,
            model.epoch,
        )
        presence = [m for m in rest if m.kind is Kind.JOIN]
        assert [m.sender for m in presence] == sorted(present_before - {user})
        history = rest[len(presence) :]
        assert history == self._expected_history(model, resume, same_epoch)
        if newly_present and model.members:
            assert len(others) == 1
            assert set(others[0].to) == set(model.members)
            assert (others[0].message.kind, others[0].message.sender) == (Kind.JOIN, user)
        else:
            assert others == []

        self.bound[session] = user
        model.members[session] = user
        self.live[(session, room)] = []
        self.join_head[(session, room)] = model.head

    def _expected_history(
        self, model: ModelRoom, resume: int | None, same_epoch: bool
    ) -> list[RoomMessage]:
        if resume is None:
            return model.window()
        if not same_epoch:
            return [self._system_like(model), *model.window()]
        if resume >= model.first_seq - 1:
            return model.texts[resume:]
        return [self._system_like(model), *model.window()]

    @staticmethod
    def _system_like(model: ModelRoom) -> RoomMessage:
        return _AnySystem(model.epoch)  # type: ignore[return-value]

    @rule(
        session=st.sampled_from(SESSIONS),
        room=st.sampled_from(ROOMS),
        content=st.sampled_from(["hi", "hé", "😀", ""]),
        msg_id=st.sampled_from(["", "x1", "x2"]),
        claim=st.sampled_from(["", "self", "other"]),
    )
    def post(self, session: str, room: str, content: str, msg_id: str, claim: str) -> None:
        user = self.bound.get(session, "")
        claimed = {"": "", "self": user, "other": "mallory"}[claim]
        command = Post(session=session, room=room, content=content, id=msg_id, user=claimed)
        model = self.rooms.get(room)
        if model is None or session not in model.members:
            with pytest.raises(NotJoined, match="room"):
                self._handle(command)
            return
        if claim == "other":
            with pytest.raises(PermissionDenied):
                self._handle(command)
            return
        original = next(
            (m for m in model.retained() if msg_id and (m.sender, m.id) == (user, msg_id)), None
        )
        if original is not None and original.content != content:
            with pytest.raises(InvalidArgument, match="id"):
                self._handle(command)
            return
        events = self._handle(command)
        if original is not None:
            assert events == [Deliver(to=(session,), message=original)]
            return
        assert len(events) == 1, f"a TEXT is one delivery to the room, got {events}"
        [event] = events
        message = event.message
        assert message.seq == model.head + 1, (
            f"room {room!r}: a TEXT after seq {model.head} got seq {message.seq} (seqs are "
            "gapless and never reused)"
        )
        assert (message.kind, message.sender, message.content) == (Kind.TEXT, user, content)
        assert message.epoch == model.epoch
        assert message.id == (msg_id or message.id) and message.id
        assert set(event.to) == set(model.members), (
            f"room {room!r}: a TEXT went to {sorted(event.to)}, but the room's members are "
            f"{sorted(model.members)} (every member receives it, the sender included: its "
            "copy is its acknowledgement)"
        )
        assert len(event.to) == len(set(event.to)), f"a recipient twice in {event.to}"
        model.texts.append(message)
        for member in event.to:
            self.live[(member, room)].append(message.seq)

    def _memberships(self) -> list[tuple[str, str]]:
        return sorted((s, r) for r, m in self.rooms.items() for s in m.members)

    @precondition(lambda self: self._memberships())
    @rule(
        data=st.data(),
        content=st.sampled_from(["hi", "hé", "😀", ""]),
        claim=st.sampled_from(["", "", "self", "other"]),
    )
    def member_posts(self, data: st.DataObject, content: str, claim: str) -> None:
        """Most posts come from members (a random session rarely is one), with fresh ids,
        no id, or a retry of an id sent before (same or other content)."""
        session, room = data.draw(st.sampled_from(self._memberships()))
        for _ in range(data.draw(st.integers(1, 8))):
            how = data.draw(st.sampled_from(["fresh", "fresh", "none", "retry"]))
            if how == "retry" and self.sent_ids:
                msg_id, previous = data.draw(st.sampled_from(sorted(self.sent_ids.items())))
                content = data.draw(st.sampled_from([previous, "other"]))
            else:
                msg_id = "" if how == "none" else f"m{len(self.sent_ids)}"
            self.post(session, room, content, msg_id, claim)
            if msg_id:
                self.sent_ids.setdefault(msg_id, content)

    @precondition(lambda self: self._memberships())
    @rule(data=st.data())
    def member_leaves(self, data: st.DataObject) -> None:
        self.leave(*data.draw(st.sampled_from(self._memberships())))

    @rule(session=st.sampled_from(SESSIONS), room=st.sampled_from(ROOMS))
    def typing(self, session: str, room: str) -> None:
        model = self.rooms.get(room)
        if model is None or session not in model.members:
            with pytest.raises(NotJoined):
                self._handle(Typing(session=session, room=room))
            return
        events = self._handle(Typing(session=session, room=room))
        expected = set(model.members) - {session}
        if not expected:
            assert events == []
            return
        [event] = events
        assert set(event.to) == expected
        assert (event.message.kind, event.message.seq) == (Kind.TYPING, 0)

    @rule(session=st.sampled_from(SESSIONS), room=st.sampled_from(ROOMS))
    def leave(self, session: str, room: str) -> None:
        model = self.rooms.get(room)
        if model is None or session not in model.members:
            with pytest.raises(NotJoined):
                self._handle(Leave(session=session, room=room))
            return
        events = self._handle(Leave(session=session, room=room))
        user = model.members.pop(session)
        self._forget(session, room)
        [event] = events
        assert (event.message.kind, event.message.sender) == (Kind.LEAVE, user)
        if user in model.users():
            assert event.to == (session,)  # still present through another stream
        else:
            assert set(event.to) == {session, *model.members}

    @rule(session=st.sampled_from(SESSIONS), go=st.integers(0, 2))
    def disconnect(self, session: str, go: int) -> None:
        if go:
            return
        events = self._handle(Disconnect(session=session))
        user = self.bound.pop(session, None)
        announced = {}
        for event in events:
            assert event.message.kind is Kind.LEAVE and event.message.sender == user
            announced[event.message.room] = set(event.to)
        expected = {}
        for name, model in self.rooms.items():
            if session in model.members:
                del model.members[session]
                self._forget(session, name)
                if user not in model.users() and model.members:
                    expected[name] = set(model.members)
        assert announced == expected

    @rule(go=st.integers(0, 7))
    def restart(self, go: int = 0) -> None:
        """The process restarts over the same store: every stream is gone, history stays."""
        if go:
            return  # restarts are rare: most runs need time to build up state
        self.hub = self._new_hub()
        self.bound.clear()
        for model in self.rooms.values():
            model.members.clear()
        self.live.clear()
        self.join_head.clear()

    @precondition(lambda self: self.rooms)
    @rule(go=st.integers(0, 7))
    def lose_store(self, go: int) -> None:
        """The store loses everything: rooms come back under new epochs, from seq 1."""
        if go:
            return
        self.store = MemoryBackend()
        self.restart()
        self.rooms.clear()

    def _forget(self, session: str, room: str) -> None:
        self.live.pop((session, room), None)
        self.join_head.pop((session, room), None)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def every_member_got_every_text_once_in_order(self) -> None:
        for (session, room), seqs in self.live.items():
            start = self.join_head[(session, room)]
            assert seqs == list(range(start + 1, self.rooms[room].head + 1))

    @invariant()
    def presence_matches(self) -> None:
        for name, model in self.rooms.items():
            assert self.hub.members(name) == sorted(model.users())
        for session in SESSIONS:
            expected = {n for n, m in self.rooms.items() if session in m.members}
            assert self.hub.rooms_of(session) == expected

    @invariant()
    def store_holds_every_retained_text(self) -> None:
        for name, model in self.rooms.items():
            if model.epoch:
                first = model.first_seq
                stored = self.store.read_now(
                    ReadHistory(room=name, after_seq=first - 1, limit=RETAIN)
                )
                assert stored == model.texts[first - 1 :]


class _AnySystem:
    """Equal to any SYSTEM message of the given epoch (its wording is free)."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RoomMessage)
            and other.kind is Kind.SYSTEM
            and other.epoch == self.epoch
            and other.seq == 0
            and bool(other.content)
        )

    def __repr__(self) -> str:
        return f"<any SYSTEM notice, epoch {self.epoch}>"


class RoomHubConformance:
    """Subclass it as ``Test<YourHub>`` and override ``make_hub``."""

    def make_hub(self, *, history: int, retain: int, new_epoch: Callable[[], str]) -> RoomHub:
        """A hub with these options (a fresh one each call)."""
        return RoomHub(history=history, retain=retain, new_epoch=new_epoch)

    def test_room_hub_keeps_every_promise(self) -> None:
        run_hub_machine(RoomHubMachine, self.make_hub, f"{type(self).__name__} (RoomHub)")
