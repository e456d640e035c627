"""Google's upb classes for protos/chat.proto: the ones the server uses, committed in
``interplay.transports.grpc.generated.chat_pb2``.

Benchmark clients decode with these so that the load generator is not what gets measured
(betterproto2 takes ~18 µs per ChatMessage, upb ~0.3 µs; ../shared/notes).
"""

from __future__ import annotations

from typing import Any


def chat_pb2() -> Any:
    from interplay.transports.grpc.generated import chat_pb2 as module

    return module
