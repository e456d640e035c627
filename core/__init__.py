"""interplay's domain core: pure, sans-I/O state machines.

Commands in, events out. Nothing here imports asyncio, anyio, grpclib or generated protobuf
code, reads a clock or sleeps: time, when it matters, is an argument (``now``), and storage is
an object passed in that implements a protocol declared here (``interplay.core.store``).
"""

from .arena import Arena
from .backoff import Backoff, BackoffPolicy
from .buffer import BackpressureBuffer, BufferStatistics, Signal
from .chat_client import ClientRooms
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
from .edit_client import ClientEditor
from .errors import (
    AlreadyExists,
    CoreError,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
)
from .events import Deliver
from .game import Action, GameEvent, GameLoop, GameMirror, PlayerState, Rules, TickState, World
from .game_client import ClientPlayer
from .latest import LatestState
from .matches import (
    Act,
    EndSession,
    GameLimits,
    GameSettings,
    JoinMatch,
    LeaveMatch,
    MatchHub,
    TickReady,
)
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
    "Act",
    "Action",
    "AlreadyExists",
    "Arena",
    "Backoff",
    "BackoffPolicy",
    "BackpressureBuffer",
    "BufferStatistics",
    "ChatLimits",
    "ClientEditor",
    "ClientPlayer",
    "ClientRooms",
    "CloseSession",
    "CoreError",
    "CursorMoved",
    "Deliver",
    "Disconnect",
    "DocumentHub",
    "DocumentLimits",
    "DocumentStore",
    "EditDocument",
    "EndSession",
    "GameEvent",
    "GameLimits",
    "GameLoop",
    "GameMirror",
    "GameSettings",
    "HistoryStore",
    "InvalidArgument",
    "Join",
    "JoinMatch",
    "Kind",
    "LatestState",
    "Leave",
    "LeaveMatch",
    "LimitExceeded",
    "MatchHub",
    "MoveCursor",
    "NotJoined",
    "OpenDocument",
    "PermissionDenied",
    "Piece",
    "PlayerState",
    "Post",
    "Remote",
    "RoomHub",
    "RoomMessage",
    "RoomRecord",
    "Rules",
    "Signal",
    "Snapshot",
    "TickReady",
    "TickState",
    "Typing",
    "World",
]
