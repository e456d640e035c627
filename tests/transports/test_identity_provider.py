"""Tokens from an identity provider: RS256 and ES256, by one public key or a JWKS URL served
here by a local HTTP server; key rotation, the refresh limit, audience and issuer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from helpers import T, channel_for, chat_call
from interplay.runtime import Authenticator, JwksKeys, KeySetUnavailable, Unauthenticated

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.test/realms/interplay"
AUDIENCE = "interplay"


@dataclass
class Provider:
    """A JWKS endpoint in a thread: ``keys`` is what it serves, ``requests`` how often it was
    asked."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    url: str = ""


@contextmanager
def serving_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server in a thread for as long as the block runs; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving_jwks(provider: Provider) -> Iterator[Provider]:
    class Handler(Quiet):
        def do_GET(self) -> None:
            provider.requests += 1
            body = json.dumps({"keys": provider.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving_http(Handler) as base:
        provider.url = f"{base}/certs"
        yield provider


def provider_auth(provider: Provider) -> Authenticator:
    """Tokens from ``provider``'s key set (fetched once now), with our audience and issuer."""
    keys = JwksKeys(provider.url)
    keys.refresh()
    return Authenticator(jwks=keys, audience=AUDIENCE, issuer=ISSUER)


@dataclass
class Key:
    private: Any
    kid: str
    algorithm: str

    def jwk(self) -> dict[str, Any]:
        tool = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        public = tool.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, user: str = "ann", **claims: Any) -> str:
        body = {"sub": user, "aud": AUDIENCE, "iss": ISSUER, "exp": time.time() + 60, **claims}
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


def rsa_key(kid: str) -> Key:
    return Key(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid, "RS256")


def ec_key(kid: str) -> Key:
    return Key(ec.generate_private_key(ec.SECP256R1()), kid, "ES256")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_rotated_in_key_is_accepted_after_one_refresh_and_unknown_kids_are_limited() -> (
    None
):
    first, rotated = rsa_key("k1"), ec_key("k2")
    clock = Clock()
    with serving_jwks(Provider(keys=[first.jwk()])) as provider:
        keys = JwksKeys(provider.url, min_refresh=60, clock=clock)
        keys.refresh()  # at start, as `interplay serve` does
        auth = Authenticator(jwks=keys, audience=AUDIENCE, issuer=ISSUER)
        assert (await auth.authenticate(first.token())).user == "ann"
        assert provider.requests == 1  # served from the cache

        provider.keys.append(rotated.jwk())  # the provider rotates a key in
        clock.now = 61
        assert (await auth.authenticate(rotated.token("bob"))).user == "bob"
        assert provider.requests == 2  # one refresh, for the unknown kid

        made_up = jwt.encode(
            {"sub": "eve"}, rotated.private, algorithm="ES256", headers={"kid": "nope"}
        )
        for second in range(10):  # a stream of unknown kids within one interval
            clock.now = 62 + second
            with pytest.raises(Unauthenticated, match="no key 'nope' in the identity provider"):
                await auth.authenticate(made_up)
        assert provider.requests == 2  # no refetch before the interval has passed
        clock.now = 62 + 60
        with pytest.raises(Unauthenticated):
            await auth.authenticate(made_up)
        assert provider.requests == 3  # once per interval, no more
        assert (await auth.authenticate(first.token())).user == "ann"  # still trusted


async def test_a_wrong_audience_or_issuer_or_algorithm_is_unauthenticated() -> None:
    key = rsa_key("k1")
    with serving_jwks(Provider(keys=[key.jwk()])) as provider:
        auth = provider_auth(provider)
        cases = [
            (key.token(aud="someone-else"), "authorization: Audience doesn't match"),
            (key.token(iss="https://evil.example"), "authorization: Invalid issuer"),
            (
                jwt.encode({"sub": "ann"}, "x" * 32, algorithm="HS256"),
                "authorization: tokens signed with HS256 are not accepted here (only RS256, ES256)",
            ),
            (jwt.encode({"sub": "ann"}, None, algorithm="none"), "authorization: tokens signed"),
        ]
        for token, says in cases:
            with pytest.raises(Unauthenticated) as caught:
                await auth.authenticate(token)
            assert caught.value.message.startswith(says), caught.value.message
        no_audience = jwt.encode(
            {"sub": "ann", "iss": ISSUER}, key.private, algorithm="RS256", headers={"kid": "k1"}
        )
        with pytest.raises(Unauthenticated, match='Token is missing the "aud" claim'):
            await auth.authenticate(no_audience)


async def test_over_grpc_an_idp_token_is_the_identity_and_a_wrong_audience_is_refused() -> None:
    key = ec_key("k1")
    with serving_jwks(Provider(keys=[key.jwk()])) as provider:
        auth = provider_auth(provider)
        async with channel_for(auth=auth) as (_, channel):
            good = {"metadata": {"authorization": f"Bearer {key.token('ann')}"}}
            async with chat_call(channel, **good) as ann:
                await ann.join("")
                [echo] = await ann.recv_n(1)
                assert (echo.type, echo.sender_id) == (T.JOIN, "ann")
                await ann.stream.end()
            bad = {"metadata": {"authorization": f"Bearer {key.token('ann', aud='other')}"}}
            async with chat_call(channel, **bad) as mallory:
                with pytest.raises(GRPCError) as caught:
                    await mallory.join("ann")
                    await mallory.recv()
            assert caught.value.status is Status.UNAUTHENTICATED
            assert caught.value.message == "authorization: Audience doesn't match"


async def test_one_public_key_file_rs256_or_es256_and_hs256_beside_it() -> None:
    for key in (rsa_key("a"), ec_key("b")):
        auth = Authenticator(
            "an-hs256-secret-that-is-long-enough-32", public_key=key.pem(), audience=AUDIENCE
        )
        assert (await auth.authenticate(key.token("ann"))).user == "ann"
        assert (await auth.authenticate(auth.mint("bob"))).user == "bob"  # HS256 still works
        other = ec_key("c") if key.algorithm == "RS256" else rsa_key("c")
        with pytest.raises(Unauthenticated):
            await auth.authenticate(other.token())  # signed by someone else's key


def test_bad_auth_settings_say_why() -> None:
    with pytest.raises(ValueError, match=r"^not a PEM public key"):
        Authenticator(public_key=b"-----BEGIN NOTHING-----\n")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = p384.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match=r"^must be an RSA or an EC P-256 public key"):
        Authenticator(public_key=pem)
    with pytest.raises(ValueError, match=r"^auth: needs a secret, a public key or a JWKS URL"):
        Authenticator()


