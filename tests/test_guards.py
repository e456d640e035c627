"""Guards on the package's shape: the wheel, the import names, the core's purity, the codegen."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_core_imports_no_io_transport_or_protobuf_module() -> None:
    code = (
        "import sys, interplay.core; "
        "banned = {'asyncio', 'anyio', 'grpclib', 'h2', 'betterproto2', 'google', 'sqlite3',"
        " 'socket', 'interplay.transports', 'interplay.backends'}; "
        "print(sorted(m for m in sys.modules if m in banned or m.split('.')[0] in banned"
        " or m.startswith('interplay.transports') or m.startswith('interplay.backends')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    assert out.strip() == "[]"


def test_core_source_never_reads_a_clock_or_sleeps() -> None:
    for path in (ROOT / "core").rglob("*.py"):
        text = path.read_text()
        for banned in ("import time", "from time", "datetime.now", "sleep(", "import asyncio"):
            assert banned not in text, f"{path.relative_to(ROOT)} uses {banned!r}"


def test_runtime_imports_no_wire_library() -> None:
    code = (  # every module of the runtime, not only the package
        "import importlib, pkgutil, sys, interplay.runtime as r; "
        "[importlib.import_module(m.name)"
        " for m in pkgutil.walk_packages(r.__path__, 'interplay.runtime.')]; "
        "banned = {'grpclib', 'h2', 'betterproto2', 'google', 'websockets'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned"
        " or m.startswith('interplay.transports')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("folder", ["core", "runtime", "backends", "transports", "testing", "app"])
def test_folder_names_are_not_importable(folder: str) -> None:
    assert importlib.util.find_spec(folder) is None


@pytest.mark.slow
def test_wheel_contains_every_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("interplay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    folders = {
        "core": "interplay/core",
        "runtime": "interplay/runtime",
        "backends": "interplay/backends",
        "transports": "interplay/transports",
        "testing": "interplay/testing",
        "app": "interplay",
    }
    for folder, package in folders.items():
        for source in (ROOT / folder).rglob("*.py"):
            relative = source.relative_to(ROOT / folder)
            assert f"{package}/{relative}" in names, (
                f"{source.relative_to(ROOT)} is not in the wheel"
            )
    assert "interplay/core/py.typed" in names
    # The browser app: every file `interplay serve` serves must be installed with it.
    for source in (ROOT / "web").rglob("*"):
        if source.is_file() and "__pycache__" not in source.parts:
            relative = source.relative_to(ROOT / "web")
            assert f"interplay/web/{relative}" in names, f"web/{relative} is not in the wheel"


@pytest.mark.slow
def test_generated_code_is_not_stale() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_proto.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
