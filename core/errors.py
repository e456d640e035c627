"""One error family for the core.

Every error names the offending ``field`` and the ``rule`` it broke, so an adapter can pass a
precise message to the peer. All of them mean *the caller* (the client behind a stream) broke a
rule; the core's state is unchanged when one is raised. Adapters map the class to a status
(gRPC: ``transports/grpc/errors.py``), never the message text.

``Refused`` and ``Rejection`` are the other direction: what a client is told of a message the
server refused.
"""

from __future__ import annotations

from dataclasses import dataclass


class CoreError(Exception):
    """Base class; never raised itself."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class InvalidArgument(CoreError):
    """A malformed value: too long, negative, out of range, unknown."""


class NotJoined(CoreError):
    """The command needs a membership (room, document, match) the stream does not have."""


class AlreadyExists(CoreError):
    """What the command creates exists already (a player id taken in a match)."""


class LimitExceeded(CoreError):
    """A configured limit was hit: rate, count."""


class PermissionDenied(CoreError):
    """The command is not allowed: outside what the stream's token grants, or another match
    than the stream plays in. The message is refused; the stream goes on."""


class WrongIdentity(PermissionDenied):
    """The command claims another identity than the one bound to the stream: a fault of the
    stream, not of one message (DESIGN §4 "Errors"), so it ends the stream."""


class Expired(CoreError):
    """What the command refers to is no longer kept (a compacted revision): start over."""


class Refused(CoreError):
    """The server refused one of this client's messages (a client-side error): ``code`` is
    the status name the server gave (e.g. "FAILED_PRECONDITION"), ``id`` names the message
    (a TEXT's id, an edit's op id, an action's sequence). It is never re-sent."""

    def __init__(self, code: str, field: str, rule: str, *, id: str = "") -> None:
        super().__init__(field, rule)
        self.code = code
        self.id = id
        self.args = (f"{code} {field}: {rule}",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why the server refused a message, as a client receives it (``Refused`` raises it)."""

    code: str  # a status name: "INVALID_ARGUMENT", "FAILED_PRECONDITION", ...
    field: str
    rule: str

    def error(self, id: str = "") -> Refused:
        return Refused(self.code, self.field, self.rule, id=id)
