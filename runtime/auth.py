"""Bearer tokens: who a session acts as, and what it may touch; and the admin API's own tokens.

With auth configured, every session must come with a bearer token (a JWT), however its
transport carries it (gRPC: ``authorization`` metadata; WebSocket: the header or an
``access_token`` query parameter). The token's ``sub`` is the user the session acts as;
optional ``rooms``, ``documents`` and ``matches`` claims (lists of names) limit what it may
join. No valid token: ``Unauthenticated``, before anything is read. A command claiming another
user: the core's ``WrongIdentity`` (the stream ends); one naming a room/document/match outside
the claims: ``PermissionDenied`` (that message is refused), each naming the field. A command
that names no user acts as the token's user.

Tokens are HS256 with a shared secret, or RS256/ES256 from an identity provider (Keycloak,
Auth0, Cognito, Google): one public key (PEM), or the provider's JWKS URL. The key set is
fetched with a timeout (off the event loop), cached, and fetched again when a token names a
``kid`` it does not hold, at most once per ``min_refresh`` seconds (so a stream of made-up
kids costs one fetch per interval, not one per call), and when it is older than ``max_age``.
``audience`` and ``issuer``, when set, must match the token's ``aud`` and ``iss``.

The admin API (``runtime/admin.py``) takes its own tokens: HS256 with the admin secret and the
audience ``interplay-admin``, with an expiry. A user's token never authorizes it.

PyJWT does the token work and the cryptography (signatures, ``exp``/``nbf``/``iat``/``aud``/
``iss`` checks, clock leeway, JWKS parsing with ``PyJWKClient``): a library whose whole job
this is, rather than code of our own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from interplay.core.documents import DocumentCommand, EditDocument, MoveCursor, OpenDocument
from interplay.core.errors import PermissionDenied, WrongIdentity
from interplay.core.matches import Act, JoinMatch, LeaveMatch
from interplay.core.matches import Command as MatchCommand
from interplay.core.rooms import Command as ChatCommand
from interplay.core.rooms import Join, Leave, Post, Typing

from .errors import Unauthenticated
from .jwks import JwksKeys, KeySetUnavailable

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
ADMIN_AUDIENCE = "interplay-admin"

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


def bearer_token(header: str | None) -> str:
    """The token of an ``authorization`` header's value, or ``Unauthenticated``."""
    if not header:
        raise Unauthenticated("authorization: a 'Bearer <token>' header is required")
    scheme, _, token = str(header).partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("authorization: must be 'Bearer <token>'")
    return token


