"""The rooms' id filter (core/id_filter.py): "not in" must be certain over the last
``capacity`` ids, and "maybe" rare for ids never added."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from interplay.core.id_filter import IdFilter

keys = st.tuples(st.text(max_size=8), st.text(max_size=12))


@given(st.lists(keys, max_size=300), st.integers(min_value=1, max_value=64))
def test_every_one_of_the_last_capacity_ids_is_in(
    added: list[tuple[str, str]], capacity: int
) -> None:
    ids = IdFilter(capacity)
    for sender, id in added:
        ids.add(sender, id)
    for key in added[-capacity:]:
        assert key in ids


def test_ids_never_added_are_maybe_about_one_in_a_hundred_at_capacity() -> None:
    ids = IdFilter(10_000)
    for n in range(10_000):
        ids.add("sender", f"id-{n}")
    false = sum(("sender", f"new-{n}") in ids for n in range(20_000))
    assert false < 20_000 * 0.03  # ~1 % by design (a word of 64 bits per ~5 ids, ~8 bits each)
    assert all(("sender", f"id-{n}") in ids for n in range(10_000))
