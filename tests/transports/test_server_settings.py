"""ServerSettings refuses a bad value when built, naming the field and the rule."""

from __future__ import annotations

import math
from typing import Any

import pytest

from interplay.transports.grpc.server import ServerSettings


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"port": -1}, "port: must be 0 to 65535, got -1"),
        ({"port": 65536}, "port: must be 0 to 65535, got 65536"),
        ({"metrics_port": 70000}, "metrics_port: must be 0 to 65535, got 70000"),
        ({"max_message_bytes": 0}, "max_message_bytes: must be at least 1, got 0"),
        ({"stream_window": 0}, "stream_window: must be at least 1, got 0"),
        ({"connection_window": 0}, "connection_window: must be at least 1, got 0"),
        ({"max_streams": 0}, "max_streams: must be at least 1, got 0"),
        ({"grace": -0.5}, "grace: must be 0 or more seconds, got -0.5"),
        ({"grace": math.nan}, "grace: must be 0 or more seconds, got nan"),
        ({"keepalive_time": 0.0}, r"keepalive_time: must be positive \(None: no pings\), got 0.0"),
        ({"keepalive_timeout": 0.0}, "keepalive_timeout: must be positive, got 0.0"),
    ],
)
def test_server_settings_name_the_field_and_the_rule(values: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=f"^{says}$"):
        ServerSettings(**values)


def test_server_settings_edges_are_allowed() -> None:
    ServerSettings(port=0, metrics_port=0, grace=0.0, keepalive_time=None)
    ServerSettings(port=65535, metrics_port=65535, max_streams=1, max_message_bytes=1)
