"""A message refused by a rule of its own: told to its sender alone; the stream goes on.

DESIGN §4 "Errors": a message that breaks a rule of its own (too large, a room not joined, a
value out of range, outside the token's claims, an unknown action) is refused, not the stream.
The runtime hands the sender's codec a ``Refusal`` to encode like any other event: the wire
message as it was received (the codec names it back: its ``id``, ``op_id`` or ``sequence``)
and the ``CoreError`` saying the field and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interplay.core.errors import CoreError, Expired, WrongIdentity


@dataclass(frozen=True, slots=True)
class Refusal:
    """``request`` (a wire message, opaque to the runtime) was refused with ``error``."""

    request: Any
    error: CoreError


def refuses_the_message(error: BaseException) -> bool:
    """A ``CoreError`` refuses its message; two end the stream instead: claiming another
    identity than the stream's (``WrongIdentity``), a fault of the stream, and an edit based on
    a revision no longer kept (``Expired``): the client must join again and rebase its edits
    onto the snapshot (transient ABORTED), or it would drop them."""
    return isinstance(error, CoreError) and not isinstance(error, WrongIdentity | Expired)
