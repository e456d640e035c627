import os

import pytest
from hypothesis import HealthCheck, settings

# CI: enough examples to matter, derandomized so a run is reproducible.
settings.register_profile(
    "ci",
    max_examples=300,
    stateful_step_count=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# The inner loop (`pytest -m "not slow"`): few examples, fast; CI and the long run go deep.
settings.register_profile("dev", max_examples=40, deadline=None)
# Long local run before resolving a core issue: HYPOTHESIS_PROFILE=long pytest tests/core
settings.register_profile(
    "long",
    max_examples=20_000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # grpclib is asyncio-only
