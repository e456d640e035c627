"""Async clients over WebSocket, with the same API as the gRPC ones.

    async with ChatClient("127.0.0.1", 8080, user="ann") as chat:
        await chat.join("lobby")
        await chat.send("lobby", "hi")
        async for message in chat:          # core RoomMessage objects, no gap, no duplicate
            ...

``ChatClient``, ``EditClient`` and ``GameClient`` are the runtime's transport-neutral clients
(``interplay.runtime.clients``: one reconnect loop around the core's client rules) over a
``WebSocketTransport``: one WebSocket per call, protobuf frames by default (``subprotocol=
"interplay.v1.json"`` for JSON), the conversions of the gRPC package's ``codec``. A close with
4000 + n is gRPC status n, classified as for gRPC (transient: retry with backoff and resume;
else fatal, raised as ``CallError``); a lost connection and a drain (1012) are UNAVAILABLE.
"""

from __future__ import annotations

import inspect
import ssl as _ssl
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus
from websockets.typing import Subprotocol

from interplay.core.edit_client import DocumentChange
from interplay.runtime.clients import ReconnectingChat, ReconnectingEditor, ReconnectingPlayer
from interplay.runtime.reconnect import CallError, ConnectionState, unrecoverable
from interplay.runtime.server import Service
from interplay.transports.grpc import codec

from .codec import END, PROTO, REPLY, json_frame, parse
from .errors import status_of_close

__all__ = [
    "CallError",
    "ChatClient",
    "ConnectionState",
    "DocumentChange",
    "EditClient",
    "GameClient",
    "WebSocketTransport",
]

Request = TypeVar("Request")
Reply = TypeVar("Reply")

# A bearer token, or a callable returning a fresh one for each connect (sync or async).
Token = str | Callable[[], str | Awaitable[str]] | None

_PATHS = {Service.CHAT: "/chat", Service.EDIT: "/edit", Service.GAME: "/game"}


class _WebSocketCall:
    """One call: one WebSocket."""

    def __init__(self, ws: ClientConnection, subprotocol: str, reply_type: Any) -> None:
        self._ws, self._subprotocol, self._reply = ws, subprotocol, reply_type

    async def send(self, message: Any) -> None:
        frame = message.SerializeToString() if self._subprotocol == PROTO else json_frame(message)
        try:
            await self._ws.send(frame)
        except ConnectionClosed as closed:
            raise _failure(closed) from closed

    async def recv(self) -> Any:
        try:
            frame = await self._ws.recv()
        except ConnectionClosed as closed:
            status, message = status_of_close(_code(closed), _reason(closed))
            if status == "OK":
                return None
            raise CallError(status, message) from closed
        return parse(frame, self._subprotocol, self._reply)

    async def end(self) -> None:
        try:
            await self._ws.send(END)
        except ConnectionClosed as closed:
            raise _failure(closed) from closed

    async def close(self) -> None:
        await self._ws.close()


def _code(closed: ConnectionClosed) -> int | None:
    return closed.rcvd.code if closed.rcvd is not None else None


def _reason(closed: ConnectionClosed) -> str:
    return closed.rcvd.reason if closed.rcvd is not None else ""


def _failure(closed: ConnectionClosed) -> CallError:
    status, message = status_of_close(_code(closed), _reason(closed))
    if status == "OK":  # the server ended the call while we were still sending
        status, message = "UNAVAILABLE", message or "the server ended the call"
    return CallError(status, message)


