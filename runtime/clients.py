"""The reconnecting clients of the three RPCs, over any transport (DESIGN §6).

Each is a ``ReconnectingCall`` around one core machine: ``ClientRooms`` (chat),
``ClientEditor`` (a document), ``ClientPlayer`` (a match). A transport's client package
subclasses them only to build its ``Transport`` (``connect`` + codec) from an address:
``interplay.transports.grpc.client`` does so over grpclib.
"""

from __future__ import annotations

from typing import Any

from interplay.core.chat_client import ClientRooms, Request, TextRequest
from interplay.core.edit_client import ClientEditor, DocumentChange, EditReply, EditRequest
from interplay.core.errors import Rejection
from interplay.core.game import GameMirror
from interplay.core.game_client import ActionRequest, ClientPlayer, GameReply, GameRequest
from interplay.core.ot import ClientDocument
from interplay.core.rooms import RoomMessage

from .reconnect import ConnectionState, ReconnectingCall, Transport


class ReconnectingChat(ReconnectingCall[Request, RoomMessage, RoomMessage]):
    """Chat: rooms, TEXTs re-sent until acknowledged; messages arrive as ``RoomMessage``."""

    def __init__(
        self, transport: Transport[Request, RoomMessage, Any], *, user: str, **options: Any
    ) -> None:
        self.rooms = ClientRooms(user)
        super().__init__(transport, self.rooms, **options)

    async def join(self, room: str) -> None:
        await self._submit(lambda: self.rooms.join(room))

    async def leave(self, room: str) -> None:
        await self._submit(lambda: self.rooms.leave(room))

    async def send(self, room: str, content: str) -> str:
        """Send a TEXT; returns its id. It is re-sent until acknowledged, unless the server
        refuses it (``wait_acknowledged`` raises why). What the client can check itself
        (not joined, content over ``ChatLimits``) raises at once, and nothing is sent."""
        [request] = await self._submit(lambda: self.rooms.text(room, content))
        assert isinstance(request, TextRequest)
        return request.id

    async def wait_acknowledged(self, id: str) -> None:
        """Until the server has stored our TEXT ``id``; raises ``Refused`` if it refused it
        (and the fatal error if the call ends with one first)."""
        await self._wait_until(lambda: not self.rooms.is_pending(id))
        rejection = self.rooms.refused(id)
        if rejection is not None:
            raise rejection.error(id)

    async def typing(self, room: str) -> None:
        """A typing indicator: sent now if connected, never queued (it would be stale)."""
        if self.state is ConnectionState.CONNECTED:
            await self._submit(lambda: self.rooms.typing(room))

    def members(self, room: str) -> frozenset[str]:
        return self.rooms.members(room)


class ReconnectingEditor(ReconnectingCall[EditRequest, EditReply, DocumentChange]):
    """One document through the core's ``ClientEditor`` (ot.js client, undo and redo).

    A reconnect joins at the revision held, so the server sends only the edits missed (its
    own unacknowledged edit among them counts as its ack), then re-sends the edit still in
    flight under its op id, which the server applies at most once."""

    def __init__(
        self,
        transport: Transport[EditRequest, EditReply, Any],
        *,
        user: str,
        document: str,
        **options: Any,
    ) -> None:
        self.user, self.document = user, document
        self.editor = ClientEditor(user, document)
        super().__init__(transport, self.editor, **options)

    @property
    def doc(self) -> ClientDocument:
        return self.editor.doc

    @property
    def synced(self) -> bool:
        """A snapshot has arrived."""
        return self.editor.synced

    @property
    def text(self) -> str:
        return self.editor.text

    async def insert(self, position: int, text: str) -> None:
        await self.edit(position, 0, text)

    async def delete(self, position: int, length: int) -> None:
        await self.edit(position, length, "")

    async def edit(self, position: int, deleted: int, inserted: str) -> None:
        """Replace ``deleted`` code points at ``position`` of the local text with
        ``inserted``; applied locally at once, sent when the protocol allows."""
        await self.wait_synced()
        await self._submit(lambda: self.editor.edit(position, deleted, inserted))

    async def undo(self) -> None:
        await self._submit(self.editor.undo)

    async def redo(self) -> None:
        await self._submit(self.editor.redo)

    async def wait_synced(self) -> None:
        """Until the first snapshot has arrived."""
        await self._wait_until(lambda: self.editor.synced)

    async def wait_settled(self) -> None:
        """Until every local edit is acknowledged."""
        await self._wait_until(lambda: self.editor.settled)


class ReconnectingPlayer(ReconnectingCall[GameRequest, GameReply, GameMirror]):
    """One player in one match: actions get sequence numbers; the states received keep a
    ``GameMirror``. A reconnect joins again and re-sends the actions the server had not yet
    confirmed (a player's ``last_sequence``); the server ignores any it already applied."""

    def __init__(
        self,
        transport: Transport[GameRequest, GameReply, Any],
        *,
        player: str,
        match: str = "",
        **options: Any,
    ) -> None:
        self.player, self.match = player, match
        self.actions = ClientPlayer(player, match)
        super().__init__(transport, self.actions, **options)

    @property
    def mirror(self) -> GameMirror:
        return self.actions.mirror

    @property
    def refused(self) -> list[tuple[int, Rejection]]:
        """The actions the server refused, by sequence (never re-sent), oldest first."""
        return list(self.actions.refused)

    async def act(self, action: str, **parameters: str) -> int:
        """Queue an action for the next tick; returns its sequence number."""
        [request] = await self._submit(lambda: self.actions.act(action, parameters))
        assert isinstance(request, ActionRequest)
        return request.sequence
