"""Bearer tokens: who a call acts as, and what it may touch.

With an auth secret configured, every Chat, CollaborativeEdit and GameSync call must carry
``authorization: Bearer <JWT>`` in its metadata, signed with the secret (HS256). The token's
``sub`` is the user the call acts as; optional ``rooms``, ``documents`` and ``matches`` claims
(lists of names) limit what it may join. No valid token: UNAUTHENTICATED, before anything is
read. A message claiming another user, or naming a room/document/match outside the claims:
PERMISSION_DENIED, naming the field. A message that names no user acts as the token's user.
Health and reflection stay open (load balancers and grpcurl call them without tokens).

PyJWT does the token work (signature, ``exp``/``nbf``/``iat`` checks, clock leeway): a library
whose whole job this is, rather than HMAC code of our own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from grpclib.const import Status
from grpclib.exceptions import GRPCError

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32

# Per RPC: the message field naming the user, the one naming the resource, and its claim.
FIELDS: dict[str, tuple[str, str, str]] = {
    "chat": ("sender_id", "room_id", "rooms"),
    "edit": ("user_id", "document_id", "documents"),
    "game": ("player_id", "match_id", "matches"),
}


@dataclass(frozen=True, slots=True)
class Identity:
    """What a verified token grants. ``None`` for a claim the token leaves out: no limit."""

    user: str
    rooms: frozenset[str] | None = None
    documents: frozenset[str] | None = None
    matches: frozenset[str] | None = None

    def authorize(self, rpc: str, message: Any) -> None:
        """Check one incoming message (a upb message of that RPC); fill in a missing user."""
        user_field, resource_field, claim = FIELDS[rpc]
        claimed = getattr(message, user_field)
        if not claimed:
            setattr(message, user_field, self.user)
        elif claimed != self.user:
            raise GRPCError(
                Status.PERMISSION_DENIED,
                f"{user_field}: the token is for {self.user!r}, not {claimed!r}",
            )
        allowed: frozenset[str] | None = getattr(self, claim)
        resource = getattr(message, resource_field)
        if allowed is not None and resource and resource not in allowed:
            raise GRPCError(
                Status.PERMISSION_DENIED,
                f"{resource_field}: the token does not grant {resource!r} (its {claim} claim)",
            )


class Authenticator:
    """Verifies (and, for development, mints) the tokens signed with one secret."""

    def __init__(self, secret: str, *, leeway: float = 30.0) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"auth secret: must be at least {MIN_SECRET_BYTES} bytes for HS256 (RFC 7518 "
                "§3.2); make one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
            )
        self._secret = secret
        self._leeway = leeway

    def authenticate(self, metadata: Mapping[str, Any]) -> Identity:
        """The identity in the call's ``authorization`` metadata, or UNAUTHENTICATED."""
        header = metadata.get("authorization")
        if not header:
            raise GRPCError(
                Status.UNAUTHENTICATED, "authorization: a 'Bearer <token>' header is required"
            )
        scheme, _, token = str(header).partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise GRPCError(Status.UNAUTHENTICATED, "authorization: must be 'Bearer <token>'")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                leeway=self._leeway,
                options={"require": ["sub"]},
            )
        except jwt.InvalidTokenError as error:
            raise GRPCError(Status.UNAUTHENTICATED, f"authorization: {error}") from None
        user = claims["sub"]
        if not isinstance(user, str) or not user:
            raise GRPCError(Status.UNAUTHENTICATED, "authorization: 'sub' must name a user")
        scopes: dict[str, frozenset[str] | None] = {}
        for claim in ("rooms", "documents", "matches"):
            value = claims.get(claim)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise GRPCError(
                    Status.UNAUTHENTICATED, f"authorization: {claim!r} must be a list of names"
                )
            scopes[claim] = None if value is None else frozenset(value)
        return Identity(user, **scopes)

    def mint(
        self,
        user: str,
        *,
        rooms: Iterable[str] | None = None,
        documents: Iterable[str] | None = None,
        matches: Iterable[str] | None = None,
        ttl: float | None = 24 * 3600,
        now: float | None = None,
    ) -> str:
        """A signed token for ``user`` (``interplay token``); ``ttl=None`` never expires."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"sub": user, "iat": issued}
        if ttl is not None:
            claims["exp"] = issued + int(ttl)
        for claim, names in (("rooms", rooms), ("documents", documents), ("matches", matches)):
            if names is not None:
                claims[claim] = sorted(names)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)
