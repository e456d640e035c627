"""The Prometheus exporter, scraped over HTTP as Prometheus would, next to a real TCP server."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from edit_client import edit_call
from game_client import game_call
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from helpers import T, chat_call, eventually, interplay_serve, msg, tcp_server
from interplay.cli import _parser
from interplay.core.matches import GameSettings, MatchHub
from interplay.runtime.metrics import metrics_registry, start_metrics_server
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.service import ChatService

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.anyio


class Scrape:
    """One scrape of /metrics: sample name and labels -> value. A missing sample is a failure."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]

    def buckets(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """(le, cumulative count) of a histogram, ascending."""
        found = [
            (float(dict(key)["le"]), value)
            for (sample, key), value in self.samples.items()
            if sample == f"{name}_bucket" and {k: v for k, v in key if k != "le"} == labels
        ]
        return sorted(found)


async def scrape(port: int) -> Scrape:
    def get() -> str:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert reply.status == 200
            return str(reply.read().decode())

    return Scrape(await anyio.to_thread.run_sync(get))


@dataclass
class Running:
    service: ChatService
    channel: Channel
    metrics_port: int


@asynccontextmanager
async def running() -> AsyncIterator[Running]:
    """A grpclib server on a TCP port, and the exporter on another port."""
    games = MatchHub(settings=GameSettings(tick_hz=100.0, full_every=10, grace=1.0))
    async with tcp_server(games=games) as served:
        registry = metrics_registry(served.service.runtime)
        metrics = start_metrics_server(registry, "127.0.0.1", port=0)
        channel = Channel("127.0.0.1", served.port, codec=WireCodec())
        try:
            yield Running(served.service, channel, metrics.port)
        finally:
            channel.close()
            await anyio.to_thread.run_sync(metrics.close)


async def test_a_fresh_server_exports_every_metric_at_zero() -> None:
    async with running() as server:
        got = await scrape(server.metrics_port)
    for name in (
        "interplay_streams_opened_total",
        "interplay_messages_in_total",
        "interplay_deliveries_total",
        "interplay_writes_total",
        "interplay_switches_to_log_total",
        "interplay_carets_dropped_total",
        "interplay_slow_consumer_disconnects_total",
        "interplay_ticks_total",
        "interplay_game_states_superseded_total",
        "interplay_messages_shaped_total",
        "interplay_store_commits_total",
        "interplay_store_writes_total",
        "interplay_store_failures_total",
        "interplay_retention_steps_total",
        "interplay_messages_expired_total",
        "interplay_rooms_forgotten_total",
        "interplay_admin_calls_total",
    ):
        assert got(name) == 0, name
        assert got.types[name.removesuffix("_total")] == "counter"
    assert got.types["interplay_streams_open"] == "gauge"
    assert {rpc: got("interplay_streams_open", rpc=rpc) for rpc in ("chat", "edit", "game")} == {
        "chat": 0,
        "edit": 0,
        "game": 0,
    }
    assert got.types["interplay_errors"] == "counter"
    for histogram in ("interplay_tick_lag_seconds", "interplay_tick_duration_seconds"):
        assert got.types[histogram] == "histogram"
        assert got(f"{histogram}_count") == 0
        assert got.buckets(histogram)[-1] == (float("inf"), 0)
    assert got("interplay_store_write_seconds_count") == 0
    assert got("interplay_store_commits_total") == got("interplay_store_writes_total") == 0
    # every metric the README's table lists is exported
    readme = README.read_text()
    listed = set(re.findall(r"^\| `(interplay_[a-z_]+)", readme, re.M))
    listed |= set(re.findall(r"`, `(interplay_[a-z_]+)` \|", readme))
    exported = set(got.types) | {f"{name}_total" for name in got.types}
    assert listed and listed <= exported, listed - exported
    # a registry of its own: nothing lands in the process-global one
    assert not [m for m in REGISTRY.collect() if m.name.startswith("interplay_")]


async def test_traffic_errors_edits_and_ticks_move_the_metrics() -> None:
    async with running() as server:
        async with chat_call(server.channel) as ann:
            await ann.join("ann")
            for n in range(3):
                await ann.text(f"hi {n}", id=str(n))
            received = await ann.recv_n(4)  # her JOIN, then her three texts
            got = await scrape(server.metrics_port)
            assert got("interplay_streams_open", rpc="chat") == 1
            assert got("interplay_messages_in_total") == 4
            assert got("interplay_deliveries_total") == len(received) == 4
            assert 1 <= got("interplay_writes_total") <= 4

            async with chat_call(server.channel) as early:
                await early.text("hello?")  # refused: the call goes on
                [notice] = await early.recv_n(1)
                assert notice.rejection is not None
                await early.send(msg(T.JOIN, "side", sender_id="eve", resume_after_seq=-1))
                await early.send(msg(T.JOIN, "side", sender_id="eve"))
                with pytest.raises(GRPCError) as caught:  # another identity: ends the call
                    await early.text("x", "side", sender_id="mallory")
                    await early.recv_until(lambda m: False)
                assert caught.value.status is Status.PERMISSION_DENIED
            await ann.stream.end()
            assert await ann.recv() is None

        async with edit_call(server.channel, "doc", "ann") as editor:
            await editor.join()
            await editor.edit(0, inserted="hello")
            await editor.until_acked()
            got = await scrape(server.metrics_port)
            assert got("interplay_streams_open", rpc="edit") == 1
            await editor.end()

        async with game_call(server.channel, "ann") as player:
            await player.join("arena")
            await player.until(lambda p: len(p.states) >= 3)
            got = await scrape(server.metrics_port)
            assert got("interplay_streams_open", rpc="game") == 1
            assert got("interplay_ticks_total") >= 3
            await player.end()

        await eventually(lambda: server.service.counters.streams_open == 0)
        got = await scrape(server.metrics_port)

    assert got("interplay_errors_total", code="PERMISSION_DENIED") == 1
    assert got("interplay_messages_refused_total") == 2
    assert got("interplay_streams_opened_total") == 4
    assert {rpc: got("interplay_streams_open", rpc=rpc) for rpc in ("chat", "edit", "game")} == {
        "chat": 0,
        "edit": 0,
        "game": 0,
    }
    # chat 4 + early 4 + edit join and edit 2 + game join 1 (and whatever actions: none)
    assert got("interplay_messages_in_total") == 11
    counters = server.service.counters
    assert got("interplay_deliveries_total") == counters.deliveries >= 4 + 2  # + snapshot, ack
    # ticks go on while a match empties (its leaves apply on the next tick): read after the scrape
    assert 3 <= got("interplay_ticks_total") <= counters.ticks

    for name, source in (
        ("interplay_tick_duration_seconds", server.service.runtime.tick_duration),
        ("interplay_tick_lag_seconds", server.service.runtime.tick_lag),
    ):
        buckets = got.buckets(name)
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), "cumulative buckets never decrease"
        assert buckets[-1] == (float("inf"), got(f"{name}_count"))
        # the driver may have ticked again since the scrape: the scrape is a moment's picture
        assert 1 <= got(f"{name}_count") <= source.count
        assert got(f"{name}_sum") <= source.sum + 1e-9
        assert got(f"{name}_sum") >= 0
    assert got("interplay_tick_duration_seconds_count") <= len(
        server.service.runtime.tick_durations
    )

    write = "interplay_store_write_seconds"
    # the rooms "lobby" and "side" created on their first JOIN, the three texts, the edit: each
    # durable before it is delivered, in as many commits as the group commit needed
    assert got("interplay_store_writes_total") == counters.storage_writes == 2 + 3 + 1
    assert 1 <= got("interplay_store_commits_total") == counters.commits <= 6
    assert got(f"{write}_count") == counters.commits
    assert got.buckets(write)[-1] == (float("inf"), counters.commits)
    assert 0 < got(f"{write}_sum") < 1


