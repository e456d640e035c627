"""The admin API, transport-neutral: what an application's own backend may do to a server.

Publish a message into a room (TEXT or SYSTEM, as a named sender, idempotent by id: members
receive it like any message, with its seq), see who is present, read a room's history by seq,
disconnect every session of a user, delete a room's history (or one user's messages in it),
read a document, list the running matches. Each call goes through the runtime, so it works
the same under every transport (and, with a shared engine, across nodes).

Every call is authorized first (``authorize``): an admin token (``AdminAuthenticator``: HS256
with the admin secret, audience ``interplay-admin``, an expiry) or ``Unauthenticated``; a
user's token is ``PermissionDenied``. Without an admin secret every call is refused.

Disconnect ends each session of the user with ``AdminDisconnect`` (the client does not retry;
gRPC PERMISSION_DENIED) or, with ``reconnect``, ``AdminDisconnectResume`` (it reconnects and
resumes; gRPC UNAVAILABLE), the reason in the message either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from interplay.core.documents import Snapshot
from interplay.core.effects import DocumentRecord, LoadDocument, LoadedRoom, LoadRoom, ReadHistory
from interplay.core.errors import InvalidArgument, PermissionDenied
from interplay.core.rooms import Deleted, DeleteHistory, Kind, Publish, Published, RoomMessage

from .auth import AdminAuthenticator, bearer_token
from .errors import Unauthenticated, admin_disconnect
from .outbox import Broadcast

if TYPE_CHECKING:
    from .server import Runtime

MAX_HISTORY_PAGE = 1000
MAX_REASON = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPage:
    """A room's stored messages with seq > ``after_seq``, oldest first, and where its stream
    stands: ``epoch``, ``head`` (empty and 0 for a room the server does not know)."""

    room: str
    epoch: str
    head: int
    messages: list[RoomMessage]


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchInfo:
    match: str
    tick: int
    players: list[str]


class Admin:
    """``runtime.admin``: the admin calls, each after ``authorize``."""

    def __init__(self, runtime: Runtime, auth: AdminAuthenticator | None) -> None:
        self._runtime = runtime
        self._auth = auth

    @property
    def enabled(self) -> bool:
        """Whether an admin secret is configured (else every call is refused)."""
        return self._auth is not None

    def authorize(self, header: str | None) -> None:
        """Nothing for an admin token; ``Unauthenticated`` for none or a bad one,
        ``PermissionDenied`` for a user's."""
        if self._auth is None:
            raise Unauthenticated("authorization: this server has no admin API (--admin-secret)")
        token = bearer_token(header)
        try:
            self._auth.verify(token)
        except jwt.InvalidTokenError as error:
            users = self._runtime.auth
            if users is not None and users.accepts(token):
                raise PermissionDenied(
                    "authorization", "a user's token does not authorize the admin API"
                ) from None
            raise Unauthenticated(f"authorization: {error}") from None
        self._runtime.counters.admin_calls += 1

    async def publish(
        self, room: str, content: str, *, sender: str, kind: Kind = Kind.TEXT, id: str = ""
    ) -> Published:
        """Store ``content`` in ``room`` as ``sender`` and deliver it to the members; returns
        once it is durable. A re-sent ``id`` (same sender) returns the original, stored once."""
        runtime = self._runtime
        command = Publish(room=room, sender=sender, content=content, kind=kind, id=id)
        if runtime.node is not None:
            return await runtime.node.publish(command)
        await runtime.read_for_rooms(command)
        published = runtime.rooms.publish(command, now=runtime.wall_clock())
        deliveries = [(d.to, Broadcast(d.message, 0)) for d in published.deliveries]
        await runtime.commit_durably(runtime.rooms.take_writes(), deliveries)
        return published

    def presence(self, room: str) -> list[str]:
        """The users in ``room`` now, sorted."""
        self._check_name("room", room)
        return self._runtime.rooms.members(room)

    async def history(self, room: str, *, after_seq: int = 0, limit: int = 100) -> HistoryPage:
        """Up to ``limit`` stored messages of ``room`` with seq > ``after_seq`` (page on with
        the last one's seq); none that has expired."""
        self._check_name("room", room)
        if after_seq < 0:
            raise InvalidArgument("after_seq", "must not be negative")
        if not 1 <= limit <= MAX_HISTORY_PAGE:
            raise InvalidArgument("limit", f"must be 1 to {MAX_HISTORY_PAGE}")
        runtime = self._runtime
        loaded = await runtime.read_durably(LoadRoom(room=room, recent=0))
        assert isinstance(loaded, LoadedRoom)
        if loaded.record is None:
            return HistoryPage(room=room, epoch="", head=0, messages=[])
        read = await runtime.read_durably(ReadHistory(room=room, after_seq=after_seq, limit=limit))
        messages = [m for m in read if isinstance(m, RoomMessage)] if isinstance(read, list) else []
        ttl = runtime.rooms.ttl
        if ttl is not None:
            cutoff = int((runtime.wall_clock() - ttl) * 1000)
            messages = [m for m in messages if m.timestamp >= cutoff]
        record = loaded.record
        return HistoryPage(room=room, epoch=record.epoch, head=record.head, messages=messages)

    async def disconnect(self, user: str, reason: str, *, reconnect: bool = False) -> int:
        """End every session of ``user`` (chat, edit, game; on any transport, and with a
        shared engine on every node), telling each ``reason``; how many there were."""
        self._check_name("user", user)
        if not user:
            raise InvalidArgument("user", "must not be empty")
        if len(reason) > MAX_REASON:
            raise InvalidArgument("reason", f"must be at most {MAX_REASON} characters")
        runtime = self._runtime
        if runtime.node is not None:
            return await runtime.node.disconnect_user(user, reason, reconnect=reconnect)
        return runtime.disconnect_user(user, admin_disconnect(reason, reconnect=reconnect))

    async def delete_history(self, room: str, *, user: str = "") -> Deleted:
        """Forget ``room``'s messages, or only ``user``'s; returns once that is durable.
        What is left is renumbered under a new epoch: a client resuming the old stream is
        told history was reset (members in the room now get a notice and resume at once)."""
        runtime = self._runtime
        command = DeleteHistory(room=room, user=user)
        if runtime.node is not None:
            return await runtime.node.delete_history(command)
        await runtime.read_for_rooms(command)
        deleted = runtime.rooms.delete_history(command, now=runtime.wall_clock())
        deliveries = [(d.to, Broadcast(d.message, 0)) for d in deleted.deliveries]
        await runtime.commit_durably(runtime.rooms.take_writes(), deliveries)
        return deleted

    async def snapshot(self, document: str) -> Snapshot:
        """The document's text and revision (revision 0 and no text: never edited)."""
        self._check_name("document", document)
        if not document:
            raise InvalidArgument("document", "must not be empty")
        runtime = self._runtime
        documents = runtime.documents
        if documents.is_open(document):
            return documents.snapshot(document)
        stored = await runtime.read_durably(LoadDocument(document=document))
        assert stored is None or isinstance(stored, DocumentRecord)
        return documents.snapshot(document, stored)

    def matches(self) -> list[MatchInfo]:
        """The running matches, by name, with their tick and players."""
        games = self._runtime.games
        infos = []
        for name in sorted(games.matches):
            loop = games.loop(name)
            infos.append(
                MatchInfo(match=name, tick=loop.tick if loop else 0, players=games.players(name))
            )
        return infos

    def _check_name(self, field: str, value: str) -> None:
        limit = self._runtime.rooms.limits.max_id_length
        if len(value) > limit:
            raise InvalidArgument(field, f"must be at most {limit} characters")
