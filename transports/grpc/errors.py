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


def to_grpc(error: CoreError, fields: Mapping[str, str]) -> GRPCError:
    """A status whose message names the wire field (``fields`` maps core names) and the rule."""
    status = next(
        (code for cls, code in STATUS_OF.items() if isinstance(error, cls)), Status.INTERNAL
    )
    return GRPCError(status, f"{fields.get(error.field, error.field)}: {error.rule}")
