"""What the browser tests share: how chromium is launched and what a page logs."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page

from helpers import free_port, interplay_process

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


class Pages:
    """Opens pages in one browser, each with its console log kept."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[tuple[Page, PageLog]] = []

    async def open(
        self, url: str, prepare: Callable[[Page], Awaitable[None]] | None = None
    ) -> Page:
        """A new page at ``url``; ``prepare`` runs before it loads (e.g. to route its calls)."""
        context = await self.browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        log = PageLog(f"page{len(self.opened) + 1}")
        log.attach(page)
        self.opened.append((page, log))
        if prepare is not None:
            await prepare(page)
        await page.goto(url)
        return page

    async def keep(self, folder: Path) -> list[Path]:
        """Screenshots and console logs of every page, for a failed test."""
        kept = []
        for page, log in self.opened:
            png = folder / f"{log.name}.png"
            try:
                await page.screenshot(path=str(png), full_page=True)
                kept.append(png)
            except Exception as exc:  # a crashed page has no screenshot; say so in its log
                log.lines.append(f"[screenshot failed: {exc}]")
            text = folder / f"{log.name}-console.log"
            text.write_text("\n".join(log.lines) + "\n")
            kept.append(text)
        return kept


@dataclass(frozen=True)
class WebServer:
    grpc_port: int
    ws_port: int
    process: subprocess.Popen[str]

    def url(self, query: str = "", view: str = "chat") -> str:
        """The app's address, e.g. ``url("user=ann&room=lobby", "editor")``."""
        return f"http://127.0.0.1:{self.ws_port}/?{query}#{view}"


@contextmanager
def web_serve(
    data: Path, *extra: str, grpc_port: int = 0, ws_port: int = 0, killed: bool = False
) -> Iterator[WebServer]:
    """``interplay serve`` with gRPC and WebSocket (and the browser app), each on its port or a
    free one (``--ws-port 0`` turns WebSocket off); stopped as ``interplay_process`` stops it."""
    flags = ("--port", str(grpc_port), "--ws-port", str(ws_port or free_port()))
    with interplay_process(data, *flags, *extra, killed=killed) as (port, process):
        line = process.startup[1]  # type: ignore[attr-defined]
        match = re.search(r"serving WebSocket on 127\.0\.0\.1:(\d+).*the browser app: http", line)
        assert match, f"second line {line!r}"
        yield WebServer(grpc_port=port, ws_port=int(match.group(1)), process=process)
