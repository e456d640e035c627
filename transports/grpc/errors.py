"""The one translation table: core and runtime errors -> gRPC status (a call's end, or the
code of one refused message's rejection)."""

from __future__ import annotations

from collections.abc import Mapping

from grpclib.const import Status

from interplay.core.errors import (
    AlreadyExists,
    CoreError,
    Expired,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
)
from interplay.runtime.errors import (
    AdminDisconnect,
    AdminDisconnectResume,
    SessionError,
    ShuttingDown,
    SlowConsumer,
    StorageFailed,
    Unauthenticated,
)

STATUS_OF: dict[type[Exception], Status] = {
    InvalidArgument: Status.INVALID_ARGUMENT,
    AlreadyExists: Status.ALREADY_EXISTS,
    NotJoined: Status.FAILED_PRECONDITION,
    LimitExceeded: Status.RESOURCE_EXHAUSTED,
    PermissionDenied: Status.PERMISSION_DENIED,
    Expired: Status.ABORTED,  # transient: the client joins again and rebases its edits
    Unauthenticated: Status.UNAUTHENTICATED,
    ShuttingDown: Status.UNAVAILABLE,
    SlowConsumer: Status.RESOURCE_EXHAUSTED,
    StorageFailed: Status.UNAVAILABLE,
    # The admin API's Disconnect: PERMISSION_DENIED is fatal to our clients (they surface it
    # and stop); UNAVAILABLE makes them reconnect and resume.
    AdminDisconnect: Status.PERMISSION_DENIED,
    AdminDisconnectResume: Status.UNAVAILABLE,
}


# A rule may quote what the client sent (an unknown operation, the identity a stream is bound
# to), and the message travels in the trailers, percent-encoded: up to 12 bytes a character.
# Unbounded, it outgrows what a peer accepts (h2's default header list limit is 64 KiB; over
# it a grpclib client drops the whole connection, other calls included; grpcio's is 8 KiB).
MAX_MESSAGE = 512  # characters: at most 6 KiB of trailer


def status_for(error: BaseException) -> Status:
    """The status of a core or runtime error (INTERNAL for one the table does not name)."""
    status = next((code for cls, code in STATUS_OF.items() if isinstance(error, cls)), None)
    return Status.INTERNAL if status is None else status


def clip(message: str) -> str:
    """``message``, cut to ``MAX_MESSAGE`` characters."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def status_of(error: BaseException, fields: Mapping[str, str]) -> tuple[Status, str] | None:
    """The status and message for a core or runtime error (the core's field names mapped to
    the wire's with ``fields``); None for anything else."""
    if isinstance(error, CoreError):
        message = f"{fields.get(error.field, error.field)}: {error.rule}"
    elif isinstance(error, SessionError):
        message = error.message
    else:
        return None
    return status_for(error), clip(message)
