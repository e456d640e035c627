"""The server a transport conformance check talks to: a ``Runtime`` and the internals a check
looks at, built in one place (``serve``) so only this module follows the runtime's changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol

from interplay.core import ChatLimits, RoomHub
from interplay.core.arena import Arena
from interplay.core.game import PlayerState
from interplay.core.matches import GameLimits, GameSettings, MatchHub
from interplay.runtime import Backend, Counters, Runtime, Settings

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
"""The three RPCs of ``protos/chat.proto``: Chat, CollaborativeEdit, GameSync."""


class Connect(Protocol):
    """How a transport opens one call to the server it listens for (what ``listen`` yields).

    ``connect(rpc)`` is an async context manager giving a ``Wire`` for one call of ``rpc``;
    leaving it without ``wire.end()`` drops the call abruptly (a client that vanishes).
    ``small_buffers``: this call will not read for a while; give it the smallest receive
    buffers your transport has (and, when the suite asked for ``one_connection_per_call``, the
    server's side of it the smallest send buffers), so that the server meets its backpressure
    after a few messages rather than megabytes."""

    def __call__(
        self, rpc: Rpc, *, small_buffers: bool = False
    ) -> AbstractAsyncContextManager[Wire[Any, Any]]: ...


class ServerUnderTest:
    """What a check talks to: ``runtime``, the server a transport serves (its
    ``Runtime.serve``, as interplay's transports do), calls to open through that transport
    (``chat``, ``edit``, ``game``), and the internals a check may look at."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
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
        return self.runtime.counters

    def members(self, room: str) -> list[str]:
        return self.runtime.rooms.members(room)

    def document_text(self, document: str) -> str | None:
        return self.runtime.documents.text(document)

    def matches(self) -> set[str]:
        """The open matches."""
        return set(self.runtime.games.matches)

    def match_tick(self, match: str) -> int:
        loop = self.runtime.games.loop(match)
        assert loop is not None, f"no match {match!r}"
        return loop.tick

    def match_players(self, match: str) -> dict[str, PlayerState]:
        loop = self.runtime.games.loop(match)
        assert loop is not None, f"no match {match!r}"
        return dict(loop.players)

    def game_sessions(self) -> int:
        """Players in any match."""
        return self.runtime.games.statistics().sessions


@asynccontextmanager
async def serve(
    backend: Backend,
    *,
    settings: Settings | None = None,
    limits: ChatLimits | None = None,
    arena: Arena | None = None,
    game_settings: GameSettings | None = None,
    game_limits: GameLimits | None = None,
) -> AsyncIterator[ServerUnderTest]:
    """A runtime over ``backend`` (closed after it); no chat rate limit unless ``settings``
    set one."""
    try:
        async with Runtime(
            backend,
            rooms=RoomHub(limits=limits),
            games=MatchHub(arena, settings=game_settings, limits=game_limits),
            settings=settings or Settings(rate=0),
        ) as runtime:
            yield ServerUnderTest(runtime)
    finally:
        await backend.aclose()
