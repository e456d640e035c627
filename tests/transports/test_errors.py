"""Every core error has its status: none falls through to INTERNAL."""

from __future__ import annotations

from grpclib.const import Status

from interplay.core import errors as core_errors
from interplay.transports.grpc.errors import to_grpc


def test_every_core_error_maps_to_a_client_status_naming_the_wire_field() -> None:
    classes = [
        cls
        for cls in vars(core_errors).values()
        if isinstance(cls, type)
        and issubclass(cls, core_errors.CoreError)
        and cls is not core_errors.CoreError
    ]
    assert len(classes) >= 5
    for cls in classes:
        error = to_grpc(cls("room", "some rule"), {"room": "room_id"})
        assert error.status not in (Status.INTERNAL, Status.UNKNOWN), cls
        assert error.message == "room_id: some rule"
