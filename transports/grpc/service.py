"""``chat.ChatService`` over grpclib: wire work only, around ``interplay.runtime``.

Each call is one runtime session. This module maps the three RPCs to grpclib handlers
(``__mapping__``), takes the bearer token from the call's metadata, reads messages with a size
check on the length prefix (``framing.recv_message``), writes what the runtime hands it in one
HTTP/2 write (``framing.send_many``; ``framing.send_now`` when it need not wait), and ends the
call with the status ``errors.py`` maps the session's end to. Everything else (outboxes,
fan-out, backpressure, rate shaping, deadlines, ticks, drain) is the runtime's.

A drain ends each call with UNAVAILABLE "server shutting down" *without* grpclib's RST_STREAM,
after which a grpclib client would drop what it had not read yet (``framing.end_without_reset``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.check import ServiceStatus
from grpclib.server import Stream
from h2.exceptions import StreamClosedError

from interplay.runtime.errors import PeerGone, ShuttingDown
from interplay.runtime.outbox import Codec
from interplay.runtime.server import Counters, Runtime, Service

from . import codec, errors
from .framing import end_without_reset, read_ahead, recv_message, send_many, send_now
from .generated import chat_pb2 as pb
from .lean import slim

# Checked on the length prefix, before the body is read (framing.recv_message). Above the
# largest valid message: 64 Ki inserted code points are up to 256 KiB of UTF-8.
MAX_MESSAGE_BYTES = 1024 * 1024

log = logging.getLogger("interplay.service")

_FIELDS: dict[Service, Mapping[str, str]] = {
    Service.CHAT: codec.CHAT_FIELDS,
    Service.EDIT: codec.EDIT_FIELDS,
    Service.GAME: codec.GAME_FIELDS,
}


def _peer(stream: Stream[Any, Any]) -> str:
    """The client's address, for the log."""
    try:
        addr = stream.peer.addr()
    except Exception:  # no transport (an in-memory test channel)
        return "?"
    return f"{addr[0]}:{addr[1]}" if addr else "?"


class ChatService:
    """Serves ``chat.ChatService``; ``__mapping__`` is grpclib's IServable protocol."""

    def __init__(self, runtime: Runtime, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.runtime = runtime
        self.max_message_bytes = max_message_bytes
        self._codecs: dict[Service, Codec] = codec.wire_codecs(runtime)
        # The health check of chat.ChatService (server.py serves it): NOT_SERVING once draining.
        self.serving = ServiceStatus()
        self.serving.set(True)

    @property
    def counters(self) -> Counters:
        return self.runtime.counters

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/chat.ChatService/Chat": Handler(
                self._chat, Cardinality.STREAM_STREAM, pb.ChatMessage, pb.ChatMessage
            ),
            "/chat.ChatService/CollaborativeEdit": Handler(
                self._edit, Cardinality.STREAM_STREAM, pb.EditOperation, pb.EditOperation
            ),
            "/chat.ChatService/GameSync": Handler(
                self._game, Cardinality.STREAM_STREAM, pb.GameAction, pb.GameState
            ),
        }

    async def _chat(self, stream: Stream[Any, Any]) -> None:
        await self._serve(stream, Service.CHAT)

    async def _edit(self, stream: Stream[Any, Any]) -> None:
        await self._serve(stream, Service.EDIT)

    async def _game(self, stream: Stream[Any, Any]) -> None:
        await self._serve(stream, Service.GAME)

    async def _serve(self, stream: Stream[Any, Any], service: Service) -> None:
        runtime = self.runtime
        max_bytes = self.max_message_bytes
        slim(stream)  # before read_ahead: its acknowledger reads the new queue
        read_ahead(stream)

        async def receive() -> Any:
            return await recv_message(stream, max_bytes)

        async def send(frames: list[bytes]) -> None:
            try:
                await send_many(stream, frames)
            except (StreamTerminatedError, StreamClosedError):
                raise PeerGone() from None

        def send_at_once(frames: list[bytes]) -> bool:
            try:
                return send_now(stream, frames)
            except (StreamTerminatedError, StreamClosedError):
                raise PeerGone() from None

        peer = _peer(stream)
        if log.isEnabledFor(logging.DEBUG):  # one line per call, never per message
            log.debug("%s call from %s", service.value, peer)
        try:
            identity = await runtime.authenticate((stream.metadata or {}).get("authorization"))
            await runtime.serve(
                service,
                self._codecs[service],
                receive,
                send,
                identity=identity,
                connection=stream._stream.connection,  # one HTTP/2 connection: one budget
                send_now=send_at_once,
            )
            log.debug("%s call from %s ended OK", service.value, peer)
        except BaseException as error:
            task = asyncio.current_task()  # grpclib is asyncio-only
            if isinstance(error, asyncio.CancelledError | BaseExceptionGroup) or (
                task and task.cancelling()
            ):
                # grpclib cancelled the call (the client reset it, or a deadline), perhaps
                # while the session was ending with a status: the cancellation wins, as
                # grpclib expects; no one is left to receive the status.
                raise asyncio.CancelledError() from None
            if isinstance(error, GRPCError):  # framing's: a malformed or oversized message
                runtime.count_error(error.status.name)
                raise
            mapped = errors.status_of(error, _FIELDS[service])
            if mapped is None:
                raise
            status, message = mapped
            runtime.count_error(status.name)
            log.debug("%s call from %s ended %s %s", service.value, peer, status.name, message)
            if isinstance(error, ShuttingDown):  # flushed; now send the client elsewhere
                with contextlib.suppress(StreamTerminatedError):
                    await end_without_reset(stream, Status.UNAVAILABLE, message)
                return
            raise GRPCError(status, message) from None

    # -- drain: the server's part; the runtime does the rest -----------------------------

    def shutdown(self) -> None:
        """NOT_SERVING, and every session stops reading, flushes and ends (UNAVAILABLE)."""
        self.serving.set(False)
        self.runtime.shutdown()

    async def wait_closed(self) -> None:
        await self.runtime.wait_closed()
