"""Bearer tokens: who a session acts as, and what it may touch.

With an auth secret configured, every session must come with a bearer token (a JWT signed with
the secret, HS256), however its transport carries it (gRPC: ``authorization`` metadata;
WebSocket: the header or an ``access_token`` query parameter). The token's ``sub`` is the user
the session acts as; optional ``rooms``, ``documents`` and ``matches`` claims (lists of names)
limit what it may join. No valid token: ``Unauthenticated``, before anything is read. A command
claiming another user: the core's ``WrongIdentity`` (the stream ends); one naming a
room/document/match outside the claims: ``PermissionDenied`` (that message is refused), each
naming the field. A command that names no user acts as the token's user.

PyJWT does the token work (signature, ``exp``/``nbf``/``iat`` checks, clock leeway): a library
whose whole job this is, rather than HMAC code of our own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import jwt

from interplay.core.documents import DocumentCommand, EditDocument, MoveCursor, OpenDocument
from interplay.core.errors import PermissionDenied, WrongIdentity
from interplay.core.matches import Act, JoinMatch, LeaveMatch
from interplay.core.matches import Command as MatchCommand
from interplay.core.rooms import Command as ChatCommand
from interplay.core.rooms import Join, Leave, Post, Typing

from .errors import Unauthenticated

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32

Command = ChatCommand | DocumentCommand | MatchCommand

# Per kind of command: the core's name of the user field and of the resource field (as the
# core's own errors name them; the transport's codec maps them to the wire's), and the claim.
_CHAT = ("user", "room", "rooms")
_EDIT = ("user", "document", "documents")
_GAME = ("player_id", "match_id", "matches")


@dataclass(frozen=True, slots=True)
class Identity:
    """What a verified token grants. ``None`` for a claim the token leaves out: no limit."""

    user: str
    rooms: frozenset[str] | None = None
    documents: frozenset[str] | None = None
    matches: frozenset[str] | None = None

    def authorize(self, command: Command) -> Command:
        """The command as this identity may send it (a missing user filled in), or
        ``PermissionDenied`` naming the field."""
        if isinstance(command, Join | Leave | Post | Typing):
            self._check(command.user, command.room, _CHAT)
            return command if command.user else replace(command, user=self.user)
        if isinstance(command, OpenDocument | EditDocument | MoveCursor):
            self._check(command.user, command.document, _EDIT)
            return command if command.user else replace(command, user=self.user)
        if isinstance(command, JoinMatch | LeaveMatch):
            self._check(command.player, command.match, _GAME)
            return command if command.player else replace(command, player=self.user)
        if isinstance(command, Act):
            self._check(command.action.player, command.match, _GAME)
            if command.action.player:
                return command
            return replace(command, action=replace(command.action, player=self.user))
        return command  # the end of a session: nothing to check

    def _check(self, claimed: str, resource: str, fields: tuple[str, str, str]) -> None:
        user_field, resource_field, claim = fields
        if claimed and claimed != self.user:
            raise WrongIdentity(user_field, f"the token is for {self.user!r}, not {claimed!r}")
        allowed: frozenset[str] | None = getattr(self, claim)
        if allowed is not None and resource and resource not in allowed:
            raise PermissionDenied(
                resource_field, f"the token does not grant {resource!r} (its {claim} claim)"
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

    def authenticate_header(self, header: str | None) -> Identity:
        """The identity in an ``authorization`` header's value, or ``Unauthenticated``."""
        if not header:
            raise Unauthenticated("authorization: a 'Bearer <token>' header is required")
        scheme, _, token = str(header).partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization: must be 'Bearer <token>'")
        return self.authenticate(token)

    def authenticate(self, token: str) -> Identity:
        """The identity a bare token grants, or ``Unauthenticated``."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                leeway=self._leeway,
                options={"require": ["sub"]},
            )
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"authorization: {error}") from None
        user = claims["sub"]
        if not isinstance(user, str) or not user:
            raise Unauthenticated("authorization: 'sub' must name a user")
        scopes: dict[str, frozenset[str] | None] = {}
        for claim in ("rooms", "documents", "matches"):
            value = claims.get(claim)
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise Unauthenticated(f"authorization: {claim!r} must be a list of names")
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
