"""The runtime's settings: the one place their defaults live (``interplay serve`` reads them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Flow settings of every session, whatever its transport."""

    # Messages queued for one receiving session: above high water the rooms and documents it
    # is in stop reading their senders until it drains to low water.
    high_water: int = 512
    low_water: int = 128
    # Seconds a session may stay above high water before it is cut (a slow consumer).
    drain_timeout: float = 5.0
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
        if self.max_pending_writes < 1:
            raise ValueError(
                f"max_pending_writes: must be at least 1, got {self.max_pending_writes}"
            )
