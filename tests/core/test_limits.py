"""The core's settings dataclasses refuse a bad value when built, naming the field and the rule."""

from __future__ import annotations

import math
from typing import Any

import pytest

from interplay.core.documents import DocumentLimits
from interplay.core.limits import MAX_ID_LENGTH
from interplay.core.matches import GameLimits, GameSettings
from interplay.core.rooms import ChatLimits


@pytest.mark.parametrize(
    ("settings", "values", "says"),
    [
        (DocumentLimits, {"max_inserted_chars": 0}, "max_inserted_chars: must be at least 1"),
        (DocumentLimits, {"max_id_length": 0}, "max_id_length: must be at least 1, got 0"),
        (DocumentLimits, {"max_documents": -1}, "max_documents: must be at least 1, got -1"),
        (DocumentLimits, {"max_length": 0}, "max_length: must be at least 1, got 0"),
        (GameSettings, {"tick_hz": 0.0}, r"tick_hz: must be in \(0, 1000\], got 0.0"),
        (GameSettings, {"tick_hz": 1000.5}, r"tick_hz: must be in \(0, 1000\], got 1000.5"),
        (GameSettings, {"tick_hz": math.nan}, r"tick_hz: must be in \(0, 1000\], got nan"),
        (GameSettings, {"full_every": 0}, "full_every: must be at least 1, got 0"),
        (GameSettings, {"max_catch_up": 0}, "max_catch_up: must be at least 1, got 0"),
        (GameSettings, {"grace": -1.0}, "grace: must be 0 or more seconds, got -1.0"),
        (GameLimits, {"max_id_length": 0}, "max_id_length: must be at least 1, got 0"),
        (GameLimits, {"max_matches": 0}, "max_matches: must be at least 1, got 0"),
        (GameLimits, {"max_players": 0}, "max_players: must be at least 1, got 0"),
        (GameLimits, {"actions_per_second": 0.0}, "actions_per_second: must be positive, got 0.0"),
        (GameLimits, {"actions_per_second": math.nan}, "actions_per_second: must be positive"),
        (ChatLimits, {"max_rooms": 0}, "max_rooms: must be at least 1, got 0"),
    ],
)
def test_a_bad_value_names_the_field_and_the_rule(
    settings: type[Any], values: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match=f"^{says}"):
        settings(**values)


@pytest.mark.parametrize(
    "settings",
    [
        DocumentLimits(max_inserted_chars=1, max_id_length=1, max_documents=1, max_length=1),
        GameSettings(tick_hz=1000.0, full_every=1, max_catch_up=1, grace=0.0),
        GameSettings(tick_hz=0.5),
        GameLimits(max_id_length=1, max_matches=1, max_players=1, actions_per_second=0.1),
    ],
    ids=repr,
)
def test_the_edges_of_each_rule_are_allowed(settings: object) -> None:
    assert settings is not None  # built without a ValueError


def test_the_defaults_are_valid_and_share_one_id_length() -> None:
    assert (
        ChatLimits().max_id_length
        == DocumentLimits().max_id_length
        == GameLimits().max_id_length
        == MAX_ID_LENGTH
    )
    assert GameSettings() and GameLimits() and DocumentLimits() and ChatLimits()
