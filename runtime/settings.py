"""The runtime's settings: the one place their defaults live (``interplay serve`` reads them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

# The server's queued-bytes budget when ``Settings.server_budget`` is 0: a share of the
# machine's memory, within these bounds.
_MACHINE_SHARE = 8
_AUTO_MIN, _AUTO_MAX = 64 << 20, 1 << 30


def machine_budget() -> int:
    """An eighth of physical memory, between 64 MiB and 1 GiB (256 MiB if unknown)."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 256 << 20
    return max(_AUTO_MIN, min(_AUTO_MAX, memory // _MACHINE_SHARE))


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Flow settings of every session, whatever its transport."""

    # Messages queued for one receiving session. Above high water a chat session leaves live
    # delivery and reads from the log, a page at a time as it drains (DESIGN §5); it rejoins
    # live delivery once caught up at low water. An editing session's documents stop reading
    # their senders until it drains to low water.
    high_water: int = 512
    low_water: int = 128
    # Seconds a session may go without a completed write while it holds queued or in-flight
    # messages over high water (or reads from the log) before it is cut (a slow consumer).
    drain_timeout: float = 5.0
    # Bytes queued (estimated: ``runtime/outbox.py``) for one session, for the sessions of one
    # connection, and for the whole server (0: sized from the machine, ``machine_budget``).
    # Over its own or its connection's, a chat session reads from the log instead; over the
    # server's, the fullest sessions do first, and if that is not enough every reader stops
    # reading (flow control holds the clients) until the queues drain below three quarters.
    session_budget: int = 1 << 20
    connection_budget: int = 8 << 20
    server_budget: int = 0
    # Messages per log read of a session that reads from the log (fewer while its messages
    # are big: a page stays within half its session budget).
    log_page: int = 64
    # Chat messages per second per stream, and the burst above it; 0 = unlimited. A faster
    # sender is shaped (its next message waits), never refused.
    rate: float = 1000.0
    burst: int = 2000
    # Writes queued for the backend before readers wait for them to commit (bounds memory
    # when the backend is slower than the senders).
    max_pending_writes: int = 10_000
    # Seconds between sweeps that end the writer task of a session that wrote nothing since
    # the last one: an idle session holds no task of its own (its next message starts one).
    idle_writer_sweep: float = 10.0
    # Seconds between retention steps when rooms have a history TTL (each step reads and trims
    # a few rooms: ``RoomHub(sweep_rooms=...)``).
    retention_every: float = 1.0
    # Seconds between two retention steps while a backlog lasts (a step used its whole
    # message budget): the loop is free between them.
    retention_pause: float = 0.02

    def server_bytes(self) -> int:
        """The server's queued-bytes budget: ``server_budget``, or sized from the machine."""
        return self.server_budget or machine_budget()

    def __post_init__(self) -> None:
        if not 0 <= self.low_water <= self.high_water:
            raise ValueError(
                f"low_water, high_water: need 0 <= low_water <= high_water, got "
                f"{self.low_water}, {self.high_water}"
            )
        if self.drain_timeout <= 0:
            raise ValueError(f"drain_timeout: must be positive, got {self.drain_timeout}")
        if self.rate < 0:
            raise ValueError(f"rate: must not be negative (0 = unlimited), got {self.rate}")
        if self.rate and self.burst < 1:
            raise ValueError(f"burst: must be at least 1, got {self.burst}")
        if not self.idle_writer_sweep > 0:
            raise ValueError(f"idle_writer_sweep: must be positive, got {self.idle_writer_sweep}")
        if not self.retention_every > 0:
            raise ValueError(f"retention_every: must be positive, got {self.retention_every}")
        if not self.retention_pause >= 0:
            raise ValueError(f"retention_pause: must be 0 or more, got {self.retention_pause}")
        for name in ("session_budget", "connection_budget", "log_page"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.server_budget < 0:
            raise ValueError(
                f"server_budget: must not be negative (0 = sized from the machine), got "
                f"{self.server_budget}"
            )
        if self.max_pending_writes < 1:
            raise ValueError(
                f"max_pending_writes: must be at least 1, got {self.max_pending_writes}"
            )
