"""What every hub returns: who must receive which event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

E = TypeVar("E")


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver(Generic[E]):
    """Send ``message`` to each session in ``to``, after everything delivered to it before."""

    to: tuple[str, ...]
    message: E
