"""interplay's domain core: pure, sans-I/O state machines.

Commands in, events out. Nothing here imports asyncio, anyio, grpclib or generated protobuf
code, reads a clock or sleeps: time, when it matters, is an argument (``now``), and storage is
effects: hubs say what they need read and what they wrote (``interplay.core.effects``); the
runtime performs them on a backend.
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
    DocumentStatistics,
    EditDocument,
    MoveCursor,
    OpenDocument,
    Piece,
    Remote,
    Snapshot,
)
from .edit_client import ClientEditor
from .effects import (
    AppendMessage,
    CreateRoom,
    DocumentRecord,
    LoadDocument,
    LoadedRoom,
    LoadRoom,
    Read,
    ReadHistory,
    RoomRecord,
    SaveEdit,
    StoredEdit,
    TrimRoom,
    Write,
)
from .errors import (
    AlreadyExists,
    CoreError,
    InvalidArgument,
    LimitExceeded,
    NotJoined,
    PermissionDenied,
    Refused,
    Rejection,
    WrongIdentity,
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
from .rate import TokenBucket
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

__all__ = [
    "Acked",
    "Act",
    "Action",
    "AlreadyExists",
    "AppendMessage",
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
    "CreateRoom",
    "CursorMoved",
    "Deliver",
    "Disconnect",
    "DocumentHub",
    "DocumentLimits",
    "DocumentRecord",
    "DocumentStatistics",
    "EditDocument",
    "EndSession",
    "GameEvent",
    "GameLimits",
    "GameLoop",
    "GameMirror",
    "GameSettings",
    "InvalidArgument",
    "Join",
    "JoinMatch",
    "Kind",
    "LatestState",
    "Leave",
    "LeaveMatch",
    "LimitExceeded",
    "LoadDocument",
    "LoadRoom",
    "LoadedRoom",
    "MatchHub",
    "MoveCursor",
    "NotJoined",
    "OpenDocument",
    "PermissionDenied",
    "Piece",
    "PlayerState",
    "Post",
    "Read",
    "ReadHistory",
    "Refused",
    "Rejection",
    "Remote",
    "RoomHub",
    "RoomMessage",
    "RoomRecord",
    "Rules",
    "SaveEdit",
    "Signal",
    "Snapshot",
    "StoredEdit",
    "TickReady",
    "TickState",
    "TokenBucket",
    "TrimRoom",
    "Typing",
    "World",
    "Write",
    "WrongIdentity",
]
