"""`interplay serve` that cannot start says why in one line naming the flag, exits 2, and
prints no traceback: each case in a subprocess, reading its stderr and exit status."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

INTERPLAY = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")
SECRET = "a-user-secret-that-is-long-enough-for-hs256"


def refused(*flags: str, env: dict[str, str] | None = None) -> str:
    """Run ``interplay serve`` with ``flags``; assert the refusal's shape; its one line."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERPLAY_")}
    done = subprocess.run(
        [INTERPLAY, "serve", "--port", "0", "--ws-port", "0", "--data", ":memory:", *flags],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stdout == ""  # it never said it was serving
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    return line


@contextmanager
def listening() -> Iterator[int]:
    """A port another program holds."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_data_file_that_is_not_a_database(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my shopping list\n" * 50)
    line = refused("--data", str(notes))
    assert line == (
        f"interplay serve: --data: {notes}: not an SQLite database (file is not a database)"
    )
    assert notes.read_text().startswith("my shopping list")  # untouched


def test_another_programs_database(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    line = refused("--data", str(other))
    assert (
        line
        == f"interplay serve: --data: {other}: another program's SQLite database (tables users)"
    )


def test_a_data_directory_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "data" / "interplay.db"
    line = refused("--data", str(target))
    assert line.startswith(f"interplay serve: --data: {target}: cannot create its directory (")


def test_a_data_path_that_is_a_directory(tmp_path: Path) -> None:
    line = refused("--data", str(tmp_path))
    assert (
        line
        == f"interplay serve: --data: {tmp_path}: cannot open it (unable to open database file)"
    )


@pytest.mark.parametrize("flag", ["--port", "--ws-port", "--metrics-port"])
def test_a_port_in_use(flag: str) -> None:
    with listening() as port:
        line = refused(flag, str(port))
    assert line == (
        f"interplay serve: {flag}: 127.0.0.1:{port} is already in use (another server on it?)"
    )


@pytest.mark.parametrize(
    ("flags", "env", "says"),
    [
        (["--auth-secret", "short"], {}, "--auth-secret: auth secret: must be at least 32 bytes"),
        ([], {"INTERPLAY_AUTH_SECRET": "short"}, "--auth-secret: auth secret: must be at least 32"),
        (["--admin-secret", "short"], {}, "--admin-secret: admin secret: must be at least 32"),
        (
            ["--admin-secret", SECRET],
            {"INTERPLAY_AUTH_SECRET": SECRET},
            "--admin-secret: must differ from --auth-secret",
        ),
        (
            ["--auth-public-key", "/nonexistent/key.pem"],
            {},
            "--auth-public-key: cannot read /nonexistent/key.pem (No such file or directory)",
        ),
        (
            ["--auth-audience", "interplay"],
            {},
            "--auth-audience: needs --auth-secret, --auth-public-key or --auth-jwks",
        ),
        (["--auth-jwks", "file:///etc/passwd"], {}, "--auth-jwks: must be an http(s) URL"),
        (
            ["--auth-jwks", "http://127.0.0.1:9/certs", "--auth-public-key", "k.pem"],
            {},
            "--auth-public-key: give it or --auth-jwks, not both",
        ),
    ],
)
def test_bad_auth_settings(flags: list[str], env: dict[str, str], says: str) -> None:
    assert refused(*flags, env=env).startswith(f"interplay serve: {says}")


def test_a_public_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
    line = refused("--auth-public-key", str(key))
    assert line.startswith(f"interplay serve: --auth-public-key: {key}: not a PEM public key")


def test_an_unreachable_jwks_url_at_start() -> None:
    with listening() as port:
        pass  # now nothing listens there
    line = refused("--auth-jwks", f"http://127.0.0.1:{port}/certs")
    assert re.match(
        rf"^interplay serve: --auth-jwks: cannot fetch the key set from "
        rf"http://127\.0\.0\.1:{port}/certs: .*Connection refused",
        line,
    ), line