async def test_a_set_an_hour_old_is_fetched_again_and_kept_if_that_fails() -> None:
    key = rsa_key("k1")
    clock = Clock()
    with serving_jwks(Provider(keys=[key.jwk()])) as provider:
        keys = JwksKeys(provider.url, min_refresh=60, max_age=3600, clock=clock)
        keys.refresh()
        auth = Authenticator(jwks=keys, audience=AUDIENCE, issuer=ISSUER)
        clock.now = 3599
        await auth.authenticate(key.token())
        assert provider.requests == 1
        clock.now = 3600
        await auth.authenticate(key.token())
        assert provider.requests == 2  # an hour old: fetched again
        url = provider.url
    clock.now = 7300  # the provider is unreachable now: the keys at hand still serve
    assert keys.url == url
    assert (await auth.authenticate(key.token())).user == "ann"
    assert keys.fetches == 3


def test_a_jwks_url_that_does_not_answer_times_out() -> None:
    class Silent(Quiet):
        def do_GET(self) -> None:
            time.sleep(3)

    with serving_http(Silent) as base:
        keys = JwksKeys(f"{base}/certs", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(KeySetUnavailable, match="timed out"):
            keys.refresh()
        assert time.monotonic() - started < 2


def test_an_unreachable_jwks_url_is_key_set_unavailable() -> None:
    with serving_jwks(Provider()) as provider:
        url = provider.url
    keys = JwksKeys(url, timeout=2)  # the server is gone: connection refused
    with pytest.raises(KeySetUnavailable, match="Fail to fetch data from the url"):
        keys.refresh()
    with (
        serving_jwks(Provider(keys=[])) as provider,  # reachable, but no usable key
        pytest.raises(KeySetUnavailable, match="did not contain any"),
    ):
        JwksKeys(provider.url).refresh()
