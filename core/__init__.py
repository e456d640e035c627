"""interplay's domain core: pure, sans-I/O state machines.

Commands in, events out. Nothing here imports asyncio, anyio, grpclib or generated protobuf
code, reads a clock or sleeps: time, when it matters, is an argument (``now``), and storage is
an object passed in that implements a protocol declared here (``interplay.core.store``).
"""

from .buffer import BackpressureBuffer, BufferStatistics, Signal
from .documents import (
    Acked,
    CloseSession,
    CursorMoved,
    DocumentHub,
    DocumentLimits,
    EditDocument,
    MoveCursor,
    OpenDocument,
    Piece,
    Remote,
    Snapshot,
)
from .errors import (
    CoreError,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
)
from .events import Deliver
from .rooms import (
    ChatLimits,
    Disconnect,
    Join,
    Kind,
    Leave,
    Post,
    RoomHub,
    RoomMessage,
    Typing,
)
from .store import DocumentStore, HistoryStore, RoomRecord

__all__ = [
    "Acked",
    "BackpressureBuffer",
    "BufferStatistics",
    "ChatLimits",
    "CloseSession",
    "CoreError",
    "CursorMoved",
    "Deliver",
    "Disconnect",
    "DocumentHub",
    "DocumentLimits",
    "DocumentStore",
    "EditDocument",
    "HistoryStore",
    "InvalidArgument",
    "Join",
    "Kind",
    "Leave",
    "LimitExceeded",
    "MoveCursor",
    "NotJoined",
    "OpenDocument",
    "PermissionDenied",
    "Piece",
    "Post",
    "Remote",
    "RoomHub",
    "RoomMessage",
    "RoomRecord",
    "Signal",
    "Snapshot",
    "Typing",
]
