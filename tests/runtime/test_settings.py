"""The runtime's Settings refuse a bad value when built, naming the field and the rule."""

from __future__ import annotations

from typing import Any

import pytest

from interplay.runtime.settings import Settings


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"low_water": 600}, "low_water, high_water: need 0 <= low_water <= high_water"),
        ({"low_water": -1}, "low_water, high_water: need 0 <= low_water <= high_water"),
        ({"drain_timeout": 0.0}, "drain_timeout: must be positive"),
        ({"rate": -1.0}, "rate: must not be negative"),
        ({"burst": 0}, "burst: must be at least 1"),
        ({"max_pending_writes": 0}, "max_pending_writes: must be at least 1"),
    ],
)
def test_runtime_settings_name_the_field_and_the_rule(values: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=f"^{says}"):
        Settings(**values)


def test_no_burst_is_needed_without_a_rate() -> None:
    Settings(rate=0.0, burst=0)
