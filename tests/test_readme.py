"""The README's code runs as written (the client snippet against a real `interplay serve`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import interplay_serve

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_has_the_two_commands_ci_runs() -> None:
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install . && interplay serve" in README
    assert "pip install -e '.[dev]' && pytest" in README
    assert "pip install -q -e '.[dev]'" in ci and "\nCI=true pytest\n" in ci


@pytest.mark.parametrize("needle", ["RoomHub", "GameLoop"])
def test_embedding_examples_run(needle: str) -> None:
    [embedding] = [b for b in BLOCKS if needle in b]
    exec(compile(embedding, "README.md", "exec"), {})


@pytest.mark.slow
@pytest.mark.parametrize("needle", ["Channel(", "ChatClient("])
def test_client_snippets_run_against_interplay_serve(tmp_path: Path, needle: str) -> None:
    [client] = [b for b in BLOCKS if needle in b]
    with interplay_serve(tmp_path / "chat.db") as port:
        script = client.replace("50051", str(port))
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    assert out.splitlines() == ["JOIN 0 ann ", "TEXT 1 ann hi"]


def test_every_serve_flag_is_in_the_operations_table() -> None:
    from interplay.cli import _parser

    commands = _parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    serve = commands.choices["serve"]  # type: ignore[index]
    flags = {a.option_strings[-1] for a in serve._actions if a.option_strings} - {"--help"}
    operations = README[README.index("## Operations") : README.index("## Embedding the core")]
    table = {flag for flag in re.findall(r"`(--[a-z-]+)`", operations)}
    assert flags == table
