"""A transport-neutral test client for the three RPCs, for the conformance suite
(tests/transports/conformance). Each transport implements ``Transport.listen`` and a ``Wire``:
``grpc_transport`` for gRPC (not imported here: a test names its transports in one conftest)."""

from .calls import (
    Call,
    CallEnded,
    ChatCall,
    EditClient,
    Ended,
    GameClient,
    T,
    Wire,
    is_refusal,
    msg,
    rejected,
)
from .server import (
    Arena,
    ChatLimits,
    GameLimits,
    GameSettings,
    ServerUnderTest,
    Settings,
    serve,
)
from .transport import Transport

__all__ = [
    "Arena",
    "Call",
    "CallEnded",
    "ChatCall",
    "ChatLimits",
    "EditClient",
    "Ended",
    "GameClient",
    "GameLimits",
    "GameSettings",
    "ServerUnderTest",
    "Settings",
    "T",
    "Transport",
    "Wire",
    "is_refusal",
    "msg",
    "rejected",
    "serve",
]
