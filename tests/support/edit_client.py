"""A CollaborativeEdit test client on a grpclib channel (the client itself is the suite's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from conformance.grpc_transport import grpc_call
from grpclib.client import Channel

from interplay.testing.transport import EditClient


@asynccontextmanager
async def edit_call(channel: Channel, document: str, user: str) -> AsyncIterator[EditClient]:
    async with grpc_call(channel, "edit") as wire:
        yield EditClient(wire, document, user)
