"""The conformance suites as a user runs them: pytest on a test module of theirs that
subclasses a suite. Broken code fails them with a message that says what broke (mutation
checks); importing the suites runs nothing by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from interplay.testing.backend import BackendConformance
from interplay.testing.hubs import RoomHubConformance
from interplay.testing.transport import TransportConformance
from user_project import run_pytest

pytestmark = pytest.mark.slow  # each runs pytest in a subprocess

SEQ_REUSING_BACKEND = """
from interplay.backends import MemoryBackend
from interplay.testing.backend import BackendConformance


class SeqReusingBackend(MemoryBackend):
    '''Stores every append, whatever its seq (it skips the head check).'''

    def write_now(self, writes):
        for write in writes:
            self._apply(write)


class TestSeqReusingBackend(BackendConformance):
    async def open_backend(self, storage):
        return SeqReusingBackend()
"""


def test_a_backend_that_reuses_a_seq_fails_the_suite_saying_what_that_breaks(
    tmp_path: Path,
) -> None:
    out = run_pytest(tmp_path, {"test_broken.py": SEQ_REUSING_BACKEND})
    assert "FAILED test_broken.py::TestSeqReusingBackend::test_a_seq_already_stored" in out
    assert (
        "the backend stored seq 1 of room 'lobby' a second time (its history reads [1, 2, 1]): "
        "an append whose seq is not the room's head + 1 must raise WriteConflict"
    ) in out
    assert "seq 4 is used twice in room 'lobby'" in out
    assert " failed, " in out and " passed in " in out  # checks it does not touch still pass


SENDER_SKIPPING_HUB = """
from dataclasses import replace

from interplay.core import Post, RoomHub
from interplay.testing.hubs import RoomHubConformance


class QuietRoomHub(RoomHub):
    '''Spares a sender its own TEXT (so the client never gets its acknowledgement).'''

    def handle(self, command, *, now):
        events = super().handle(command, now=now)
        if not isinstance(command, Post):
            return events
        return [replace(e, to=tuple(s for s in e.to if s != command.session)) for e in events]


class TestQuietRoomHub(RoomHubConformance):
    def make_hub(self, **options):
        return QuietRoomHub(**options)
"""


def test_a_room_hub_that_skips_the_sender_fails_the_machine_saying_so(tmp_path: Path) -> None:
    out = run_pytest(tmp_path, {"test_broken.py": SENDER_SKIPPING_HUB})
    assert "HubBroken: TestQuietRoomHub (RoomHub): room " in out
    assert "but the room's members are" in out
    assert "(every member receives it, the sender included: its copy is its acknowledgement)" in out
    assert "state = RoomHubMachine()" in out  # the steps that break it, to replay
    assert "1 failed" in out


IMPORTS = """
import interplay.testing
import interplay.testing.backend
import interplay.testing.hubs
import interplay.testing.transport
from interplay.testing import *
from interplay.testing.backend import *
from interplay.testing.hubs import *
from interplay.testing.transport import *
"""
MINE = """
from interplay.testing.backend import BackendConformance
from interplay.testing.hubs import RoomHubConformance
from interplay.testing.transport import TransportConformance


class TestMine(BackendConformance):
    pass


class TestMyHub(RoomHubConformance):
    pass


class TestMyTransport(TransportConformance):  # collected, never run here
    pass
"""


def checks(suite: type) -> set[str]:
    return {name for name in dir(suite) if name.startswith("test_")}


def test_the_suites_run_only_in_a_users_test_class(tmp_path: Path) -> None:
    """Importing the kit (names, modules, ``*``) into a test module collects nothing: each
    check is collected once, on the user's ``Test*`` class."""
    out = run_pytest(tmp_path, {"test_imports.py": IMPORTS, "test_mine.py": MINE}, "--co")
    collected = [line for line in out.splitlines() if "::" in line]
    assert collected, out
    assert all(line.startswith("test_mine.py::") for line in collected), out
    assert len(collected) == len(set(collected))
    names = {line.split("::")[2].split("[")[0] for line in collected}
    suites = (BackendConformance, RoomHubConformance, TransportConformance)
    assert names == set().union(*map(checks, suites))


FORGETFUL = """
from interplay.testing.backend import BackendConformance
from interplay.testing.transport import TransportConformance


class TestNoBackend(BackendConformance):
    pass


class TestNoTransport(TransportConformance):
    pass
"""


def test_a_suite_without_its_factory_fails_saying_what_to_implement(tmp_path: Path) -> None:
    """Not silently skipped (as an abstract class would be): each check fails, or errors in
    its setup."""
    only = "room_never_created or typing_is_relayed"
    out = run_pytest(tmp_path, {"test_forgetful.py": FORGETFUL}, "-k", only)
    assert "TestNoBackend: implement open_backend(storage) to return your backend" in out
    assert "TestNoTransport: implement listen(server, *, one_connection_per_call)" in out
    last = out.splitlines()[-1]
    assert last.startswith("1 failed") and "deselected, 1 error in" in last, out
