"""The transport conformance suite: every RPC behaviour of DESIGN §4, on your transport.

    from interplay.testing.transport import TransportConformance

    class TestMyTransport(TransportConformance):
        @asynccontextmanager
        async def listen(self, server, *, one_connection_per_call):
            ...   # serve server.runtime; yield connect(rpc, small_buffers=False) -> Wire

pytest runs every check on ``TestMyTransport`` (only ``Test*`` classes are collected: the
classes here run nothing by themselves). ``ChatConformance``, ``EditConformance`` and
``GameConformance`` are the three RPCs' checks alone, for a transport that carries fewer.

What you implement (``Transport.listen``): serve the ``Runtime`` at ``server.runtime`` the way
your transport does (interplay's transports hand each call to ``Runtime.serve``), and yield
a ``Connect``: ``connect(rpc)`` opens one call of ``"chat"``, ``"edit"`` or ``"game"`` as an
async context manager giving a ``Wire`` (``send``, ``recv``, ``end``; see ``calls.Wire``)
that carries the proto's messages as the generated classes of
``interplay.transports.grpc.generated.chat``. Everything the checks do on top (timeouts, the
chat shorthands, the editing and game clients) is ``calls``'s, written once. Override
``open_backend`` to run the server under test on another backend than a fresh
``MemoryBackend``.
"""

from .base import Transport
from .calls import Call, CallEnded, ChatCall, EditClient, Ended, GameClient, Wire
from .chat import ChatConformance
from .edit import EditConformance
from .game import GameConformance
from .server import Connect, Rpc, ServerUnderTest


class TransportConformance(ChatConformance, EditConformance, GameConformance):
    """Every check of the three RPCs; subclass it as ``Test<YourTransport>``."""


__all__ = [
    "Call",
    "CallEnded",
    "ChatCall",
    "ChatConformance",
    "Connect",
    "EditClient",
    "EditConformance",
    "Ended",
    "GameClient",
    "GameConformance",
    "Rpc",
    "ServerUnderTest",
    "Transport",
    "TransportConformance",
    "Wire",
]
