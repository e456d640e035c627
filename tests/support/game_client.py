"""A GameSync test client on a grpclib channel (the client itself is the suite's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from conformance.grpc_transport import grpc_call
from grpclib.client import Channel

from interplay.testing.transport import GameClient


@asynccontextmanager
async def game_call(channel: Channel, player: str) -> AsyncIterator[GameClient]:
    async with grpc_call(channel, "game") as wire:
        yield GameClient(wire, player)
