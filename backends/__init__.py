"""Backends: where the runtime keeps what the core wrote (``interplay.runtime.backend``).

``MemoryBackend`` for tests and embedding without durability; ``SQLiteBackend``, the embedded
default for one node.
"""

from .memory import MemoryBackend
from .sqlite import SQLiteBackend, UnusableDataFile

__all__ = ["MemoryBackend", "SQLiteBackend", "UnusableDataFile"]
