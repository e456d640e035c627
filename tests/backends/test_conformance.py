"""Our backends pass the backend suite (``interplay.testing.backend``): one class each."""

from __future__ import annotations

from pathlib import Path

from interplay.backends import MemoryBackend, SQLiteBackend
from interplay.runtime.backend import Backend
from interplay.testing.backend import BackendConformance


class TestMemoryBackend(BackendConformance):
    async def open_backend(self, storage: Path) -> Backend:
        return MemoryBackend()


class TestSQLiteBackend(BackendConformance):
    async def open_backend(self, storage: Path) -> Backend:
        return SQLiteBackend(storage / "interplay.db")


class TestSQLiteBackendReopened(TestSQLiteBackend):
    """Closed and reopened over the same file between each write and the next read."""

    reopens = True