async def test_closing_the_exporter_releases_its_port() -> None:
    async with running() as server:
        port = server.metrics_port
        await scrape(port)
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))  # nobody listens there any more
    with socket.socket() as probe:
        # free again (SO_REUSEADDR: past the scrape's TIME_WAIT, never past a listener)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_metrics_port_flag_defaults_to_off_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTERPLAY_METRICS_PORT", raising=False)
    assert _parser().parse_args(["serve"]).metrics_port == 0
    assert _parser().parse_args(["serve", "--metrics-port", "9464"]).metrics_port == 9464
    monkeypatch.setenv("INTERPLAY_METRICS_PORT", "9465")
    assert _parser().parse_args(["serve"]).metrics_port == 9465


@pytest.mark.slow
async def test_interplay_serve_with_metrics_port(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port, released for the server to take
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    flags = ("--metrics-port", str(metrics_port), "--grace", "1")  # the drain is not tested here
    with interplay_serve(tmp_path / "chat.db", *flags) as port:
        channel = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            async with chat_call(channel) as ann:
                await ann.join("ann")
                await ann.text("hi", id="1")
                await ann.recv_n(2)
                got = await scrape(metrics_port)
                await ann.stream.end()
        finally:
            channel.close()
    assert got("interplay_messages_in_total") == 2
    assert got("interplay_streams_open", rpc="chat") == 1
    # the room's creation and the text, committed to SQLite before delivery, and timed
    assert got("interplay_store_writes_total") == 2
    assert got("interplay_store_write_seconds_count") == got("interplay_store_commits_total") >= 1
