"""GapText behaves exactly like splicing a plain string, wherever the edits land."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.core.ot.gaptext import GapText
from interplay.testing.strategies import CHARS, ops_for, texts


@given(start=texts, data=st.data())
def test_splices_match_a_plain_string(start: str, data: st.DataObject) -> None:
    margin = data.draw(st.sampled_from([1, 2, 64]))  # small windows: many re-centres
    gap, plain = GapText(start, margin=margin), start
    for _ in range(data.draw(st.integers(1, 30))):
        position = data.draw(st.integers(0, len(plain)))
        deleted = data.draw(st.integers(0, len(plain) - position))
        inserted = data.draw(st.lists(CHARS, max_size=5).map("".join))
        removed = gap.splice(position, deleted, inserted)
        assert removed == plain[position : position + deleted]
        plain = plain[:position] + inserted + plain[position + deleted :]
        assert len(gap) == len(plain)
        start_at = data.draw(st.integers(0, len(plain)))
        end_at = data.draw(st.integers(start_at, len(plain)))
        assert gap.slice(start_at, end_at) == plain[start_at:end_at]
    assert str(gap) == plain


@given(st.data())
def test_apply_matches_textop_apply(data: st.DataObject) -> None:
    doc = data.draw(texts)
    op = data.draw(ops_for(doc))
    gap = GapText(doc)
    removed = gap.apply(op)
    assert str(gap) == op.apply(doc)
    assert "".join(removed) == "".join(doc[i : i - c] for i, c in _deletes(op.ops))


def _deletes(ops: tuple) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    """(index in the original, negative length) of each delete component."""
    out, index = [], 0
    for c in ops:
        if isinstance(c, int):
            if c < 0:
                out.append((index, c))
            index += abs(c)
    return out


def test_splice_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit a text of 3"):
        GapText("abc").splice(2, 2, "")