def _check_secret(what: str, secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"{what}: must be at least {MIN_SECRET_BYTES} bytes for HS256 (RFC 7518 §3.2); "
            "make one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )


def load_public_key(pem: bytes) -> tuple[Any, str]:
    """An identity provider's public key (PEM) and the algorithm it verifies: RS256 for RSA,
    ES256 for EC P-256; ``ValueError`` saying why otherwise."""
    try:
        key = load_pem_public_key(pem)
    except ValueError as error:
        raise ValueError(f"not a PEM public key ({error})") from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ValueError("must be an RSA or an EC P-256 public key (RS256 or ES256)")


class Authenticator:
    """Verifies users' tokens: HS256 with ``secret``, RS256/ES256 with ``public_key`` (PEM) or
    the keys at a JWKS URL (``jwks``); and, for development, mints HS256 ones."""

    def __init__(
        self,
        secret: str | None = None,
        *,
        public_key: bytes | None = None,
        jwks: JwksKeys | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 30.0,
    ) -> None:
        if secret is None and public_key is None and jwks is None:
            raise ValueError("auth: needs a secret, a public key or a JWKS URL")
        if public_key is not None and jwks is not None:
            raise ValueError("auth: a public key or a JWKS URL, not both")
        if secret is not None:
            _check_secret("auth secret", secret)
        self._secret = secret
        self._public: tuple[Any, str] | None = None
        if public_key is not None:
            self._public = load_public_key(public_key)
        self.jwks = jwks
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway

    async def authenticate_header(self, header: str | None) -> Identity:
        """The identity in an ``authorization`` header's value, or ``Unauthenticated``."""
        return await self.authenticate(bearer_token(header))

    async def authenticate(self, token: str) -> Identity:
        """The identity a bare token grants, or ``Unauthenticated``."""
        algorithm, kid = self._header(token)
        key: Any
        if algorithm in ("RS256", "ES256") and self.jwks is not None:
            try:
                key = await self.jwks.key_for(kid)
            except KeySetUnavailable as error:
                raise Unauthenticated(
                    f"authorization: cannot fetch the key set ({error})"
                ) from None
            if key is None:
                raise Unauthenticated(
                    f"authorization: no key {kid!r} in the identity provider's key set"
                )
        else:
            key = self._key(algorithm)
        return self._verify(token, key, algorithm)

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is a valid user token, from the keys at hand (no fetch)."""
        try:
            algorithm, kid = self._header(token)
            if algorithm in ("RS256", "ES256") and self.jwks is not None:
                key: Any = self.jwks.key(kid)
                if key is None:
                    return False
            else:
                key = self._key(algorithm)
            self._verify(token, key, algorithm)
        except Unauthenticated:
            return False
        return True

    @staticmethod
    def _header(token: str) -> tuple[str, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"authorization: {error}") from None
        return str(header.get("alg", "")), str(header.get("kid", ""))

    def _key(self, algorithm: str) -> Any:
        """The key that verifies ``algorithm`` (without a JWKS), or ``Unauthenticated``."""
        if algorithm == ALGORITHM and self._secret is not None:
            return self._secret
        if self._public is not None and algorithm == self._public[1]:
            return self._public[0]
        accepted = [
            name
            for name, on in (
                (ALGORITHM, self._secret is not None),
                (self._public[1] if self._public else "", self._public is not None),
                ("RS256, ES256", self.jwks is not None),
            )
            if on
        ]
        raise Unauthenticated(
            f"authorization: tokens signed with {algorithm or 'no algorithm'} are not "
            f"accepted here (only {', '.join(accepted)})"
        )

    def _verify(self, token: str, key: Any, algorithm: str) -> Identity:
        required = ["sub"] + ["aud"] * bool(self._audience) + ["iss"] * bool(self._issuer)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": required},
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
        """A signed HS256 token for ``user`` (``interplay token``); ``ttl=None`` never
        expires."""
        if self._secret is None:
            raise ValueError("auth: minting needs the HS256 secret")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"sub": user, "iat": issued}
        if ttl is not None:
            claims["exp"] = issued + int(ttl)
        if self._audience:
            claims["aud"] = self._audience
        if self._issuer:
            claims["iss"] = self._issuer
        for claim, names in (("rooms", rooms), ("documents", documents), ("matches", matches)):
            if names is not None:
                claims[claim] = sorted(names)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)


class AdminAuthenticator:
    """The admin API's tokens: HS256 with the admin secret, audience ``interplay-admin``, an
    expiry required (a leaked one stops working)."""

    def __init__(self, secret: str, *, leeway: float = 30.0) -> None:
        _check_secret("admin secret", secret)
        self._secret = secret
        self._leeway = leeway

    def verify(self, token: str) -> None:
        """Nothing if ``token`` is an admin token; else ``jwt.InvalidTokenError``."""
        jwt.decode(
            token,
            self._secret,
            algorithms=[ALGORITHM],
            audience=ADMIN_AUDIENCE,
            leeway=self._leeway,
            options={"require": ["aud", "exp"]},
        )

    def mint(self, *, ttl: float = 300, now: float | None = None) -> str:
        """An admin token valid for ``ttl`` seconds (``interplay admin`` makes one per call)."""
        issued = int(time.time() if now is None else now)
        claims = {"aud": ADMIN_AUDIENCE, "iat": issued, "exp": issued + int(ttl)}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)
