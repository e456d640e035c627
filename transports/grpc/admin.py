"""``interplay.admin.v1.AdminService`` over grpclib: wire work only, around ``runtime.admin``.

Each unary call: read the request, authorize the call's ``authorization`` metadata, convert
(``codec.py``), call the runtime's admin surface, answer; a refusal ends the call with the
status ``errors.py`` maps it to, naming the field and the rule. The messages are betterproto2's
(no call here is on a hot path). The service's descriptors come from ``admin_pb2``, imported
for server reflection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from grpclib.const import Cardinality, Handler
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from interplay.runtime.server import Runtime

from . import codec, errors
from .generated import admin_pb2  # noqa: F401 (registers the descriptors reflection serves)
from .generated.interplay.admin import v1 as admin

SERVICE = "interplay.admin.v1.AdminService"
DEFAULT_HISTORY_PAGE = 100


class AdminService:
    """Serves ``interplay.admin.v1.AdminService``; ``__mapping__`` is grpclib's IServable."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.admin = runtime.admin

    def __mapping__(self) -> dict[str, Handler]:
        calls: list[tuple[str, Callable[[Any], Awaitable[Any]], type, type]] = [
            ("Publish", self._publish, admin.PublishRequest, admin.PublishReply),
            ("Presence", self._presence, admin.PresenceRequest, admin.PresenceReply),
            ("History", self._history, admin.HistoryRequest, admin.HistoryReply),
            ("Disconnect", self._disconnect, admin.DisconnectRequest, admin.DisconnectReply),
            (
                "DeleteHistory",
                self._delete_history,
                admin.DeleteHistoryRequest,
                admin.DeleteHistoryReply,
            ),
            ("Snapshot", self._snapshot, admin.SnapshotRequest, admin.SnapshotReply),
            ("Matches", self._matches, admin.MatchesRequest, admin.MatchesReply),
        ]
        return {
            f"/{SERVICE}/{name}": Handler(
                self._unary(call), Cardinality.UNARY_UNARY, request, reply
            )
            for name, call, request, reply in calls
        }

    def _unary(
        self, call: Callable[[Any], Awaitable[Any]]
    ) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        async def handle(stream: Stream[Any, Any]) -> None:
            request = await stream.recv_message()
            try:
                self.admin.authorize((stream.metadata or {}).get("authorization"))
                reply = await call(request)
            except Exception as error:
                mapped = errors.status_of(error, codec.ADMIN_FIELDS)
                if mapped is None:
                    raise
                status, message = mapped
                self.runtime.count_error(status.name)
                raise GRPCError(status, message) from None
            await stream.send_message(reply)

        return handle

    async def _publish(self, request: admin.PublishRequest) -> admin.PublishReply:
        published = await self.admin.publish(
            request.room,
            request.content,
            sender=request.sender,
            kind=codec.admin_kind(int(request.type)),
            id=request.id,
        )
        return admin.PublishReply(
            message=codec.admin_message(published.message), duplicate=published.duplicate
        )

    async def _presence(self, request: admin.PresenceRequest) -> admin.PresenceReply:
        return admin.PresenceReply(users=self.admin.presence(request.room))

    async def _history(self, request: admin.HistoryRequest) -> admin.HistoryReply:
        page = await self.admin.history(
            request.room,
            after_seq=request.after_seq,
            limit=request.limit or DEFAULT_HISTORY_PAGE,
        )
        return admin.HistoryReply(
            messages=[codec.admin_message(m) for m in page.messages],
            epoch=page.epoch,
            head=page.head,
        )

    async def _disconnect(self, request: admin.DisconnectRequest) -> admin.DisconnectReply:
        streams = await self.admin.disconnect(
            request.user, request.reason, reconnect=request.reconnect
        )
        return admin.DisconnectReply(streams=streams)

    async def _delete_history(
        self, request: admin.DeleteHistoryRequest
    ) -> admin.DeleteHistoryReply:
        deleted = await self.admin.delete_history(request.room, user=request.user)
        return admin.DeleteHistoryReply(
            removed=deleted.removed, epoch=deleted.epoch, head=deleted.head
        )

    async def _snapshot(self, request: admin.SnapshotRequest) -> admin.SnapshotReply:
        snapshot = await self.admin.snapshot(request.document)
        return admin.SnapshotReply(text=snapshot.text, revision=snapshot.revision)

    async def _matches(self, request: admin.MatchesRequest) -> admin.MatchesReply:
        return admin.MatchesReply(
            matches=[
                admin.Match(match=m.match, tick=m.tick, players=m.players)
                for m in self.admin.matches()
            ]
        )
