"""`interplay serve`'s flags: defaults from the settings they fill, one line for a bad value."""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interplay.cli import _parser

INTERPLAY = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")


def serve_parser() -> argparse.ArgumentParser:
    commands = _parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return commands.choices["serve"]  # type: ignore[index,no-any-return]


def serve_flags() -> list[argparse.Action]:
    return [a for a in serve_parser()._actions if a.option_strings and a.dest != "help"]


def without_interplay_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INTERPLAY_")}


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--low-water", "600"], "low_water, high_water: need 0 <= low_water <= high_water"),
        (["--history", "20000"], "history: need 0 <= history <= retain"),
        (["--max-content-bytes", "0"], "max_content_bytes: must be at least 1, got 0"),
        (["--max-documents", "0"], "max_documents: must be at least 1, got 0"),
        (["--tick-hz", "2000"], r"tick_hz: must be in \(0, 1000\], got 2000.0"),
        (["--max-actions", "0"], "actions_per_second: must be positive, got 0.0"),
        (["--keepalive-time", "-1"], "keepalive_time: must be positive"),
        (["--metrics-port", "70000"], "argument --metrics-port: must be a port number from 0"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(flags: list[str], says: str) -> None:
    done = subprocess.run(
        [INTERPLAY, "serve", "--port", "0", "--ws-port", "0", "--data", ":memory:", *flags],
        env=without_interplay_variables(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # never started serving
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert re.match(f"^interplay serve: {says}", line), line


def test_a_flag_combination_is_still_checked_by_the_command() -> None:
    done = subprocess.run(
        [INTERPLAY, "serve", "--port", "5000", "--metrics-port", "5000", "--data", ":memory:"],
        env=without_interplay_variables(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert (done.returncode, done.stderr) == (
        1,
        "interplay serve: --metrics-port must differ from --port\n",
    )


def test_every_serve_flag_has_a_help_text() -> None:
    bare = [
        a.option_strings[-1]
        for a in serve_flags()
        if not a.help or a.help.startswith("[")  # only "[INTERPLAY_X]" says nothing
    ]
    assert bare == []


def test_the_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from interplay.core.documents import DocumentLimits
    from interplay.core.matches import GameLimits, GameSettings
    from interplay.core.rooms import ChatLimits
    from interplay.runtime.settings import Settings
    from interplay.transports.grpc.server import ServerSettings

    for name in list(os.environ):
        if name.startswith("INTERPLAY_"):
            monkeypatch.delenv(name)
    args = serve_parser().parse_args([])
    server = ServerSettings()
    assert (args.host, args.port, args.grace) == (server.host, server.port, server.grace)
    assert args.keepalive_time == server.keepalive_time
    assert args.keepalive_timeout == server.keepalive_timeout
    assert (args.max_message_bytes, args.max_streams) == (
        server.max_message_bytes,
        server.max_streams,
    )
    assert args.metrics_port == 0 and server.metrics_port is None  # both: off
    flow = Settings()
    assert (args.high_water, args.low_water, args.drain_timeout) == (
        flow.high_water,
        flow.low_water,
        flow.drain_timeout,
    )
    assert (args.max_rate, args.burst) == (flow.rate, flow.burst)
    chat = ChatLimits()
    assert (args.max_content_bytes, args.max_id_length, args.max_rooms) == (
        chat.max_content_bytes,
        chat.max_id_length,
        chat.max_rooms,
    )
    documents = DocumentLimits()
    assert (args.max_documents, args.max_inserted_chars) == (
        documents.max_documents,
        documents.max_inserted_chars,
    )
    games, limits = GameSettings(), GameLimits()
    assert (args.tick_hz, args.full_every, args.max_catch_up, args.match_grace) == (
        games.tick_hz,
        games.full_every,
        games.max_catch_up,
        games.grace,
    )
    from interplay.runtime.node import Node

    lease = inspect.signature(Node).parameters["match_lease"].default
    assert args.match_lease == lease
    assert (args.max_matches, args.max_players, args.max_actions) == (
        limits.max_matches,
        limits.max_players,
        limits.actions_per_second,
    )


@pytest.mark.parametrize(
    ("variable", "value", "dest", "parsed"),
    [
        ("INTERPLAY_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("INTERPLAY_PORT", "6000", "port", 6000),
        ("INTERPLAY_GRACE", "2.5", "grace", 2.5),
        ("INTERPLAY_METRICS_PORT", "9464", "metrics_port", 9464),
        ("INTERPLAY_KEEPALIVE_TIME", "0", "keepalive_time", 0.0),
        ("INTERPLAY_KEEPALIVE_TIMEOUT", "3", "keepalive_timeout", 3.0),
        ("INTERPLAY_TICK_HZ", "60", "tick_hz", 60.0),
        ("INTERPLAY_TLS_CERT", "", "tls_cert", None),
        ("INTERPLAY_LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
    ],
)
def test_an_environment_variable_is_the_default_parsed_as_the_flag(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, dest: str, parsed: object
) -> None:
    monkeypatch.setenv(variable, value)
    got = getattr(serve_parser().parse_args([]), dest)
    assert got == parsed and type(got) is type(parsed)


@pytest.mark.parametrize(
    ("argv", "variables", "says"),
    [
        (["serve", "--port", "70000"], {}, "argument --port: must be a port number from 0 to"),
        (["serve", "--port", "abc"], {}, "argument --port: must be a port number"),
        (
            ["serve"],
            {"INTERPLAY_PORT": "abc"},
            "argument --port: .* \\(from INTERPLAY_PORT='abc'\\)",
        ),
        (["serve"], {"INTERPLAY_LOG_LEVEL": "loud"}, "argument --log-level: must be one of DEBUG"),
        (["serve"], {"INTERPLAY_LOOP": "fast"}, "argument --loop: must be one of auto, asyncio"),
        (["serve", "--metrics-port", "-1"], {}, "argument --metrics-port: must be a port"),
        (["serve", "--grace", "soon"], {}, "argument --grace: invalid float value: 'soon'"),
        (["serve", "--frobnicate"], {}, "unrecognized arguments: --frobnicate"),
        (["chat", "--room", "r", "--user", "u", "--server", "nowhere"], {}, "--server must be"),
    ],
)
def test_a_bad_flag_or_variable_is_one_line_naming_it_and_exit_2(
    argv: list[str], variables: dict[str, str], says: str
) -> None:
    done = subprocess.run(
        [INTERPLAY, *argv],
        env={**without_interplay_variables(), **variables},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert re.match(f"^interplay[a-z ]*: .*{says}", line), line


def test_a_bad_variable_does_not_break_version() -> None:
    done = subprocess.run(
        [INTERPLAY, "--version"],
        env={**without_interplay_variables(), "INTERPLAY_PORT": "abc"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0 and done.stdout.startswith("interplay ")


@pytest.mark.parametrize(("given", "parsed"), [("debug", "DEBUG"), ("Warning", "WARNING")])
def test_the_log_level_takes_any_case(given: str, parsed: str) -> None:
    assert serve_parser().parse_args(["--log-level", given]).log_level == parsed


def test_lists_are_split_and_stripped() -> None:
    commands = _parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    token = commands.choices["token"]  # type: ignore[index]
    args = token.parse_args(["--user", "ann", "--rooms", "lobby, dev ,,"])
    assert args.rooms == ["lobby", "dev"]


@pytest.mark.slow
def test_a_second_server_on_the_same_data_file_refuses_to_start(tmp_path: Path) -> None:
    from helpers import interplay_serve

    data = tmp_path / "chat.db"
    with interplay_serve(data):
        done = subprocess.run(
            [INTERPLAY, "serve", "--port", "0", "--ws-port", "0", "--data", str(data)],
            env=without_interplay_variables(),
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == (
            f"interplay serve: --data {data} is in use by another interplay serve "
            "(one server per data file)\n"
        )
    with interplay_serve(data):  # free again once the first has stopped
        pass


@pytest.mark.slow
def test_the_startup_lines_say_transport_auth_data_and_metrics(tmp_path: Path) -> None:
    secret, data = "s" * 32, tmp_path / "chat.db"
    with subprocess.Popen(
        [INTERPLAY, "serve", "--port", "0", "--ws-port", "0", "--data", str(data)],
        env={**without_interplay_variables(), "INTERPLAY_AUTH_SECRET": secret},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        assert server.stdout is not None
        lines = [server.stdout.readline(), server.stdout.readline()]
        server.terminate()
        server.wait(timeout=20)
    assert re.match(
        r"^interplay: serving chat.ChatService on 127\.0\.0\.1:\d+ \(plaintext\)$", lines[0]
    )
    assert lines[1] == (  # --ws-port 0: no WebSocket line
        f"interplay: ready: auth on (bearer tokens); data {data}; no metrics "
        "(Ctrl-C or SIGTERM to stop)\n"
    )


@pytest.mark.slow
def test_interplay_health_says_serving_or_why_not(tmp_path: Path) -> None:
    from helpers import interplay_serve

    with interplay_serve(tmp_path / "chat.db") as port:
        up = subprocess.run(
            [INTERPLAY, "health", "--server", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert (up.returncode, up.stdout) == (0, f"interplay health: 127.0.0.1:{port}: SERVING\n")
    down = subprocess.run(
        [INTERPLAY, "health", "--server", f"127.0.0.1:{port}", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert down.returncode == 1 and "ConnectionRefusedError" in down.stdout, down.stdout
