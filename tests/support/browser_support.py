"""What the browser tests share: how chromium is launched and what a page logs."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import ConsoleMessage, Page

ROOT = Path(__file__).resolve().parent.parent.parent
WEB = ROOT / "web"

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it), not Playwright's build
# Without the background-networking flags chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class PageLog:
    """A page's console messages and uncaught errors, kept for a failure report."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.lines.append(f"[pageerror] {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        self.lines.append(f"[{message.type}] {message.text}")

    @property
    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith(("[error]", "[pageerror]"))]
