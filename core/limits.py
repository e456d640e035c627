"""Limits every hub shares (the one place their defaults live)."""

from __future__ import annotations

# Characters per id: rooms, users, documents, matches, message and op ids. One setting
# (``interplay serve --max-id-length``) for ``ChatLimits``, ``DocumentLimits`` and ``GameLimits``.
MAX_ID_LENGTH = 255