class WebSocketTransport(Generic[Request, Reply]):
    """The runtime's ``Transport`` over one WebSocket per connection."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        service: Service,
        encode: Callable[[Request], Any],
        decode: Callable[[Any], Reply | None],
        token: Token = None,
        ssl: _ssl.SSLContext | bool | None = None,
        subprotocol: str = PROTO,
        max_message_bytes: int = 1024 * 1024,
    ) -> None:
        scheme = "wss" if ssl else "ws"
        self.host, self.port = host, port
        self.url = f"{scheme}://{_host(host)}:{port}{_PATHS[service]}"
        self.encode, self.decode = encode, decode
        self._reply = REPLY[service]
        self._token = token
        self._ssl = ssl if ssl else None
        self._subprotocol = subprotocol
        self._max_size = max_message_bytes

    async def _headers(self) -> dict[str, str] | None:
        """The handshake's headers: a bearer token, fresh from the callable if it is one."""
        token = self._token
        if callable(token):
            token = token()
            if inspect.isawaitable(token):
                token = await token
        return {"Authorization": f"Bearer {token}"} if token else None

    async def connect(self) -> _WebSocketCall:
        try:
            ws = await connect(
                self.url,
                subprotocols=[Subprotocol(self._subprotocol)],
                additional_headers=await self._headers(),
                ssl=self._ssl,
                max_size=self._max_size,
                open_timeout=10,
            )
        except InvalidStatus as refused:  # the server answered the handshake with an error
            body = refused.response.body.decode(errors="replace").strip()
            code = refused.response.status_code
            status = "UNAVAILABLE" if code >= 500 else "FAILED_PRECONDITION"
            raise CallError(status, f"HTTP {code}: {body}") from refused
        except (OSError, InvalidHandshake, TimeoutError) as error:
            failure = CallError("UNAVAILABLE", str(error) or type(error).__name__)
            cause = error.__cause__ if isinstance(error, InvalidMessage) else error
            raise await unrecoverable(
                failure,
                cause or error,
                host=self.host,
                port=self.port,
                tls=self._ssl is not None,
                dropped=isinstance(error, InvalidMessage | ConnectionResetError | EOFError),
            ) from error
        return _WebSocketCall(ws, self._subprotocol, self._reply)

    def fatal(self, error: CallError) -> Exception:
        """What the caller sees: the ``CallError`` with the status name and message."""
        return error


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The caller's options: (the transport's, the runtime loop's)."""
    names = ("token", "ssl", "subprotocol", "max_message_bytes")
    transport = {key: options.pop(key) for key in names if key in options}
    return transport, options


class ChatClient(ReconnectingChat):
    """Chat over WebSocket; the options of the gRPC ``ChatClient`` plus ``subprotocol``."""

    error: CallError | None

    def __init__(self, host: str, port: int, *, user: str, **options: Any) -> None:
        wire, loop = _options(options)
        transport: WebSocketTransport[Any, Any] = WebSocketTransport(
            host,
            port,
            service=Service.CHAT,
            encode=lambda request: codec.chat_request(request, user),
            decode=codec.room_message,
            **wire,
        )
        self.host, self.port = host, port
        super().__init__(transport, user=user, **loop)


class EditClient(ReconnectingEditor):
    """One document over WebSocket; the same options as ``ChatClient``."""

    error: CallError | None

    def __init__(self, host: str, port: int, *, user: str, document: str, **options: Any):
        wire, loop = _options(options)
        transport: WebSocketTransport[Any, Any] = WebSocketTransport(
            host,
            port,
            service=Service.EDIT,
            encode=codec.edit_request,
            decode=codec.edit_reply,
            **wire,
        )
        self.host, self.port = host, port
        super().__init__(transport, user=user, document=document, **loop)


class GameClient(ReconnectingPlayer):
    """One player in one match over WebSocket; the same options as ``ChatClient``."""

    error: CallError | None

    def __init__(self, host: str, port: int, *, player: str, match: str = "", **options: Any):
        wire, loop = _options(options)
        transport: WebSocketTransport[Any, Any] = WebSocketTransport(
            host,
            port,
            service=Service.GAME,
            encode=codec.game_request,
            decode=codec.state_update,
            **wire,
        )
        self.host, self.port = host, port
        super().__init__(transport, player=player, match=match, **loop)
