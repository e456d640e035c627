"""Every core and runtime error has its status: none falls through to INTERNAL."""

from __future__ import annotations

from grpclib.const import Status

from interplay.core import errors as core_errors
from interplay.core.errors import Refused
from interplay.runtime import errors as runtime_errors
from interplay.transports.grpc.errors import status_of


def _subclasses(module: object, base: type) -> list[type]:
    return [
        cls
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base
    ]


def test_every_core_error_maps_to_a_client_status_naming_the_wire_field() -> None:
    # Refused is the other direction: what a client is told, never raised by a server.
    classes = [c for c in _subclasses(core_errors, core_errors.CoreError) if c is not Refused]
    assert len(classes) >= 5
    for cls in classes:
        mapped = status_of(cls("room", "some rule"), {"room": "room_id"})
        assert mapped is not None and mapped[0] not in (Status.INTERNAL, Status.UNKNOWN), cls
        assert mapped[1] == "room_id: some rule"


def test_every_runtime_error_maps_to_its_status_with_its_message() -> None:
    classes = _subclasses(runtime_errors, runtime_errors.SessionError)
    assert len(classes) >= 4
    expected = {
        "Unauthenticated": Status.UNAUTHENTICATED,
        "ShuttingDown": Status.UNAVAILABLE,
        "SlowConsumer": Status.RESOURCE_EXHAUSTED,
        "StorageFailed": Status.UNAVAILABLE,
        "AdminDisconnect": Status.PERMISSION_DENIED,
        "AdminDisconnectResume": Status.UNAVAILABLE,
    }
    for cls in classes:
        mapped = status_of(cls("why"), {})
        assert mapped == (expected[cls.__name__], "why"), cls
    assert status_of(ValueError("x"), {}) is None  # not ours: the adapter re-raises it


def test_claiming_another_identity_maps_as_permission_denied() -> None:
    mapped = status_of(core_errors.WrongIdentity("user", "bound to 'ann'"), {"user": "sender_id"})
    assert mapped == (Status.PERMISSION_DENIED, "sender_id: bound to 'ann'")
