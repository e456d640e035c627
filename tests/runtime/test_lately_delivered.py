"""The runtime's map of the chat messages lately delivered (``LogReaders._shared``), which a
receiver close behind reads instead of the store: bounded in bytes, newest kept, and its
oldest evicted in constant time, whatever its size.

The regression this pins (issue 13, bench/README.md): every message delivered once the map was
full evicted its oldest with ``next(iter(dict))``, which steps over the slot of every key
popped since the dict last resized (tens of thousands at the default budget): ~30 µs per
message on the bench machine once a run outgrew the map, the one cost issue 20 added to the
1 x 2 path that grows with the load. Counted here, not timed: the eviction never iterates it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from interplay.core.rooms import Kind, RoomMessage
from interplay.runtime import Settings
from interplay.runtime.lagging import LogReaders
from interplay.runtime.outbox import Broadcast


class CountingDict(dict[Any, Any]):
    """A dict that counts how often it is iterated."""

    iterations = 0

    def __iter__(self) -> Any:
        self.iterations += 1
        return super().__iter__()


def text(seq: int) -> RoomMessage:
    return RoomMessage(
        kind=Kind.TEXT, room="lobby", sender="ann", id=f"m{seq}", content="x" * 50, seq=seq
    )


def test_the_lately_delivered_stay_within_their_bytes_and_evicting_never_walks_them() -> None:
    settings = Settings(session_budget=64 * 1024)
    log = LogReaders(cast(Any, SimpleNamespace(settings=settings)))
    shared = log._shared = CountingDict()
    limit = log._shared_limit
    count = 4 * limit // Broadcast(text(1), 0).size  # four times what fits
    for seq in range(1, count + 1):
        message = text(seq)
        log.seen(message, Broadcast(message, 0))
    assert shared.iterations == 0, "evicting the oldest walked the map"
    assert log._shared_bytes == sum(item.size for item in shared.values()) <= limit
    kept = sorted(key[2] for key in shared)
    assert kept == list(range(count - len(kept) + 1, count + 1)), "not the newest, in a run"
    assert len(kept) > count // 5  # (the limit holds many: evicted only what it must)
