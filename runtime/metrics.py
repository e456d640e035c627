"""Prometheus metrics for ``interplay serve --metrics-port``.

Nothing on a hot path knows about Prometheus: the runtime keeps plain ints
(``Counters``) and fixed-bucket histograms (``interplay.core.histogram``), and
``MetricsCollector`` turns them into metric families only when scraped. So a message costs
the same with the exporter on or off, and the exporter cannot slow a stream down.

Scrapes run on prometheus_client's HTTP thread while the event loop keeps counting. Each
value is read in one step (an int, a copied dict, a copied bucket list) under the GIL; a
scrape is a moment's picture, not a transaction, which is all a monotonic counter needs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from interplay.core.histogram import Histogram

from .server import Runtime

# (attribute of Counters, metric name, help): the unlabelled counters.
_COUNTERS = (
    ("streams_opened", "interplay_streams_opened_total", "Calls accepted, all RPCs."),
    ("messages_in", "interplay_messages_in_total", "Messages received from clients."),
    (
        "deliveries",
        "interplay_deliveries_total",
        "Messages queued for a receiving stream (one per recipient: the fan-out).",
    ),
    (
        "writes",
        "interplay_writes_total",
        "HTTP/2 writes by the stream writers; deliveries / writes is the batching.",
    ),
    (
        "slow_consumer_disconnects",
        "interplay_slow_consumer_disconnects_total",
        "Calls ended with RESOURCE_EXHAUSTED: nothing written for the drain timeout while "
        "holding queued messages, or behind the log's retention.",
    ),
    (
        "switches_to_log",
        "interplay_switches_to_log_total",
        "Times a chat or editing stream left live delivery to read from the log (a room's, a "
        "document's kept history), over high water or a byte budget.",
    ),
    (
        "back_to_live",
        "interplay_back_to_live_total",
        "Times a stream reading from the log caught up and rejoined live delivery.",
    ),
    (
        "log_messages",
        "interplay_log_messages_total",
        "Messages streams read from the log (history on JOIN and resume, and laggards).",
    ),
    (
        "log_from_memory",
        "interplay_log_from_memory_total",
        "Of those, messages a stream close behind was given from memory (the latest delivered, "
        "already encoded) instead of reading the store.",
    ),
    (
        "typing_dropped",
        "interplay_typing_dropped_total",
        "TYPING indicators a stream reading from the log missed (they are not in the log).",
    ),
    (
        "carets_dropped",
        "interplay_carets_dropped_total",
        "Caret moves an editing stream reading from the history missed (the next comes live).",
    ),
    (
        "behind_retention",
        "interplay_behind_retention_total",
        "Streams cut because the log no longer held what they were to read.",
    ),
    (
        "budget_waits",
        "interplay_budget_waits_total",
        "Times every reader stopped reading: the server's queued bytes reached its budget.",
    ),
    (
        "shaped",
        "interplay_messages_shaped_total",
        "Messages that waited for their stream's rate limit (shaped, never refused).",
    ),
    (
        "refusals",
        "interplay_messages_refused_total",
        "Messages refused by a rule of their own (told to their sender; the stream went on).",
    ),
    (
        "commits",
        "interplay_store_commits_total",
        "Backend write calls; storage writes / commits is the group commit.",
    ),
    ("storage_writes", "interplay_store_writes_total", "Writes made durable by the backend."),
    (
        "storage_failures",
        "interplay_store_failures_total",
        "Backend write calls that failed (every chat and edit session was cut).",
    ),
    ("ticks", "interplay_ticks_total", "Match ticks run (one per match per tick)."),
    (
        "states_superseded",
        "interplay_game_states_superseded_total",
        "Game states replaced by a newer one before a slow player's stream took them.",
    ),
    (
        "retention_steps",
        "interplay_retention_steps_total",
        "Bounded steps of the history retention sweep (--history-ttl).",
    ),
    (
        "messages_expired",
        "interplay_messages_expired_total",
        "Chat messages trimmed for being older than --history-ttl.",
    ),
    (
        "rooms_forgotten",
        "interplay_rooms_forgotten_total",
        "Rooms with no member and no message left, forgotten with their epoch.",
    ),
    ("admin_calls", "interplay_admin_calls_total", "Admin API calls authorized."),
)


# A node's part in matches (runtime/node_matches.py ``MatchStatistics``), with --redis only.
_MATCH_COUNTERS = (
    ("leases_acquired", "interplay_match_leases_acquired_total", "Match leases this node took."),
    (
        "leases_lapsed",
        "interplay_match_leases_lapsed_total",
        "Owned matches stopped: the lease deadline passed without a renewal.",
    ),
    ("states_published", "interplay_match_states_published_total", "Owned match states sent."),
    ("states_relayed", "interplay_match_states_relayed_total", "Other nodes' states delivered."),
    (
        "stale_states",
        "interplay_match_states_stale_total",
        "States dropped: a fence below the highest seen, or a tick not above the last.",
    ),
    (
        "states_refused",
        "interplay_match_states_refused_total",
        "State publishes Redis refused (a stale fence).",
    ),
    (
        "snapshots_refused",
        "interplay_match_snapshots_refused_total",
        "Snapshot writes Redis refused (a stale fence).",
    ),
    (
        "inputs_refused",
        "interplay_match_inputs_refused_total",
        "Players' inputs this node's matches refused (told back to their node).",
    ),
)


class MetricsCollector(Collector):
    """The runtime's counters and histograms as Prometheus metrics, read at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        counters = self.runtime.counters
        for attribute, name, help_text in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(counters, attribute))

        node = self.runtime.node
        if node is not None:
            matches = node.matches.statistics()
            for attribute, name, help_text in _MATCH_COUNTERS:
                yield CounterMetricFamily(name, help_text, value=getattr(matches, attribute))
            yield GaugeMetricFamily(
                "interplay_matches_owned", "Matches this node ticks now.", value=matches.owned
            )

        open_by_rpc = GaugeMetricFamily(
            "interplay_streams_open",
            "Calls open now, by RPC (chat, edit, game).",
            labels=["rpc"],
        )
        for rpc, count in sorted(dict(counters.streams_open_by_rpc).items()):
            open_by_rpc.add_metric([rpc], count)
        yield open_by_rpc
        statistics = self.runtime.statistics()
        yield GaugeMetricFamily(
            "interplay_queued_bytes",
            "Bytes queued for every stream now (estimated before encoding).",
            value=statistics.queued_bytes,
        )
        yield GaugeMetricFamily(
            "interplay_streams_reading_log",
            "Chat and editing streams reading from the log now.",
            value=statistics.lagging_sessions,
        )

        errors = CounterMetricFamily(
            "interplay_errors_total",
            "Calls ended with a non-OK status, by gRPC status code "
            "(UNAVAILABLE includes the calls a shutdown sent elsewhere).",
            labels=["code"],
        )
        for code, count in sorted(dict(counters.errors).items()):
            errors.add_metric([code], count)
        yield errors

        yield _histogram(
            "interplay_tick_duration_seconds",
            "Work per tick-driver wake-up that ran ticks: advance, encode, hand out.",
            {(): self.runtime.tick_duration},
        )
        yield _histogram(
            "interplay_tick_lag_seconds",
            "How late the tick driver woke after a tick's deadline.",
            {(): self.runtime.tick_lag},
        )
        yield _histogram(
            "interplay_store_write_seconds",
            "Backend write latency per group commit (before anyone receives what it holds).",
            {(): self.runtime.write_latency},
        )


def _histogram(
    name: str,
    help_text: str,
    series: Mapping[tuple[str, ...], Histogram],
    labels: list[str] | None = None,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=labels)
    for values, histogram in series.items():
        snapshot = histogram.snapshot()
        buckets = [
            (floatToGoString(bound), count)  # type: ignore[no-untyped-call]
            for bound, count in snapshot.buckets
        ]
        family.add_metric(list(values), buckets, snapshot.sum)
    return family


class MetricsServer:
    """prometheus_client's HTTP exporter (a daemon thread) and a way to stop it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The bound port (useful after asking for port 0)."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port. Blocks up to half a second (the server polls
        for shutdown), so call it from a worker thread in async code."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def metrics_registry(
    runtime: Runtime,
) -> CollectorRegistry:
    """A registry of its own (never the process-global one), so several servers can export."""
    registry = CollectorRegistry()
    registry.register(MetricsCollector(runtime))
    return registry


def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics``; port 0 picks a free one."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)
