"""Durable storage behind the protocols the core declares (``interplay.core.store``)."""

from .memory import MemoryStore
from .sqlite import SQLiteStore
from .timed import TimedStore

__all__ = ["MemoryStore", "SQLiteStore", "TimedStore"]
