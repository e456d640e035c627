"""interplay's transport-neutral server runtime (DESIGN §8).

Sessions, their outboxes, fan-out, backpressure, rate shaping, deadlines, the tick driver,
drain and auth live here once, under every transport. Nothing here imports a wire library
(grpclib, h2, protobuf, betterproto2, websockets): a transport adapter does only wire work.
"""

from .auth import Authenticator, Identity
from .backend import Backend, WriteConflict
from .errors import (
    PeerGone,
    SessionError,
    ShuttingDown,
    SlowConsumer,
    StorageFailed,
    Unauthenticated,
)
from .outbox import Codec
from .server import Counters, Runtime, Service, Session, Statistics
from .settings import Settings

__all__ = [
    "Authenticator",
    "Backend",
    "Codec",
    "Counters",
    "Identity",
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
