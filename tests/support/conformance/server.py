"""The one place that builds the server under test, and the internals the suite looks at.

Every conformance test gets its server from ``serve`` (through ``Transport.serve``), so when
the server's construction changes (ChatService's arguments, where the settings live, the
runtime of DESIGN §8), this module is the only one to adapt. The settings classes the tests
pass are re-exported from here for the same reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol

from interplay.backends import MemoryBackend
from interplay.core import ChatLimits, RoomHub
from interplay.core.arena import Arena
from interplay.core.game import PlayerState
from interplay.core.matches import GameLimits, GameSettings, MatchHub
from interplay.runtime import Counters, Runtime, Settings
from interplay.transports.grpc.service import ChatService

from .calls import ChatCall, EditClient, GameClient, Wire

__all__ = [
    "Arena",
    "ChatLimits",
    "Connect",
    "GameLimits",
    "GameSettings",
    "Rpc",
    "ServerUnderTest",
    "Settings",
    "serve",
]

Rpc = Literal["chat", "edit", "game"]


class Connect(Protocol):
    """How a transport opens one call to the server it listens for.

    ``small_buffers``: this call will not read for a while; give it the smallest receive
    buffers the transport has, so that the server meets its backpressure soon."""

    def __call__(
        self, rpc: Rpc, *, small_buffers: bool = False
    ) -> AbstractAsyncContextManager[Wire[Any, Any]]: ...


class ServerUnderTest:
    """The server a test talks to: calls to open (``chat``, ``edit``, ``game``, through the
    transport that serves it) and the internals a test may check, each named for what it is."""

    def __init__(self, service: ChatService) -> None:
        self.service = service  # what a transport serves; tests use the probes below
        self.connect: Connect | None = None  # set by the transport serving it

    # -- calls -------------------------------------------------------------------------------

    def _open(self, rpc: Rpc, small_buffers: bool) -> AbstractAsyncContextManager[Wire[Any, Any]]:
        assert self.connect is not None, "serve it through Transport.serve"
        return self.connect(rpc, small_buffers=small_buffers)

    @asynccontextmanager
    async def chat(self, *, small_buffers: bool = False) -> AsyncIterator[ChatCall]:
        async with self._open("chat", small_buffers) as wire:
            yield ChatCall(wire)

    @asynccontextmanager
    async def edit(self, document: str, user: str) -> AsyncIterator[EditClient]:
        async with self._open("edit", False) as wire:
            yield EditClient(wire, document, user)

    @asynccontextmanager
    async def game(self, player: str) -> AsyncIterator[GameClient]:
        async with self._open("game", False) as wire:
            yield GameClient(wire, player)

    # -- internals ---------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return self.service.counters

    def members(self, room: str) -> list[str]:
        return self.service.runtime.rooms.members(room)

    def document_text(self, document: str) -> str | None:
        return self.service.runtime.documents.text(document)

    def matches(self) -> set[str]:
        """The open matches."""
        return set(self.service.runtime.games.matches)

    def match_tick(self, match: str) -> int:
        loop = self.service.runtime.games.loop(match)
        assert loop is not None, f"no match {match!r}"
        return loop.tick

    def match_players(self, match: str) -> dict[str, PlayerState]:
        loop = self.service.runtime.games.loop(match)
        assert loop is not None, f"no match {match!r}"
        return dict(loop.players)

    def game_sessions(self) -> int:
        """Players in any match."""
        return self.service.runtime.games.statistics().sessions


@asynccontextmanager
async def serve(
    *,
    settings: Settings | None = None,
    limits: ChatLimits | None = None,
    arena: Arena | None = None,
    game_settings: GameSettings | None = None,
    game_limits: GameLimits | None = None,
) -> AsyncIterator[ServerUnderTest]:
    """A server on a MemoryBackend; no chat rate limit unless ``settings`` set one."""
    async with Runtime(
        MemoryBackend(),
        rooms=RoomHub(limits=limits),
        games=MatchHub(arena, settings=game_settings, limits=game_limits),
        settings=settings or Settings(rate=0),
    ) as runtime:
        yield ServerUnderTest(ChatService(runtime))
