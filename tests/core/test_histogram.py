"""The fixed-bucket histogram behind the exporter's tick and store-write metrics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interplay.core.histogram import LATENCY_BUCKETS, Histogram

INF = math.inf


def test_bounds_are_inclusive_and_counts_cumulative() -> None:
    histogram = Histogram([1.0, 2.0, 5.0])
    for value in (0.5, 1.0, 1.5, 2.0, 7.0, 5.0):
        histogram.observe(value)
    snapshot = histogram.snapshot()
    assert snapshot.buckets == ((1.0, 2), (2.0, 4), (5.0, 5), (INF, 6))
    assert snapshot.count == histogram.count == 6
    assert snapshot.sum == histogram.sum == 17.0


def test_a_fresh_histogram_is_all_zeros_and_ends_with_inf() -> None:
    snapshot = Histogram().snapshot()
    assert [bound for bound, _ in snapshot.buckets] == [*LATENCY_BUCKETS, INF]
    assert {count for _, count in snapshot.buckets} == {0}
    assert (snapshot.count, snapshot.sum) == (0, 0.0)


def test_an_explicit_inf_bound_is_not_doubled() -> None:
    assert Histogram([1.0, INF]).bounds == (1.0,)


@pytest.mark.parametrize("bounds", [[], [1.0, 1.0], [2.0, 1.0]])
def test_bounds_must_be_strictly_ascending(bounds: list[float]) -> None:
    with pytest.raises(ValueError, match="strictly ascending"):
        Histogram(bounds)


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False)))
def test_each_bucket_counts_the_values_up_to_its_bound(values: list[float]) -> None:
    histogram = Histogram([0.1, 1.0, 5.0])
    for value in values:
        histogram.observe(value)
    for bound, count in histogram.snapshot().buckets:
        assert count == sum(1 for value in values if value <= bound)
    assert histogram.sum == pytest.approx(sum(values))
