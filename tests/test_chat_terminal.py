"""`interplay chat` used as a person uses it: two terminals against a real `interplay serve`,
read as screens (pexpect + a VT100 emulator, tests/support/terminal.py)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import interplay_process, interplay_serve
from terminal import Terminal

pytestmark = pytest.mark.slow

EXE = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")


@contextmanager
def chat(port: int, user: str, room: str = "lobby") -> Iterator[Terminal]:
    terminal = Terminal(
        [EXE, "chat", "--room", room, "--user", user, "--server", f"127.0.0.1:{port}"]
    )
    try:
        terminal.wait_for("connected · #lobby")
        yield terminal
    finally:
        if terminal.child.isalive():
            terminal.type("/quit\r")
        assert terminal.close() == 0


def test_two_people_chat_with_typing_who_rooms_and_quit(tmp_path: Path) -> None:
    with interplay_serve(tmp_path / "chat.db") as port, chat(port, "ann") as ann:
        with chat(port, "bob") as bob:
            ann.wait_for("* bob joined")
            ann.type("hello bob\r")
            bob.wait_for("#lobby ann: hello bob")
            bob.type("/who\r")
            bob.wait_for("#lobby: ann, bob")
            bob.type("I am typ")  # not sent yet: the other side sees the indicator
            ann.wait_for("bob typing…")
            assert "bob typing" in ann.bottom()  # in the status line, under the prompt
            bob.type("ing\r")
            ann.wait_for("#lobby bob: I am typing")
            bob.type("/join dev\r")
            bob.wait_for("connected · #dev as bob")
            bob.type("over here\r")
            bob.wait_for("#dev bob: over here")
            bob.type("/leave dev\r")
            bob.wait_for("* you left #dev")
            bob.wait_for("connected · #lobby as bob")
            bob.type("/nonsense\r")
            bob.wait_for("commands: /join ROOM")
        ann.wait_for("* bob left")
        assert "over here" not in ann.text()  # another room


def test_the_status_line_shows_a_reconnect_and_nothing_said_meanwhile_is_lost(
    tmp_path: Path,
) -> None:
    data = tmp_path / "chat.db"
    with interplay_process(data, killed=True) as (port, process):
        ann_chat, bob_chat = chat(port, "ann"), chat(port, "bob")
        ann, bob = ann_chat.__enter__(), bob_chat.__enter__()
        ann.wait_for("* bob joined")
        process.kill()
        ann.wait_for("reconnecting · #lobby")
        ann.wait_for("! connection lost (UNAVAILABLE")  # a line in the conversation too
        ann.type("said while the server was down\r")
    with interplay_serve(data, "--port", str(port)):
        ann.wait_for("connected · #lobby", timeout=15)
        ann.wait_for("* reconnected")
        bob.wait_for("#lobby ann: said while the server was down", timeout=15)
        ann.wait_for("#lobby ann: said while the server was down")
        ann_chat.__exit__(None, None, None)
        bob_chat.__exit__(None, None, None)


SECRET = "a-terminal-test-secret-of-32-bytes-or-more"


def chat_as(port: int, user: str, *flags: str) -> Terminal:
    return Terminal(
        [EXE, "chat", "--room", "lobby", "--user", user, "--server", f"127.0.0.1:{port}", *flags],
        columns=160,
    )


def test_every_refusal_is_a_line_and_the_session_goes_on(tmp_path: Path) -> None:
    from interplay.runtime import Authenticator

    token = Authenticator(SECRET).mint("ann", rooms=["lobby", "dev"])
    with interplay_serve(tmp_path / "chat.db", "--auth-secret", SECRET) as port:
        ann = chat_as(port, "ann", "--token", token)
        try:
            ann.wait_for("connected · #lobby")
            ann.type("/join secret\r")  # outside the token's claims: refused by the server
            ann.wait_for(
                "#secret ! refused JOIN: PERMISSION_DENIED room_id: the token does not grant "
                "'secret' (its rooms claim)"
            )
            ann.wait_for("connected · #lobby as ann")  # back where it was
            ann.type("/join " + "r" * 300 + "\r")  # refused at once, by the client
            ann.wait_for("! room: must be at most 255 characters")
            ann.type("still here\r")
            ann.wait_for("#lobby ann: still here")
            ann.type("/leave\r")  # the only room
            ann.wait_for("* you left #lobby")
            ann.type("typing into no room")  # the typing indicator has nowhere to go
            ann.type("\r")
            ann.wait_for("! you are in no room")
            ann.type("/join dev\r")
            ann.wait_for("connected · #dev as ann")
            ann.type("over here\r")
            ann.wait_for("#dev ann: over here")
            assert "Traceback" not in ann.text()
        finally:
            if ann.child.isalive():
                ann.type("/quit\r")
            assert ann.close() == 0


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ((), "! disconnected: UNAUTHENTICATED authorization: a 'Bearer <token>' header"),
        (("--token", "not-a-token"), "! disconnected: UNAUTHENTICATED authorization:"),
        ("another user's token", "! disconnected: PERMISSION_DENIED sender_id: the token is for"),
    ],
)
def test_a_fatal_refusal_is_one_line_and_exit_1(
    tmp_path: Path, flags: tuple[str, ...] | str, says: str
) -> None:
    from interplay.runtime import Authenticator

    if isinstance(flags, str):
        flags = ("--token", Authenticator(SECRET).mint("bob"))
    with interplay_serve(tmp_path / "chat.db", "--auth-secret", SECRET) as port:
        ann = chat_as(port, "ann", *flags)
        screen = ann.wait_for(says)
        assert ann.close() == 1
        assert "Traceback" not in screen and "ExceptionGroup" not in screen


def test_tls_to_a_plaintext_server_stops_and_says_why(tmp_path: Path) -> None:
    from certs import issue

    tls = issue(tmp_path)
    with interplay_serve(tmp_path / "chat.db") as port:
        ann = chat_as(port, "ann", "--tls-ca", str(tls.ca))
        screen = ann.wait_for("! disconnected: UNAVAILABLE TLS:")
        assert "does not speak TLS" in screen
        assert ann.close() == 1
