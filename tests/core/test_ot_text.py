"""TextOp's own rules: its normal form, splices, carets, refusals, the splice fast path.

The laws every operation type must keep (lengths, TP1, the tie-break, compose, invert) are the
kit's: ``interplay.testing.check_ot_laws(TextOp)`` in tests/testing/test_kit.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.core.ot import TextOp
from interplay.testing.strategies import ops_for, splices_for, texts


@pytest.mark.parametrize(
    ("doc", "a", "b", "expected"),
    [
        ("", ["x"], ["y"], "xy"),  # same position: a's insert goes left
        ("ab", [1, "😀", 1], [1, "𝄞", 1], "a😀𝄞b"),
        ("abc", [-3], [1, -1, 1], ""),  # overlapping deletes
        ("abc", [1, -2], [2, "X", 1], "aX"),  # insert inside a deleted range survives
    ],
)
def test_transform_examples(doc: str, a: list, b: list, expected: str) -> None:  # type: ignore[type-arg]
    op_a, op_b = TextOp.from_components(a), TextOp.from_components(b)
    a2, b2 = TextOp.transform(op_a, op_b)
    assert b2.apply(op_a.apply(doc)) == a2.apply(op_b.apply(doc)) == expected


@given(st.data())
def test_normal_form_is_canonical(data: st.DataObject) -> None:
    doc = data.draw(texts)
    op = data.draw(ops_for(doc))
    assert TextOp.from_components(op.ops) == op
    for left, right in zip(op.ops, op.ops[1:], strict=False):
        assert type(left) is not type(right) or (
            isinstance(left, int) and (left > 0) != (right > 0)
        )  # type: ignore[operator]
        assert not (isinstance(left, int) and left < 0 and isinstance(right, str))
    assert all(c != 0 and c != "" for c in op.ops)


@given(st.data())
def test_splices_replay_the_operation(data: st.DataObject) -> None:
    doc = data.draw(texts)
    op = data.draw(ops_for(doc))
    text = doc
    for position, deleted, inserted in op.splices():
        assert deleted or inserted
        text = TextOp.splice(len(text), position, deleted, inserted).apply(text)
    assert text == op.apply(doc)


def test_splice_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        TextOp.splice(3, -1, 0, "x")
    with pytest.raises(ValueError, match="does not fit"):
        TextOp.splice(3, 2, 2)
    assert TextOp.splice(3, 1, 1, "😀").apply("abc") == "a😀c"


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="expects a document of 2"):
        TextOp.from_components([2]).apply("abc")
    with pytest.raises(ValueError, match="cannot compose"):
        TextOp.from_components([2]).compose(TextOp.from_components([3]))
    with pytest.raises(ValueError, match="cannot transform"):
        TextOp.transform(TextOp.from_components([2]), TextOp.from_components([3]))


@given(st.data())
def test_transform_index_moves_a_caret_like_a_zero_width_insert(data: st.DataObject) -> None:
    doc = data.draw(texts)
    op = data.draw(ops_for(doc))
    index = data.draw(st.integers(0, len(doc)))
    caret = TextOp.splice(len(doc), index, 0, "|")
    _, rebased = TextOp.transform(op, caret)  # op goes left: text typed at the caret precedes it
    [(position, _, _)] = list(rebased.splices())
    assert op.transform_index(index) == position


@given(st.data())
def test_the_splice_fast_path_agrees_with_the_general_transform(data: st.DataObject) -> None:
    doc = data.draw(texts)
    ops = st.one_of(splices_for(doc).map(lambda edit: edit.op(len(doc))), ops_for(doc))
    a, b = data.draw(ops), data.draw(ops)
    assert TextOp.transform(a, b) == TextOp._transform(a, b)
