"""A test client for GameSync: sends actions with sequences, mirrors the states it receives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from grpclib.client import Channel, Stream

from helpers import open_call
from interplay.core.game import GameMirror
from interplay.transports.grpc.codec import game_update
from interplay.transports.grpc.generated.chat import GameAction, GameState


class GameClient:
    def __init__(self, stream: Stream[GameAction, GameState], player: str) -> None:
        self.stream = stream
        self.player = player
        self.mirror = GameMirror()
        self.sequence = 0
        self.states: list[GameState] = []

    async def send(self, action_type: str, **fields: Any) -> None:
        fields.setdefault("player_id", self.player)
        await self.stream.send_message(GameAction(action_type=action_type, **fields))

    async def join(self, match: str = "") -> None:
        await self.send("join", match_id=match)

    async def act(self, action_type: str, **parameters: str) -> int:
        self.sequence += 1
        await self.send(action_type, parameters=parameters, sequence=self.sequence)
        return self.sequence

    async def recv(self, timeout: float = 5.0) -> GameState | None:
        """The next state, applied to the mirror; None when the call ended."""
        with anyio.fail_after(timeout):
            state = await self.stream.recv_message()
        if state is not None:
            self.states.append(state)
            self.mirror.apply(**game_update(state))
        return state

    async def until(self, predicate: Callable[[GameClient], bool], timeout: float = 5.0) -> None:
        """Receive states until ``predicate(self)`` holds."""
        with anyio.fail_after(timeout):
            while not predicate(self):
                assert await self.recv() is not None, "the call ended"


@asynccontextmanager
async def game_call(channel: Channel, player: str) -> AsyncIterator[GameClient]:
    async with open_call(channel, "/chat.ChatService/GameSync", GameAction, GameState) as stream:
        yield GameClient(stream, player)
