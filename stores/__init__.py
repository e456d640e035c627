"""Durable storage behind the protocols the core declares (``interplay.core.store``)."""

from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore"]
