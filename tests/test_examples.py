"""Each example in examples/ runs against a real `interplay serve` and does what it says."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from helpers import interplay_serve
from interplay.core import Kind
from interplay.transports.grpc.client import ChatClient

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@contextmanager
def example(
    name: str, *args: str, stop: signal.Signals = signal.SIGTERM
) -> Iterator[subprocess.Popen[str]]:
    """An example in a subprocess; ``stop`` ends it if it is still running at the end (SIGTERM:
    what a background job, systemd or CI sends; a background job ignores SIGINT)."""
    with subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            stopped = process.poll() is None
            if stopped:
                process.send_signal(stop)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            if stopped:  # a clean stop: exit 0, no traceback
                errors = process.stderr.read() if process.stderr else ""
                assert process.returncode == 0 and "Traceback" not in errors, errors


@pytest.mark.anyio
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_the_chat_bot_greets_and_answers(tmp_path: Path, stop: signal.Signals) -> None:
    with (
        interplay_serve(tmp_path / "chat.db") as port,
        example(
            "chat_bot.py", "--server", f"127.0.0.1:{port}", "--room", "lobby", stop=stop
        ) as bot,
    ):
        assert bot.stdout is not None
        assert bot.stdout.readline() == "bot: in #lobby\n"
        async with ChatClient("127.0.0.1", port, user="ann") as ann:
            await ann.join("lobby")
            await ann.send("lobby", "!echo hello there")
            await ann.send("lobby", "!who")
            replies = []
            with anyio.fail_after(10):
                async for message in ann:
                    if message.kind is Kind.TEXT and message.sender == "bot":
                        replies.append(message.content)
                        if len(replies) == 3:
                            break
        assert replies == ["welcome, ann!", "hello there", "ann, bot"]
    assert bot.returncode == 0


def test_two_shared_editors_converge(tmp_path: Path) -> None:
    with interplay_serve(tmp_path / "docs.db") as port:
        server = f"127.0.0.1:{port}"
        with (
            example("shared_editor.py", "--server", server, "--user", "ann") as ann,
            example("shared_editor.py", "--server", server, "--user", "bob") as bob,
        ):
            say(ann, "i $ hello\ni $  world\n")
            say(bob, "i 0 >> \nu\nr\n")
            for _ in range(100):  # until both print the same revision and text
                finals = {printed(editor) for editor in (ann, bob)}
                if len(finals) == 1:
                    break
                time.sleep(0.1)
            for editor in (ann, bob):
                say(editor, "q\n")
                assert editor.wait(timeout=10) == 0
    [(_, text)] = finals  # (how many revisions bob's undo and redo take depends on timing)
    assert sorted(text.replace(">> ", "", 1)) == sorted("hello world") and ">> " in text


def say(editor: subprocess.Popen[str], lines: str) -> None:
    assert editor.stdin is not None
    editor.stdin.write(lines)
    editor.stdin.flush()


def printed(editor: subprocess.Popen[str]) -> tuple[str, str]:
    """Ask the editor to print its document; its revision and text."""
    say(editor, "p\n")
    assert editor.stdout is not None
    while not (line := editor.stdout.readline()).startswith("= [rev "):
        assert line, "the editor ended"
    revision, _, text = line[len("= [rev ") :].rstrip("\n").partition("] ")
    return revision, text


def test_the_game_client_walks_and_prints_the_match(tmp_path: Path) -> None:
    with interplay_serve(tmp_path / "game.db") as port:
        args = ("--server", f"127.0.0.1:{port}", "--match", "m", "--moves", "5")
        with example("game_client.py", *args, "--player", "ann") as ann:
            out, err = ann.communicate(timeout=30)
    assert ann.returncode == 0, err
    [line] = out.splitlines()
    assert line.startswith("ann: x=") and line.endswith("last_sequence=5")
