"""The README's code runs as written (the client snippet against a real `interplay serve`)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import free_port, interplay_serve
from user_project import run_pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_has_the_two_commands_ci_runs() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install . && interplay serve" in README
    assert "pip install -e '.[dev]' && pytest" in README
    assert "pip install -q -e '.[dev]'" in ci and "\nCI=true pytest\n" in ci


@pytest.mark.parametrize("needle", ["RoomHub", "GameLoop"])
def test_embedding_examples_run(needle: str) -> None:
    [embedding] = [b for b in BLOCKS if needle in b and "interplay.testing" not in b]
    exec(compile(embedding, "README.md", "exec"), {})


# The WebSocket transport, as the README's transport snippet's ``my_transport``.
MY_TRANSPORT = """
from contextlib import asynccontextmanager
from types import SimpleNamespace

from conformance.websocket_transport import WebSocketTransport


@asynccontextmanager
async def serve_runtime(runtime):
    served = SimpleNamespace(runtime=runtime)
    async with WebSocketTransport().listen(served, one_connection_per_call=True) as connect:
        yield connect


def dial(address, rpc, *, small_buffers=False):
    return address(rpc, small_buffers=small_buffers)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "suite", ["BackendConformance", "TransportConformance", "RoomHubConformance"]
)
def test_each_conformance_snippet_passes_its_suite(tmp_path: Path, suite: str) -> None:
    [snippet] = [b for b in BLOCKS if f"({suite})" in b]
    modules = {"test_snippet.py": snippet, "my_transport.py": MY_TRANSPORT}
    out = run_pytest(tmp_path, modules, extra_path=ROOT / "tests" / "support")
    # Every check of the suite passed: nothing failed, errored or was skipped.
    assert re.fullmatch(r"[1-9]\d* passed in .*", out.splitlines()[-1]), out


