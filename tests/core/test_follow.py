"""The node's side of a shared room stream, with no event loop: ``Follower`` and the hub's
``propose``/``observe``/``duplicate`` (core/follow.py, core/rooms.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.core.effects import LoadedRoom, RoomRecord
from interplay.core.errors import InvalidArgument, NotJoined
from interplay.core.follow import Follower, InRevisionOrder
from interplay.core.rooms import Join, Kind, Post, Proposal, RoomHub, RoomMessage


def text(seq: int, epoch: str = "e1", room: str = "lobby") -> RoomMessage:
    return RoomMessage(
        kind=Kind.TEXT,
        room=room,
        sender="ann",
        id=f"m{seq}",
        content=f"c{seq}",
        seq=seq,
        epoch=epoch,
        timestamp=seq,
    )


def loaded_hub(epoch: str = "e1", head: int = 0) -> RoomHub:
    hub = RoomHub()
    join = Join(session="s1", user="ann", room="lobby")
    read = hub.needs(join)
    assert read is not None
    hub.provide(read, LoadedRoom(record=RoomRecord(epoch=epoch, head=head), recent=[]))
    hub.handle(join, now=1.0)
    return hub


@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.permutations(list(range(1, n + 1))),
            st.lists(st.integers(1, n), max_size=10),
            st.sets(st.integers(1, n)),
        )
    )
)
def test_any_arrival_order_with_repeats_and_losses_is_delivered_once_in_order(
    case: tuple[int, list[int], list[int], set[int]],
) -> None:
    """Pub/sub delivers a permutation with repeats and loses some; each read of the stream
    (``behind``) returns everything after the head. The hub gets 1..n once, in order."""
    n, order, repeats, lost = case
    hub, follower, delivered = loaded_hub(), Follower(), []
    stream = [text(seq) for seq in range(1, n + 1)]

    def take(ready: list[RoomMessage]) -> None:
        for message in ready:
            delivered.extend(d.message.seq for d in hub.observe(message))

    behind = False
    for seq in [*order, *repeats]:
        if seq in lost:
            continue
        ordered = follower.offer(stream[seq - 1], hub.head("lobby") or ("", 0))
        take(ordered.ready)
        behind = behind or ordered.behind
    # The node reads the stream after its head (a gap, or the periodic head check).
    head = hub.head("lobby")
    assert head is not None
    for message in stream[head[1] :]:
        take(follower.offer(message, hub.head("lobby") or ("", 0)).ready)
    assert delivered == list(range(1, n + 1))
    assert len(follower) == 0


def test_a_message_beyond_the_next_waits_and_asks_for_a_read() -> None:
    follower = Follower()
    ordered = follower.offer(text(3), ("e1", 1))
    assert (ordered.ready, ordered.behind) == ([], True)
    ordered = follower.offer(text(2), ("e1", 1))
    assert [m.seq for m in ordered.ready] == [2, 3] and not ordered.behind


def test_another_epoch_drops_what_waits_and_asks_to_restart() -> None:
    follower = Follower()
    follower.offer(text(5), ("e1", 1))
    ordered = follower.offer(text(1, epoch="e2"), ("e1", 1))
    assert (ordered.new_epoch, ordered.behind, len(follower)) == (True, True, 0)


def test_held_messages_of_another_epoch_are_never_drained() -> None:
    follower = Follower()
    follower.hold(text(1, epoch="old"))
    follower.hold(text(1))
    assert [m.epoch for m in follower.drain(("e1", 0)).ready] == ["e1"]


def test_follower_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        Follower(limit=0)


def test_propose_checks_like_handle_and_changes_nothing() -> None:
    hub = loaded_hub(head=4)
    proposal = hub.propose(Post(session="s1", room="lobby", content="hi", id="x"), now=2.0)
    assert isinstance(proposal, Proposal)
    assert (proposal.sender, proposal.seen, proposal.epoch) == ("ann", 4, "e1")
    assert hub.head("lobby") == ("e1", 4)
    with pytest.raises(NotJoined):
        hub.propose(Post(session="s1", room="elsewhere", content="hi"), now=2.0)
    big = "x" * (64 * 1024 + 1)
    with pytest.raises(Exception, match="content"):
        hub.propose(Post(session="s1", room="lobby", content=big), now=2.0)


def test_observe_delivers_the_next_and_ignores_the_old() -> None:
    hub = loaded_hub()
    [event] = hub.observe(text(1))
    assert event.to == ("s1",) and event.message.seq == 1
    assert hub.observe(text(1)) == []
    with pytest.raises(ValueError, match="not the next"):
        hub.observe(text(3))
    # What was observed is in the window, which is also the idempotency window.
    again = hub.propose(Post(session="s1", room="lobby", content="c1", id="m1"), now=2.0)
    assert isinstance(again, list) and again[0].message.seq == 1


def test_a_new_epoch_is_announced_then_followed() -> None:
    hub = loaded_hub(head=7)
    notice, first = hub.observe(text(3, epoch="e2"))
    assert notice.message.kind is Kind.SYSTEM and "history was reset" in notice.message.content
    assert first.message.seq == 3
    assert hub.head("lobby") == ("e2", 3)


def test_duplicate_acks_the_original_or_refuses_another_content() -> None:
    hub = loaded_hub()
    proposal = hub.propose(Post(session="s1", room="lobby", content="c1", id="m1"), now=2.0)
    assert isinstance(proposal, Proposal)
    [ack] = hub.duplicate(proposal, text(1))
    assert ack.to == ("s1",) and ack.message.seq == 1
    other = hub.propose(Post(session="s1", room="lobby", content="else", id="m1"), now=2.0)
    assert isinstance(other, Proposal)
    with pytest.raises(InvalidArgument, match="already used"):
        hub.duplicate(other, text(1))


@given(st.permutations(list(range(1, 30))), st.integers(0, 10))
def test_revisions_in_any_order_come_out_once_each_in_order(arrivals: list[int], head: int) -> None:
    order: InRevisionOrder[str] = InRevisionOrder()
    out: list[int] = []
    start = head
    for revision in arrivals + arrivals[:5]:  # some twice
        ready, behind = order.offer(revision, f"r{revision}", head)
        for got, item in ready:
            assert got == head + 1 and item == f"r{got}"
            head = got
            out.append(got)
        assert behind == (len(order) > 0)
    assert out == list(range(start + 1, 30))
    assert len(order) == 0


def test_revisions_held_before_a_load_are_drained_after_it() -> None:
    order: InRevisionOrder[str] = InRevisionOrder(limit=2)
    for revision in (4, 5, 6):  # the third is over the limit: read from the log instead
        order.hold(revision, f"r{revision}")
    assert order.drain(3) == ([(4, "r4"), (5, "r5")], False)
    assert order.offer(8, "r8", 5) == ([], True)
