"""Retention by time on SQLite: what one bounded sweep step costs the event loop, and what the
issue's scenario (rooms posted to once and left) leaves in the data file. Prints one JSON line.

    python bench/retention.py [--rooms 20000] [--busy-rooms 20] [--messages 10000] [--step 50]
                              [--budget 2000]

Two data files, built the same way through the core (a RoomHub over SQLiteBackend):

* ``once``: ``--rooms`` rooms, each posted to once and left (the issue's 20 000 rooms);
* ``busy``: ``--busy-rooms`` rooms of ``--messages`` messages each, the older half expired.

Then the sweep runs at a time when everything in ``once`` and half of ``busy`` has expired,
step by step as the runtime's timer does (read ``RoomAges``, ``expire``, write), and again once
everything is trimmed (the steady state: the baseline, in the same run). Each step is timed
whole (read, core, write): that is how long it holds the event loop.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from interplay.backends import SQLiteBackend
from interplay.core.rooms import Join, Leave, Post, RoomHub


def build(path: Path, rooms: list[tuple[str, int]], *, at: float, spread: float) -> None:
    """Each (room, n): n messages, stamped from ``at`` over ``spread`` seconds."""
    backend = SQLiteBackend(path)
    hub = RoomHub(retain=1_000_000)
    batch = []
    for name, count in rooms:
        join = Join(session="s", user="ann", room=name)
        read = hub.needs(join)
        assert read is not None
        hub.provide(read, backend.read_now(read))
        hub.handle(join, now=at)
        for n in range(count):
            hub.handle(
                Post(session="s", room=name, content=f"message {n}"), now=at + spread * n / count
            )
        hub.handle(Leave(session="s", room=name), now=at + spread)
        batch.extend(hub.take_writes())
        if len(batch) > 50_000:
            backend.write_now(batch)
            batch = []
    backend.write_now(batch)
    backend.close()


def sweep(path: Path, *, now: float, ttl: float, step: int, budget: int) -> dict[str, float]:
    """Sweep every room once at ``now``; per-step durations (ms) and what was done."""
    backend = SQLiteBackend(path)
    hub = RoomHub(ttl=ttl, sweep_rooms=step, sweep_messages=budget)
    durations, messages, forgotten = [], 0, 0
    while True:
        began = time.perf_counter()
        read = hub.sweep(now=now)
        assert read is not None
        expired = hub.expire(read, backend.read_now(read))  # type: ignore[arg-type]
        backend.write_now(hub.take_writes())
        durations.append((time.perf_counter() - began) * 1000)
        messages += expired.messages
        forgotten += expired.rooms
        if expired.lap:
            break
    backend.close()
    durations.sort()
    return {
        "steps": len(durations),
        "step_ms_p50": round(durations[len(durations) // 2], 3),
        "step_ms_max": round(durations[-1], 3),
        "messages_expired": messages,
        "rooms_forgotten": forgotten,
    }


def size(path: Path) -> int:
    """Bytes of the file and its WAL, after a checkpoint and VACUUM (what is really kept)."""
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=20_000)
    parser.add_argument("--busy-rooms", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=50, help="rooms per step (RoomHub)")
    parser.add_argument(
        "--budget", type=int, default=2000, help="messages trimmed per step at most (RoomHub)"
    )
    args = parser.parse_args()
    ttl, start = 30 * 86400.0, 1_700_000_000.0
    with tempfile.TemporaryDirectory() as folder:
        once, busy = Path(folder) / "once.db", Path(folder) / "busy.db"
        build(once, [(f"room{n:05}", 1) for n in range(args.rooms)], at=start, spread=0)
        spread = 2 * ttl  # the older half is past the TTL at start + 2 * ttl
        build(
            busy,
            [(f"busy{n:03}", args.messages) for n in range(args.busy_rooms)],
            at=start,
            spread=spread,
        )
        once_before = size(once)
        now = start + spread
        result = {
            "rooms": args.rooms,
            "busy_rooms": args.busy_rooms,
            "messages_per_busy_room": args.messages,
            "rooms_per_step": args.step,
            "messages_per_step": args.budget,
            "once_bytes_before": once_before,
            "once_sweep": sweep(once, now=now, ttl=ttl, step=args.step, budget=args.budget),
            "once_bytes_after": size(once),
            "busy_sweep": sweep(busy, now=now, ttl=ttl, step=args.step, budget=args.budget),
            "steady_sweep_baseline": sweep(
                busy, now=now, ttl=ttl, step=args.step, budget=args.budget
            ),
            "cpus": os.cpu_count(),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
