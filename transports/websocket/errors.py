"""The one translation table: how a WebSocket call ends, as a close code and reason.

The codes carry gRPC's status vocabulary (DESIGN §9): 4000 + the status number, with the
status message as the reason, so a client classifies a WebSocket close exactly as a gRPC status
(``interplay.runtime.reconnect``): 4003 INVALID_ARGUMENT "position: must be >= 0", 4008
RESOURCE_EXHAUSTED "slow consumer…". A drain closes with 1012 (service restart: come back and
resume), the client's end with 1000.
"""

from __future__ import annotations

from collections.abc import Mapping

from grpclib.const import Status

from interplay.runtime.errors import ShuttingDown
from interplay.transports.grpc import errors as grpc_errors

NORMAL = 1000
RESTART = 1012  # the server drains: reconnect (elsewhere) and resume
STATUS_BASE = 4000

# Codes the protocol itself closes with when it refuses a frame (RFC 6455 §7.4.1).
REFUSED = {1003: "unacceptable data", 1007: "invalid data", 1008: "policy", 1009: "too big"}

# RFC 6455 §5.5: a close frame's body is at most 125 bytes, two of them the code.
MAX_REASON_BYTES = 123


def close_of(error: BaseException, fields: Mapping[str, str]) -> tuple[int, str, str] | None:
    """The close code, reason and status name for a core or runtime error; None for anything
    else."""
    mapped = grpc_errors.status_of(error, fields)
    if mapped is None:
        return None
    status, message = mapped
    code = RESTART if isinstance(error, ShuttingDown) else STATUS_BASE + status.value
    return code, reason(message), status.name


def status_of_close(code: int | None, reason_text: str) -> tuple[str, str]:
    """A close code (as a client saw it) in the status vocabulary: (status name, message).
    A connection lost or closed without a status is UNAVAILABLE: retry."""
    if code == NORMAL:
        return "OK", reason_text
    if code is not None and STATUS_BASE <= code < STATUS_BASE + 100:
        try:
            return Status(code - STATUS_BASE).name, reason_text
        except ValueError:
            pass
    if code in REFUSED:  # the server refused what this client sent: sending it again won't do
        return "INVALID_ARGUMENT", reason_text or REFUSED[code]
    return "UNAVAILABLE", reason_text or f"connection closed ({code})"


def reason(message: str) -> str:
    """``message`` cut to the close frame's 123 bytes, on a character boundary."""
    data = message.encode()
    if len(data) <= MAX_REASON_BYTES:
        return message
    cut = data[: MAX_REASON_BYTES - len("…".encode())]
    return cut.decode(errors="ignore") + "…"
