"""Regenerate the committed code from protos/chat.proto and protos/admin.proto: betterproto2's
typed dataclasses (the API users see) and Google's ``chat_pb2``/``admin_pb2`` (the upb runtime:
the server's hot paths, and the descriptors server reflection serves).

    python scripts/generate_proto.py            # rewrite transports/grpc/generated/
    python scripts/generate_proto.py --check    # exit 1 if the committed code is stale

Needs the ``dev`` extra (grpcio-tools for protoc, betterproto2-compiler for the plugin).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
TARGET = ROOT / "transports" / "grpc" / "generated"
OPTIONS = "client_generation=async,server_generation=async"
PROTOS = ("chat.proto", "admin.proto")


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_betterproto2_out={out}",
            f"--python_betterproto2_opt={OPTIONS}",
            f"--python_out={out}",
            *(str(PROTO_DIR / name) for name in PROTOS),
        ],
        check=True,
        capture_output=True,
    )


def files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def stale(fresh: Path, committed: Path) -> list[str]:
    names = files(fresh) | files(committed)
    return sorted(
        n
        for n in names
        if not (fresh / n).is_file()
        or not (committed / n).is_file()
        or not filecmp.cmp(fresh / n, committed / n, shallow=False)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        differ = stale(fresh, TARGET)
        if args.check:
            for name in differ:
                print(f"stale: {TARGET.relative_to(ROOT) / name}")
            return 1 if differ else 0
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(fresh, TARGET)
        print(f"wrote {len(files(TARGET))} files to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
