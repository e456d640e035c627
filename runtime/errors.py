"""Wire-neutral reasons a session ends, beside the core's ``CoreError``s.

Each transport maps these, and every ``CoreError``, to its own vocabulary with one table
(gRPC: ``transports/grpc/errors.py``). ``message`` is what the client is told.
"""

from __future__ import annotations


class SessionError(Exception):
    """A session ended by the runtime, not by a rule of a message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(SessionError):
    """No valid bearer token: refused before anything is read."""


class ShuttingDown(SessionError):
    """The server drains: what was queued has been flushed; reconnect elsewhere and resume."""

    def __init__(self, message: str = "server shutting down: reconnect and resume") -> None:
        super().__init__(message)


class SlowConsumer(SessionError):
    """The receiver read too slowly for too long; it reconnects and resumes by seq/revision."""


class StorageFailed(SessionError):
    """The backend refused or failed a write: nothing after it was delivered; resume."""


class AdminDisconnect(SessionError):
    """The server's own backend ended the user's sessions (the admin API's Disconnect), not
    to come back: the client surfaces it and does not reconnect."""


class AdminDisconnectResume(SessionError):
    """The same, asking the client to reconnect and resume (the reason says why)."""


def admin_disconnect(reason: str, *, reconnect: bool) -> SessionError:
    """The error the admin API's Disconnect ends a session with (on whichever node it is)."""
    told = f"disconnected by the server: {reason or 'no reason given'}"
    if reconnect:
        return AdminDisconnectResume(f"{told}; reconnect and resume")
    return AdminDisconnect(told)


class PeerGone(Exception):
    """Raised by a transport's ``send`` when the peer is gone: the writer stops quietly."""
