"""interplay's transport-neutral server runtime (DESIGN §8).

Sessions, their outboxes, fan-out, backpressure, rate shaping, deadlines, the tick driver,
drain and auth live here once, under every transport. Nothing here imports a wire library
(grpclib, h2, protobuf, betterproto2, websockets): a transport adapter does only wire work.
"""

from .admin import Admin, HistoryPage, MatchInfo
from .auth import AdminAuthenticator, Authenticator, Identity
from .backend import Backend, WriteConflict
from .errors import (
    AdminDisconnect,
    AdminDisconnectResume,
    PeerGone,
    SessionError,
    ShuttingDown,
    SlowConsumer,
    StorageFailed,
    Unauthenticated,
)
from .jwks import JwksKeys, KeySetUnavailable
from .outbox import Codec
from .server import Counters, Runtime, Service, Session, Statistics
from .settings import Settings

__all__ = [
    "Admin",
    "AdminAuthenticator",
    "AdminDisconnect",
    "AdminDisconnectResume",
    "Authenticator",
    "Backend",
    "Codec",
    "Counters",
    "HistoryPage",
    "Identity",
    "JwksKeys",
    "KeySetUnavailable",
    "MatchInfo",
    "PeerGone",
    "Runtime",
    "Service",
    "Session",
    "SessionError",
    "Settings",
    "ShuttingDown",
    "SlowConsumer",
    "Statistics",
    "StorageFailed",
    "Unauthenticated",
    "WriteConflict",
]
