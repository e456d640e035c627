"""Google's upb classes for protos/chat.proto, generated on first use (grpcio-tools).

Benchmark clients decode with these so that the load generator is not what gets measured
(betterproto2 takes ~18 µs per ChatMessage, upb ~0.3 µs; ../shared/notes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

PROTOS = Path(__file__).resolve().parents[1] / "protos"


def chat_pb2() -> Any:
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="interplay-pb2-")
    args = ["protoc", f"-I{PROTOS}", f"--python_out={out}", str(PROTOS / "chat.proto")]
    if protoc.main(args):
        raise SystemExit("grpc_tools.protoc failed on protos/chat.proto")
    sys.path.insert(0, out)
    import chat_pb2 as module  # type: ignore[import-not-found]

    return module
