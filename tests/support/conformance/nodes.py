"""The suite over two nodes: each test's server is two runtimes sharing one redis-server.

``TwoNodes``, mixed in before a transport's class (``class T(TwoNodes, GrpcTransport,
ChatConformance)``), serves each node through that transport's ``listen`` and opens calls on the
nodes in turn (the first call on node one, the second on node two, ...), so the members of a
room are split across them. The probes a test reads add both nodes up: counters summed, the
members of a room as both nodes see them (each counts the other's through presence).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from redis_server import redis_server

from interplay.backends.redis import RedisEngine
from interplay.core import RoomHub
from interplay.core.game import PlayerState
from interplay.core.matches import MatchHub
from interplay.runtime import Counters, Runtime, Settings
from interplay.runtime.node import Node
from interplay.testing.transport.calls import Wire
from interplay.testing.transport.server import Connect, Rpc, ServerUnderTest


class NodesUnderTest(ServerUnderTest):
    """Node one as the ``ServerUnderTest``; ``nodes`` all of them."""

    def __init__(self, nodes: list[ServerUnderTest]) -> None:
        super().__init__(nodes[0].runtime)
        self.nodes = nodes

    @property
    def counters(self) -> Counters:
        total = Counters()
        for node in self.nodes:
            counters = node.runtime.counters
            for f in fields(Counters):
                value = getattr(counters, f.name)
                if isinstance(value, int):
                    setattr(total, f.name, getattr(total, f.name) + value)
                elif f.name == "errors":
                    for name, count in value.items():
                        total.errors[name] = total.errors.get(name, 0) + count
        return replace(total)

    def members(self, room: str) -> list[str]:
        return sorted({user for node in self.nodes for user in node.members(room)})

    def matches(self) -> set[str]:
        """Each match is open on the node that owns it."""
        return {match for node in self.nodes for match in node.matches()}

    def _owner(self, match: str) -> ServerUnderTest:
        owners = [node for node in self.nodes if match in node.matches()]
        assert len(owners) == 1, f"match {match!r} is open on {len(owners)} nodes"
        return owners[0]

    def match_tick(self, match: str) -> int:
        return self._owner(match).match_tick(match)

    def match_players(self, match: str) -> dict[str, PlayerState]:
        return self._owner(match).match_players(match)

    def game_sessions(self) -> int:
        return sum(node.game_sessions() for node in self.nodes)

    def document_text(self, document: str) -> str | None:
        """The newest replica's text (the other may not have heard the last edit yet)."""
        newest = max(self.nodes, key=lambda n: n.runtime.documents.revision(document) or -1)
        return newest.runtime.documents.text(document)


class TwoNodes:
    """See the module docstring."""

    @asynccontextmanager
    async def serve(
        self, *, one_connection_per_call: bool = False, **options: Any
    ) -> AsyncIterator[ServerUnderTest]:
        limits = options.pop("limits", None)
        settings = options.pop("settings", None) or Settings(rate=0)
        games = {
            "rules": options.pop("arena", None),
            "settings": options.pop("game_settings", None),
            "limits": options.pop("game_limits", None),
        }
        assert not options, f"not for two nodes yet: {sorted(options)}"
        with (
            tempfile.TemporaryDirectory() as directory,
            redis_server(Path(directory)) as redis,
        ):
            async with AsyncExitStack() as stack:
                nodes, connects = [], []
                for n in range(2):
                    engine = RedisEngine(redis.url, node=f"node{n}")
                    stack.push_async_callback(engine.aclose)
                    runtime = await stack.enter_async_context(
                        Runtime(
                            engine,
                            rooms=RoomHub(limits=limits),
                            games=MatchHub(**games),
                            settings=settings,
                            node=Node(engine),
                        )
                    )
                    node = ServerUnderTest(runtime)
                    connect = await stack.enter_async_context(
                        self.listen(node, one_connection_per_call=one_connection_per_call)  # type: ignore[attr-defined]
                    )
                    node.connect = connect
                    nodes.append(node)
                    connects.append(connect)
                for node in nodes:
                    await _until_healthy(node)
                server = NodesUnderTest(nodes)
                server.connect = _alternating(connects)
                yield server


def _alternating(connects: list[Connect]) -> Connect:
    turn = iter(range(1 << 30))

    def connect(
        rpc: Rpc, *, small_buffers: bool = False
    ) -> AbstractAsyncContextManager[Wire[Any, Any]]:
        return connects[next(turn) % len(connects)](rpc, small_buffers=small_buffers)

    return connect


async def _until_healthy(node: ServerUnderTest) -> None:
    import anyio

    runtime_node = node.runtime.node
    assert runtime_node is not None
    with anyio.fail_after(5):
        while not runtime_node.healthy:  # noqa: ASYNC110 (the engine has no event for it)
            await anyio.sleep(0.005)
