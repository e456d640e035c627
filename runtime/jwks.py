"""An identity provider's signing keys, from its JWKS URL (``Authenticator(jwks=...)``).

Fetched with a timeout by PyJWT's ``PyJWKClient`` (which parses the set), off the event loop
(``refresh`` blocks: it runs in a thread), cached by ``kid``, and fetched again when a token
names a ``kid`` the set does not hold, at most once per ``min_refresh`` seconds, or once the
set is ``max_age`` old (if that fetch fails, the keys at hand keep serving).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import jwt


class KeySetUnavailable(Exception):
    """The JWKS URL could not be fetched, or held no usable key."""


class JwksKeys:
    """An identity provider's signing keys, by ``kid``, from its JWKS URL (see the module
    docstring). ``refresh`` blocks (an HTTP request): the runtime calls it in a thread."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        min_refresh: float = 60.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout > 0 or not min_refresh >= 0 or not max_age > 0:
            raise ValueError("JWKS timeout and max_age must be positive, min_refresh >= 0")
        self.url = url
        self.min_refresh = min_refresh
        self.max_age = max_age
        self.fetches = 0  # attempts, for tests and statistics
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched: float | None = None  # when the last successful fetch was
        self._tried: float | None = None  # when the last attempt was
        self._lock: anyio.Lock | None = None

    def refresh(self) -> None:
        """Fetch the key set now; ``KeySetUnavailable`` if that fails (the old keys stay)."""
        self.fetches += 1
        self._tried = self._clock()
        try:
            keys = self._client.get_jwk_set(refresh=True).keys
        except jwt.PyJWTError as error:  # PyJWKClientError, PyJWKSetError (no usable key)
            raise KeySetUnavailable(f"{self.url}: {error}") from None
        self._keys = {key.key_id or "": key for key in keys}
        self._fetched = self._tried

    def key(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        """The key for ``kid``, fetching the set again (in a thread) if it is unknown and the
        last attempt is ``min_refresh`` old, or if the set is ``max_age`` old."""
        now = self._clock()
        stale = self._fetched is None or now - self._fetched >= self.max_age
        unknown = kid not in self._keys
        if (stale or unknown) and (self._tried is None or now - self._tried >= self.min_refresh):
            if self._lock is None:
                self._lock = anyio.Lock()
            async with self._lock:  # one fetch at a time; the others use its result
                if self._tried is None or self._clock() - self._tried >= self.min_refresh:
                    try:
                        await anyio.to_thread.run_sync(self.refresh)
                    except KeySetUnavailable:
                        if unknown:
                            raise
                        # a stale set that still holds the kid keeps serving until it can be
                        # fetched again
        return self._keys.get(kid)
