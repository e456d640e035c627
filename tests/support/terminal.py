"""A program in a pseudo-terminal, read the way a person reads it: as a screen.

pexpect runs the program in a pty; pyte, a VT100 emulator, turns what it writes into rows of
text. prompt_toolkit asks the terminal where its cursor is (``ESC [6n``) before it draws a
status line; a real terminal answers, and so does this one, from the emulated cursor.
"""

from __future__ import annotations

import time

import pexpect
import pyte

CURSOR_QUERY = "\x1b[6n"


class Terminal:
    def __init__(self, argv: list[str], *, columns: int = 100, rows: int = 24) -> None:
        self.screen = pyte.Screen(columns, rows)
        self._stream = pyte.Stream(self.screen)
        self.child = pexpect.spawn(
            argv[0], argv[1:], encoding="utf-8", dimensions=(rows, columns), timeout=5
        )

    def pump(self, wait: float = 0.05) -> None:
        """Feed whatever the program wrote into the screen; answer cursor queries."""
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=wait)
            except (pexpect.TIMEOUT, pexpect.EOF):
                return
            for i, part in enumerate(data.split(CURSOR_QUERY)):
                if i:
                    y, x = self.screen.cursor.y + 1, self.screen.cursor.x + 1
                    self.child.send(f"\x1b[{y};{x}R")
                self._stream.feed(part)
            wait = 0.01

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        """Wait until ``needle`` is on the screen; return the screen."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            screen = self.text()
            if needle in screen:
                return screen
            if time.monotonic() > deadline or not self.child.isalive():
                raise AssertionError(f"{needle!r} never appeared; the screen:\n{screen}")

    def type(self, keys: str) -> None:
        self.child.send(keys)

    def bottom(self) -> str:
        """The last non-empty row: prompt_toolkit's status line."""
        self.pump()
        rows = [line.rstrip() for line in self.screen.display if line.strip()]
        return rows[-1] if rows else ""

    def close(self) -> int | None:
        """Wait for the program to end (it should have been told to); its exit status."""
        deadline = time.monotonic() + 10
        while self.child.isalive() and time.monotonic() < deadline:
            self.pump()
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()
        return self.child.exitstatus
