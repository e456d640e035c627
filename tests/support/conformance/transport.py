"""The transport-neutral test client: what a conformance test is handed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar

from .server import Connect, ServerUnderTest, serve


class Transport(ABC):
    """One way to reach the server: gRPC today, WebSocket next. A test does

        async with transport.serve(limits=...) as server, server.chat() as ann:
            await ann.join("ann")

    ``serve`` takes the options of ``server.serve`` (the one factory of the server under test),
    and ``one_connection_per_call``: give each call a connection of its own (a stream that does
    not read must not hold the others back through a shared connection window)."""

    name: ClassVar[str]

    @asynccontextmanager
    async def serve(
        self, *, one_connection_per_call: bool = False, **options: Any
    ) -> AsyncIterator[ServerUnderTest]:
        async with (
            serve(**options) as server,
            self.listen(server, one_connection_per_call=one_connection_per_call) as connect,
        ):
            server.connect = connect
            yield server

    @abstractmethod
    def listen(
        self, server: ServerUnderTest, *, one_connection_per_call: bool
    ) -> AbstractAsyncContextManager[Connect]:
        """Serve ``server.service`` while the block runs; yield how to open a call to it."""
