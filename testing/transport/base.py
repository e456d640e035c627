"""What a transport supplies to the suite: how to serve a runtime and open calls to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck

from interplay.backends import MemoryBackend
from interplay.runtime import Backend

from .server import Connect, ServerUnderTest, serve

# The property checks run on every subclass (one instance per test) with anyio's fixture:
# Hypothesis would object to both, and neither matters here.
SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]


@pytest.mark.anyio
class Transport:
    """One way to reach the server. A check does

        async with self.serve(limits=...) as server, server.chat() as ann:
            await ann.join("ann")

    ``serve`` takes the options of ``server.serve`` (the server under test) and
    ``one_connection_per_call``: give each call a connection of its own (a stream that does
    not read must not hold the others back through a shared connection window)."""

    def listen(
        self, server: ServerUnderTest, *, one_connection_per_call: bool
    ) -> AbstractAsyncContextManager[Connect]:
        """Serve ``server.runtime`` while the block runs; yield how to open a call to it
        (``Connect``: ``connect(rpc, small_buffers=...)`` gives a ``Wire``). (Not abstract:
        pytest would silently skip a subclass that forgot it, instead of failing each check.)"""
        raise NotImplementedError(
            f"{type(self).__name__}: implement listen(server, *, one_connection_per_call) "
            "to serve server.runtime and yield connect(rpc, small_buffers=False) -> Wire"
        )

    async def open_backend(self) -> Backend:
        """The backend of each server under test (the suite closes it): a fresh
        ``MemoryBackend`` unless you say otherwise."""
        backend: Backend = MemoryBackend()
        return backend

    @asynccontextmanager
    async def serve(
        self, *, one_connection_per_call: bool = False, **options: Any
    ) -> AsyncIterator[ServerUnderTest]:
        async with (
            serve(await self.open_backend(), **options) as server,
            self.listen(server, one_connection_per_call=one_connection_per_call) as connect,
        ):
            server.connect = connect
            yield server
