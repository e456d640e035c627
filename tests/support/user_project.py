"""A user's project, in a folder: test modules of theirs run by pytest in a subprocess, as they
would run them (only ``extra_path`` and the package on ``sys.path``; no config of ours)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Hypothesis as a user's project might set it up: a small profile of its own.
CONFTEST = """
from hypothesis import settings
settings.register_profile("user", max_examples=25, deadline=None)
settings.load_profile("user")
"""


def run_pytest(
    folder: Path, modules: dict[str, str], *args: str, extra_path: Path | None = None
) -> str:
    """pytest on ``modules`` (file name -> source) written into ``folder``; its output."""
    (folder / "conftest.py").write_text(CONFTEST)
    for name, source in modules.items():
        (folder / name).write_text(source)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        env=env,
    )
    return run.stdout + run.stderr
