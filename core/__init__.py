"""interplay's domain core: pure, sans-I/O state machines.

Commands in, events out. Nothing here imports asyncio, anyio, grpclib or generated protobuf
code, reads a clock or sleeps: time, when it matters, is an argument (``now``), and storage is
an object passed in that implements a protocol declared here (``interplay.core.store``).
"""

from .buffer import BackpressureBuffer, BufferStatistics, Signal
from .errors import (
    CoreError,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
)
from .rooms import (
    ChatLimits,
    Deliver,
    Disconnect,
    Join,
    Kind,
    Leave,
    Post,
    RoomHub,
    RoomMessage,
    Typing,
)
from .store import HistoryStore, RoomRecord

__all__ = [
    "BackpressureBuffer",
    "BufferStatistics",
    "ChatLimits",
    "CoreError",
    "Deliver",
    "Disconnect",
    "HistoryStore",
    "InvalidArgument",
    "Join",
    "Kind",
    "Leave",
    "LimitExceeded",
    "NotJoined",
    "PermissionDenied",
    "Post",
    "RoomHub",
    "RoomMessage",
    "RoomRecord",
    "Signal",
    "Typing",
]
