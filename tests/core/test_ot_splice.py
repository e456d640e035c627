"""``ServerDocument.splice``, the single-splice fast path, against ``receive``, the general
path it stands for: a machine drives twin documents with the same position-based edits (from
several sessions, against the current revision or a stale one, pipelined or not, re-sent under
their op ids, in a log short enough to trim) and after every step both hold the same text,
revision, log and op ids; each applied edit's lazily built ``op`` and its ``pieces()`` agree
with the general path's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from interplay.core.errors import Expired, InvalidArgument
from interplay.core.ot import Applied, ServerDocument, TextOp
from interplay.testing.strategies import texts

SESSIONS = ["s1", "s2", "s3"]


def general_pieces(applied: Applied) -> list[tuple[int, str, str]]:
    return [
        (position, removed, inserted)
        for (position, _, inserted), removed in zip(
            applied.op.splices(), applied.removed, strict=True
        )
    ]


class SpliceTwins(RuleBasedStateMachine):
    @initialize(start=texts, keep=st.integers(1, 6))
    def create(self, start: str, keep: int) -> None:
        self.fast = ServerDocument(start, keep=keep)
        self.general = ServerDocument(start, keep=keep)
        self.counter = 0
        self.sent: list[tuple[str, str, int, int, int, str]] = []  # for re-sends

    def _both(self, session: str, op_id: str, base: int, position: int, deleted: int, ins: str):  # type: ignore[no-untyped-def]
        outcomes = []
        for doc, fast in ((self.fast, True), (self.general, False)):
            try:
                if fast:
                    applied = doc.splice(
                        position, deleted, ins, base=base, author=session, op_id=op_id,
                        session=session,
                    )  # fmt: skip
                elif (duplicate := doc.duplicate_of(session, op_id)) is not None:
                    applied = duplicate  # a re-send is recognised whatever its base
                else:
                    length = doc.context_length(base, session)
                    if position + deleted > length:
                        raise InvalidArgument("position", "beyond")
                    op = TextOp.splice(length, position, deleted, ins)
                    applied = doc.receive(
                        op, base=base, author=session, op_id=op_id, session=session
                    )
            except (InvalidArgument, Expired) as error:
                outcomes.append(type(error))
            else:
                outcomes.append(applied)
        fast_result, general_result = outcomes
        if isinstance(fast_result, Applied):
            assert isinstance(general_result, Applied)
            assert fast_result.revision == general_result.revision
            assert fast_result.duplicate == general_result.duplicate
            assert fast_result.op == general_result.op
            assert fast_result.removed == general_result.removed
            assert fast_result.pieces() == general_pieces(general_result)
        else:
            assert fast_result == general_result  # refused alike, and left alone
        return fast_result

    @rule(data=st.data(), session=st.sampled_from(SESSIONS), stale=st.integers(0, 3))
    def edit(self, data: st.DataObject, session: str, stale: int) -> None:
        base = max(0, self.fast.revision - stale)  # a stale one may be no longer kept
        try:
            length = self.fast.context_length(base, session)
        except Expired:
            length = self.fast.length
        position = data.draw(st.integers(0, length + 1))  # one past the end: refused
        deleted = data.draw(st.integers(0, max(0, length - position) + 1))
        inserted = data.draw(texts)
        self.counter += 1
        op_id = f"{session}-{self.counter}"
        result = self._both(session, op_id, base, position, deleted, inserted)
        if isinstance(result, Applied):
            self.sent.append((session, op_id, base, position, deleted, inserted))

    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        if self.sent:
            self._both(*data.draw(st.sampled_from(self.sent)))

    @rule(session=st.sampled_from(SESSIONS))
    def forget(self, session: str) -> None:
        self.fast.forget(session)
        self.general.forget(session)

    @invariant()
    def twins_agree(self) -> None:
        fast, general = self.fast, self.general
        assert fast.text == general.text
        assert (fast.revision, fast.oldest_base) == (general.revision, general.oldest_base)
        for mine, theirs in zip(
            fast.history_since(fast.oldest_base),
            general.history_since(general.oldest_base),
            strict=True,
        ):
            assert (mine.revision, mine.op_id, mine.removed) == (
                theirs.revision,
                theirs.op_id,
                theirs.removed,
            )
            assert mine.op == theirs.op and mine.pieces() == general_pieces(theirs)
        assert fast._ids == general._ids


TestSpliceTwins = SpliceTwins.TestCase


@given(start=texts, data=st.data())
def test_a_current_splice_builds_no_operation_until_asked(start: str, data: st.DataObject) -> None:
    doc = ServerDocument(start)
    position = data.draw(st.integers(0, len(start)))
    deleted = data.draw(st.integers(0, len(start) - position))
    inserted = data.draw(texts)
    applied = doc.splice(position, deleted, inserted, base=0, author="a")
    assert applied._op is None  # the fast path: nothing general was built
    assert doc.text == start[:position] + inserted + start[position + deleted :]
    assert applied.op == TextOp.splice(len(start), position, deleted, inserted)
    assert applied.op.apply(start) == doc.text


def test_a_splice_that_does_not_fit_is_refused_and_changes_nothing() -> None:
    doc = ServerDocument("abc")
    with pytest.raises(InvalidArgument, match=r"2 \+ length 2 is beyond the 3 code points"):
        doc.splice(2, 2, "", base=0, author="a")
    with pytest.raises(InvalidArgument, match="must not be negative"):
        doc.splice(-1, 0, "x", base=0, author="a")
    with pytest.raises(InvalidArgument, match="in the future"):
        doc.splice(0, 0, "x", base=1, author="a")
    assert (doc.text, doc.revision) == ("abc", 0)


def test_an_empty_splice_is_one_retain_in_the_fast_paths_too() -> None:
    """Found by the machine above: the builder-free splice left an empty edit as two retains,
    which applies alike but is not the normal form (equal edits must be equal values); the
    transform fast path built the same for an identity rebased past an insert."""
    doc = ServerDocument("abc")
    assert doc.splice(1, 0, "", base=0, author="a").op == TextOp.identity(3)
    identity, insert = TextOp.identity(3), TextOp.splice(3, 0, 0, "xy")
    assert TextOp.transform(identity, insert) == (TextOp.identity(5), insert)


def test_a_stale_splice_past_splices_elsewhere_builds_no_operation() -> None:
    """The common case of concurrent editors, each typing in its own place: an edit made
    against an older revision is rebased over the others' splices as a splice
    (``ServerDocument._splice_over``), and nothing general is built for either side."""
    doc = ServerDocument("abcdef")
    first = doc.splice(0, 0, "x", base=0, author="a", session="a")
    second = doc.splice(5, 1, "", base=0, author="b", session="b")  # the "f", now at 6
    third = doc.splice(3, 0, "y", base=0, author="c", session="c")  # before "d", now at 4
    assert doc.text == "xabcyde"
    assert [applied._op for applied in (first, second, third)] == [None, None, None]
    assert second.pieces() == [(6, "f", "")]
    assert third.pieces() == [(4, "", "y")]
    # One that touches another's takes the general path (an insert at the same place goes
    # left of the one applied before it).
    touching = doc.splice(4, 0, "z", base=2, author="a", session="a")  # where "y" went in
    assert touching._op is not None
    assert doc.text == "xabczyde"
