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
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long run takes as long as it takes: no per-test ceiling (pyproject's ``timeout``
    would stop a state machine mid-run, which Hypothesis then reports as flaky)."""
    if PROFILE == "long":
        for item in items:
            item.add_marker(pytest.mark.timeout(0))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # grpclib is asyncio-only
