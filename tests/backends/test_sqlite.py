"""What the SQLite backend refuses to open, and what it adopts (its checks as a backend are
``test_conformance.py``'s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interplay.backends import SQLiteBackend, UnusableDataFile


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, but someone's notes\n" * 100)
    with pytest.raises(UnusableDataFile) as caught:
        SQLiteBackend(path)
    assert caught.value.reason.startswith("not an SQLite database (file is not a database)")
    assert path.read_text().startswith("not a database")  # untouched


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)",
            "another program's SQLite database (tables messages)",
        ),
        (
            "PRAGMA application_id = 1234",
            "another program's SQLite database (application_id 0x4d2)",
        ),
    ],
)
def test_sqlite_refuses_another_programs_database(
    tmp_path: Path, statement: str, reason: str
) -> None:
    import sqlite3

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute(statement)
    with pytest.raises(UnusableDataFile) as caught:
        SQLiteBackend(foreign)
    assert caught.value.reason == reason


def test_sqlite_adopts_its_own_file_from_before_it_was_marked(tmp_path: Path) -> None:
    import sqlite3

    from interplay.backends.sqlite import _SCHEMA, APPLICATION_ID

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA)
    SQLiteBackend(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_sqlite_refuses_a_directory_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UnusableDataFile) as caught:
        SQLiteBackend(tmp_path / "file" / "data" / "interplay.db")
    assert caught.value.reason.startswith("cannot create its directory (")
