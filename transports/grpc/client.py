"""Async clients that survive their connection: reconnect with backoff, resume, re-send.

    async with ChatClient("127.0.0.1", 50051, user="ann") as chat:
        await chat.join("lobby")
        await chat.send("lobby", "hi")
        async for message in chat:          # core RoomMessage objects, no gap, no duplicate
            ...

``ChatClient``, ``EditClient`` and ``GameClient`` are the runtime's transport-neutral clients
(``interplay.runtime.clients``: one reconnect loop, ``interplay.runtime.reconnect``, around the
core's rules: ``ClientRooms``, ``ClientEditor``, ``ClientPlayer``; ``Backoff`` for the waits)
over gRPC. This module supplies only the wire: ``GrpcTransport`` opens a call with grpclib and
converts with ``codec``. When a call fails with a transient status (UNAVAILABLE,
RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED) or its connection breaks, the client waits
(gRPC's connection backoff: 1 s, times 1.6, ±20 %, cap 120 s), opens a new call and sends what
re-establishes it: rejoins from the last seq or revision, and re-sends what was not
acknowledged under its id (chat) or op id (editing), or sequence (games), which the server
recognises. Any other status is fatal: iteration and later calls raise it (a ``GRPCError``),
and the client is CLOSED.

Nothing is dropped: sends wait while the transport is full, and when the application reads
slower than messages arrive the reader stops reading, so HTTP/2 flow control (and, past the
server's drain timeout, a slow-consumer disconnect and resume) holds the rest back.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from grpclib.client import Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from interplay.core.edit_client import DocumentChange
from interplay.runtime.clients import ReconnectingChat, ReconnectingEditor, ReconnectingPlayer
from interplay.runtime.reconnect import CallError, ConnectionState, unrecoverable

from . import codec
from .data_frames import Channel
from .generated import chat_pb2 as pb

__all__ = ["ChatClient", "ConnectionState", "DocumentChange", "EditClient", "GameClient"]

Request = TypeVar("Request")
Reply = TypeVar("Reply")

# A bearer token, or a callable returning a fresh one for each connect (sync or async).
Token = str | Callable[[], str | Awaitable[str]] | None

# What a broken or unreachable connection raises in grpclib (and asyncio): UNAVAILABLE.
_BROKEN = (StreamTerminatedError, ConnectionError, OSError)


class _GrpcCall:
    """One bidi call on its own channel, driven through raw ``channel.request`` (the generated
    betterproto2 bidi stub does not await its sending task: betterproto2#182)."""

    def __init__(
        self, channel: Channel, stream: Stream[Any, Any], transport: GrpcTransport[Any, Any]
    ) -> None:
        self._channel, self._stream, self._transport = channel, stream, transport
        self._heard = False  # the server has sent a message on this call

    async def send(self, message: Any) -> None:
        try:
            await self._stream.send_message(message)
        except (GRPCError, *_BROKEN) as exc:
            raise await self._classified(exc) from exc

    async def recv(self) -> Any:
        try:
            message = await self._stream.recv_message()
            if message is None:
                self._stream._maybe_raise()  # a status other than OK in the trailers
        except (GRPCError, *_BROKEN) as exc:
            raise await self._classified(exc) from exc
        self._heard = True
        return message

    async def _classified(self, exc: BaseException) -> CallError:
        """The failure; before the server said anything, perhaps one no retry can cure."""
        failure = self._failure(exc)
        if self._heard:
            return failure
        return await self._transport._connect_failure(failure, exc)

    async def end(self) -> None:
        try:
            await self._stream.end()
        except Exception as exc:  # e.g. h2's StreamClosedError (grpclib#117): it ended
            raise CallError("UNAVAILABLE", str(exc)) from exc

    async def close(self) -> None:
        self._channel.close()

    def _failure(self, exc: BaseException) -> CallError:
        if isinstance(exc, StreamTerminatedError):
            # When the trailers came before the reset, the status is the failure (the
            # messages in between may be lost with the RST_STREAM; the resume recovers them).
            try:
                self._stream._maybe_raise()
            except GRPCError as status:
                exc = status
        if isinstance(exc, GRPCError):
            error = CallError(exc.status.name, exc.message or "")
        else:
            error = CallError("UNAVAILABLE", str(exc) or type(exc).__name__)
        error.__cause__ = exc
        return error


class GrpcTransport(Generic[Request, Reply]):
    """The runtime's ``Transport`` over grpclib: one bidi call per connection, on its own
    channel; ``encode``/``decode`` are ``codec``'s conversions for the RPC."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        path: str,
        request_type: Any,
        reply_type: Any,
        encode: Callable[[Request], Any],
        decode: Callable[[Any], Reply | None],
        token: Token = None,
        ssl: ssl.SSLContext | bool | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._path, self._request_type, self._reply_type = path, request_type, reply_type
        self.encode, self.decode = encode, decode
        self._token = token
        self._ssl = ssl

    async def _metadata(self) -> dict[str, str] | None:
        """The call's metadata: a bearer token, fresh from the callable if it is one."""
        token = self._token
        if callable(token):
            token = token()
            if inspect.isawaitable(token):
                token = await token
        return {"authorization": f"Bearer {token}"} if token else None

    async def connect(self) -> _GrpcCall:
        channel = Channel(self.host, self.port, ssl=self._ssl)
        stream = channel.request(
            self._path,
            Cardinality.STREAM_STREAM,
            self._request_type,
            self._reply_type,
            metadata=await self._metadata(),
        )
        call = _GrpcCall(channel, stream, self)
        try:
            await stream.__aenter__()
            await stream.send_request()  # before any receive (grpclib raises otherwise)
        except (GRPCError, *_BROKEN) as exc:
            channel.close()
            raise await self._connect_failure(call._failure(exc), exc) from exc
        except BaseException:
            channel.close()
            raise
        return call

    async def _connect_failure(self, failure: CallError, exc: BaseException) -> CallError:
        """``failure``, or what no retry can cure (``unrecoverable``)."""
        dropped = isinstance(exc, StreamTerminatedError | ConnectionError)
        return await unrecoverable(
            failure, exc, host=self.host, port=self.port, tls=bool(self._ssl), dropped=dropped
        )

    def fatal(self, error: CallError) -> Exception:
        """What the caller sees: grpclib's ``GRPCError`` with the status."""
        cause = error.__cause__
        if isinstance(cause, GRPCError):
            return cause
        return GRPCError(Status[error.status], error.message)


def _options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The caller's options: (the transport's, the runtime loop's)."""
    transport = {key: options.pop(key) for key in ("token", "ssl") if key in options}
    return transport, options


class ChatClient(ReconnectingChat):
    """Chat: rooms, TEXTs re-sent until acknowledged; messages arrive as ``RoomMessage``.

    Options: ``token`` (a string, or a callable returning a fresh token for each connect),
    ``ssl``, ``backoff`` (a ``BackoffPolicy``), ``random_source``,
    ``inbox_size``, ``on_state``."""

    error: GRPCError | None

    def __init__(self, host: str, port: int, *, user: str, **options: Any) -> None:
        wire, loop = _options(options)
        transport = GrpcTransport(
            host,
            port,
            path="/chat.ChatService/Chat",
            request_type=pb.ChatMessage,
            reply_type=pb.ChatMessage,
            encode=lambda request: codec.chat_request(request, user),
            decode=codec.room_message,
            **wire,
        )
        self.host, self.port = host, port
        super().__init__(transport, user=user, **loop)


class EditClient(ReconnectingEditor):
    """One document through the core's ``ClientEditor`` (ot.js client, undo and redo); the
    same options as ``ChatClient``."""

    error: GRPCError | None

    def __init__(self, host: str, port: int, *, user: str, document: str, **options: Any):
        wire, loop = _options(options)
        transport = GrpcTransport(
            host,
            port,
            path="/chat.ChatService/CollaborativeEdit",
            request_type=pb.EditOperation,
            reply_type=pb.EditOperation,
            encode=codec.edit_request,
            decode=codec.edit_reply,
            **wire,
        )
        self.host, self.port = host, port
        super().__init__(transport, user=user, document=document, **loop)


class GameClient(ReconnectingPlayer):
    """One player in one match (``match`` empty: the default one); the same options as
    ``ChatClient``."""

    error: GRPCError | None

    def __init__(self, host: str, port: int, *, player: str, match: str = "", **options: Any):
        wire, loop = _options(options)
        transport = GrpcTransport(
            host,
            port,
            path="/chat.ChatService/GameSync",
            request_type=pb.GameAction,
            reply_type=pb.GameState,
            encode=codec.game_request,
            decode=codec.state_update,
            **wire,
        )
        self.host, self.port = host, port
        super().__init__(transport, player=player, match=match, **loop)
