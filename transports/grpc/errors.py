"""The one translation table: core errors -> gRPC status."""

from __future__ import annotations

from collections.abc import Mapping

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from interplay.core.errors import (
    AlreadyExists,
    CoreError,
    Expired,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
)

STATUS_OF: dict[type[CoreError], Status] = {
    InvalidArgument: Status.INVALID_ARGUMENT,
    AlreadyExists: Status.ALREADY_EXISTS,
    NotJoined: Status.FAILED_PRECONDITION,
    LimitExceeded: Status.RESOURCE_EXHAUSTED,
    PermissionDenied: Status.PERMISSION_DENIED,
    Expired: Status.FAILED_PRECONDITION,
}


# A rule may quote what the client sent (an unknown operation, the identity a stream is bound
# to), and the message travels in the trailers, percent-encoded: up to 12 bytes a character.
# Unbounded, it outgrows what a peer accepts (h2's default header list limit is 64 KiB; over
# it a grpclib client drops the whole connection, other calls included; grpcio's is 8 KiB).
MAX_MESSAGE = 512  # characters: at most 6 KiB of trailer


def to_grpc(error: CoreError, fields: Mapping[str, str]) -> GRPCError:
    """A status whose message names the wire field (``fields`` maps core names) and the rule."""
    status = next(
        (code for cls, code in STATUS_OF.items() if isinstance(error, cls)), Status.INTERNAL
    )
    message = f"{fields.get(error.field, error.field)}: {error.rule}"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return GRPCError(status, message)