# What each client snippet prints on its first run, and on a second against the same server
# (the room's history, the document and the match are still there).
RUNS = {
    "Channel(": (
        ["JOIN 0 ann ", "TEXT 1 ann hi"],
        ["JOIN 1 ann ", "TEXT 1 ann hi", "TEXT 2 ann hi"],
    ),
    "ChatClient(": (
        ["JOIN 0 ann ", "TEXT 1 ann hi"],
        ["JOIN 1 ann ", "TEXT 1 ann hi", "TEXT 2 ann hi"],
    ),
    "EditClient(": (
        ["notes ends with 'hello '", "ann moved"],
        ["notes ends with 'hello '", "ann moved"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("needle", sorted(RUNS))
def test_client_snippets_run_twice_against_one_interplay_serve(tmp_path: Path, needle: str) -> None:
    [client] = [b for b in BLOCKS if needle in b]
    with interplay_serve(tmp_path / "chat.db") as port:
        script = client.replace("50051", str(port))
        outputs = [
            subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.splitlines()
            for _ in range(2)
        ]
    assert tuple(outputs) == RUNS[needle]


ROOT = Path(__file__).resolve().parent.parent


def test_the_systemd_unit_waits_for_the_network_tolerates_no_env_file_and_raises_nofile() -> None:
    unit = (ROOT / "deploy" / "interplay.service").read_text()
    for line in (
        "Wants=network-online.target",
        "After=network-online.target",
        "EnvironmentFile=-/etc/interplay.env",
        "LimitNOFILE=65536",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=20",
    ):
        assert f"\n{line}\n" in unit, line


def test_the_image_runs_as_a_user_checks_its_health_and_copies_no_local_state() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "\nUSER interplay\n" in dockerfile
    assert 'CMD ["interplay", "health", "--server", "127.0.0.1:50051"]' in dockerfile
    assert "\nSTOPSIGNAL SIGTERM\n" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv/", ".git/", "interplay-data/", "*.db", "**/__pycache__/"):
        assert entry in ignored, entry


@pytest.mark.slow
def test_the_websocket_snippet_runs_against_interplay_serve(tmp_path: Path) -> None:
    [client] = [b for b in BLOCKS if "websockets.asyncio.client" in b]
    ws_port = free_port()
    with interplay_serve(tmp_path / "chat.db", "--ws-port", str(ws_port)):
        script = client.replace("8080", str(ws_port))
        for _ in range(2):  # twice against one server: a snippet must not depend on a fresh one
            out = subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
            )
            assert out.returncode == 0, out.stderr
            lines = out.stdout.splitlines()
            assert lines[0].startswith("JOIN ") and lines[0].endswith(" ann ")
            assert lines[-1].startswith("TEXT ") and lines[-1].endswith(" ann hi")


def test_the_asgi_snippet_builds_a_starlette_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.applications import Starlette

    [snippet] = [b for b in BLOCKS if "InterplayASGI" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert isinstance(namespace["app"], Starlette)
    assert not (tmp_path / "interplay.db").exists()  # the runtime starts with the lifespan


OPERATIONS = README[README.index("## Operations") : README.index("## Embedding the core")]
TABLE = OPERATIONS[OPERATIONS.index("| flag | default | what |") :].split("\n\n")[0]
# "1 MiB", "64 KiB" and "64 Ki" are the binary multiples; "10 000" groups digits with spaces.
UNITS = {"": 1, "Ki": 1024, "KiB": 1024, "MiB": 1024 * 1024}


def serve_flags() -> list[argparse.Action]:
    from interplay.cli import _parser

    commands = _parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    serve = commands.choices["serve"]  # type: ignore[index]
    return [a for a in serve._actions if a.dest != "help"]


def serve_defaults() -> dict[str, object]:
    """Each ``interplay serve`` flag and its default (as built: no INTERPLAY_* variable set)."""
    return {a.option_strings[-1]: a.default for a in serve_flags()}


def table_defaults() -> dict[str, str]:
    """The Operations table: each flag and its default as written (a row ``--a` / `--b``
    writes its defaults as ``x / y``)."""
    written = {}
    for line in TABLE.splitlines()[2:]:
        flags_cell, default_cell, _ = line.strip("|").split(" | ", 2)
        flags = re.findall(r"`(--[a-z-]+)`", flags_cell)
        cells = default_cell.split(" / ") if len(flags) > 1 else [default_cell]
        assert len(cells) == len(flags), line
        written.update(zip(flags, cells, strict=True))
    return written


def as_written(value: object) -> object:
    """A flag's default as the table writes it: none, a number, or the text (no backticks)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return str(value)


def read(cell: str) -> object:
    cell = re.sub(r" \(.*\)$", "", cell.strip()).strip("`")  # "0 (off)": the value is 0
    if cell == "none":
        return None
    number = re.fullmatch(r"(\d[\d ]*(?:\.\d+)?) ?(Ki|KiB|MiB)?", cell)
    if number:
        return float(number[1].replace(" ", "")) * UNITS[number[2] or ""]
    return cell


def test_every_serve_flag_is_in_the_operations_table() -> None:
    flags = set(serve_defaults())
    table = {flag for flag in re.findall(r"`(--[a-z-]+)`", OPERATIONS)}
    assert flags == table


def test_the_operations_table_names_each_flags_variable() -> None:
    read_by = {  # the help text of a flag that reads INTERPLAY_X says [INTERPLAY_X]
        a.option_strings[-1]: variable[0]
        for a in serve_flags()
        if (variable := re.findall(r"\[(INTERPLAY_[A-Z_]+)", a.help or ""))
    }
    table = dict(re.findall(r"^\| `(--[a-z-]+)` / `(INTERPLAY_[A-Z_]+)` \|", TABLE, re.MULTILINE))
    assert read_by == table


def test_the_operations_table_shows_each_flags_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INTERPLAY_"):
            monkeypatch.delenv(name)
    defaults = serve_defaults()
    written = {flag: read(cell) for flag, cell in table_defaults().items()}
    assert written.keys() == defaults.keys()
    wrong = {
        flag: (written[flag], default)
        for flag, default in defaults.items()
        if written[flag] != as_written(default)
    }
    assert wrong == {}  # flag: (the table's value, the flag's default)
