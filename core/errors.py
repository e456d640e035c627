"""One error family for the core.

Every error names the offending ``field`` and the ``rule`` it broke, so an adapter can pass a
precise message to the peer. All of them mean *the caller* (the client behind a stream) broke a
rule; the core's state is unchanged when one is raised. Adapters map the class to a status
(gRPC: ``transports/grpc/errors.py``), never the message text.
"""


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
    """The command claims an identity other than the one bound to the stream."""


class Expired(CoreError):
    """What the command refers to is no longer kept (a compacted revision): start over."""
