"""The page's reconnect schedule (web/js/connection.js) is the core's backoff with a 30 s cap,
and its close codes read as the server means them."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from interplay.core.backoff import BackoffPolicy

pytestmark = pytest.mark.slow

DELAYS = """async (draw) => {
  const { Backoff } = await import("/js/connection.js");
  const random = Math.random;
  Math.random = () => draw;
  try {
    const backoff = new Backoff();
    const delays = Array.from({ length: 12 }, () => backoff.nextDelay());
    backoff.reset();
    return [delays, backoff.nextDelay()];
  } finally {
    Math.random = random;
  }
}"""


@pytest.mark.parametrize(("draw", "side"), [(0.0, 0), (0.999999, 1)])
def test_reconnect_delays_span_the_core_backoff_bounds(
    module_page: Page, draw: float, side: int
) -> None:
    policy = BackoffPolicy(cap=30.0)
    delays, after_reset = module_page.evaluate(DELAYS, draw)
    assert delays == pytest.approx([policy.bounds(n)[side] for n in range(12)], rel=1e-5)
    assert after_reset == pytest.approx(policy.bounds(0)[side], rel=1e-5)


def test_close_codes_read_as_the_server_means_them(module_page: Page) -> None:
    described = module_page.evaluate(
        """async (cases) => {
          const { describeClose } = await import("/js/connection.js");
          return cases.map(([code, reason]) => describeClose(code, reason));
        }""",
        [[1006, ""], [1012, ""], [4003, "position: must be >= 0"], [4016, "no token"], [4999, ""]],
    )
    assert described == [
        "connection lost",
        "server restarting",
        "INVALID_ARGUMENT: position: must be >= 0",
        "UNAUTHENTICATED: no token",
        "closed 4999",
    ]


def test_endpoints_sit_beside_the_page_and_carry_its_token(module_page: Page) -> None:
    urls = module_page.evaluate(
        """async (pages) => {
          const { endpoint } = await import("/js/connection.js");
          return pages.map((href) => endpoint("/chat", new URL(href)));
        }""",
        [
            "http://127.0.0.1:8080/?user=ann#chat",
            "https://example.test/rt/?access_token=a%2Bb&user=ann#game",
        ],
    )
    assert urls == [
        "ws://127.0.0.1:8080/chat",
        "wss://example.test/rt/chat?access_token=a%2Bb",
    ]


def test_the_page_retries_every_status_the_python_clients_retry(module_page: Page) -> None:
    from grpclib.const import Status

    from interplay.runtime.reconnect import TRANSIENT_STATUSES

    transient = module_page.evaluate(
        """async () => [...(await import("/js/connection.js")).TRANSIENT]"""
    )
    assert {4000 + Status[name].value for name in TRANSIENT_STATUSES} <= set(transient)
    assert {1006, 1012} <= set(transient)  # the connection lost; the server restarting
