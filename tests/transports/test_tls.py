"""TLS: the server with a certificate (a throwaway CA's, from trustme), over real TCP; a client
that trusts the CA chats, one that does not is refused during the handshake; and
`interplay serve --tls-cert --tls-key` as a user runs it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.exceptions import StreamTerminatedError

from certs import TLSFiles, issue
from helpers import T, chat_call, runtime_for
from interplay.transports.grpc import ChatService
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.server import ServerSettings, build_server, tls_context

pytestmark = pytest.mark.anyio

INTERPLAY = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return issue(tmp_path)


@asynccontextmanager
async def tls_server(tls: TLSFiles) -> AsyncIterator[tuple[ChatService, int]]:
    async with runtime_for() as runtime:
        context = tls_context(str(tls.cert), str(tls.key))
        server, service = build_server(runtime, ServerSettings(tls=context))
        await server.start("127.0.0.1", 0, ssl=context)
        assert server._server is not None
        try:
            yield service, server._server.sockets[0].getsockname()[1]
        finally:
            server.close()
            await server.wait_closed()


async def join_and_echo(channel: Channel, user: str) -> None:
    async with chat_call(channel) as client:
        await client.join(user)
        [echo] = await client.recv_n(1)
        assert (echo.type, echo.sender_id) == (T.JOIN, user)
        await client.stream.end()
        assert await client.recv() is None


def test_the_context_asks_for_tls_1_2_and_offers_h2(tls: TLSFiles) -> None:
    context = tls_context(str(tls.cert), str(tls.key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # no client certificates: tokens identify users


async def test_a_client_trusting_the_ca_chats_over_tls_with_h2(tls: TLSFiles) -> None:
    async with tls_server(tls) as (service, port):
        channel = Channel("127.0.0.1", port, codec=WireCodec(), ssl=tls.client_context())
        try:
            await join_and_echo(channel, "ann")
            assert channel._protocol is not None
            tls_object = channel._protocol.connection._transport.get_extra_info("ssl_object")
            assert tls_object.selected_alpn_protocol() == "h2"
            assert tls_object.version() in ("TLSv1.2", "TLSv1.3")
        finally:
            channel.close()
        assert service.counters.streams_opened == 1


async def test_a_client_not_trusting_the_ca_fails_the_handshake(tls: TLSFiles) -> None:
    async with tls_server(tls) as (service, port):
        # ssl=True: grpclib's default context, the system's (or certifi's) authorities only
        untrusting = Channel("127.0.0.1", port, codec=WireCodec(), ssl=True)
        try:
            with pytest.raises(ssl.SSLCertVerificationError) as refused:
                await join_and_echo(untrusting, "mallory")
        finally:
            untrusting.close()
        assert refused.value.verify_message == "unable to get local issuer certificate"
        # a plaintext (h2c) client gets no HTTP/2 from a TLS port
        plaintext = Channel("127.0.0.1", port, codec=WireCodec())
        try:
            with pytest.raises(StreamTerminatedError, match="Connection lost"):
                await join_and_echo(plaintext, "mallory")
        finally:
            plaintext.close()
        assert service.counters.streams_opened == 0  # no call got through
        trusting = Channel("127.0.0.1", port, codec=WireCodec(), ssl=tls.client_context())
        try:
            await join_and_echo(trusting, "ann")  # and the server serves on
        finally:
            trusting.close()


@contextmanager
def interplay_serve_tls(tls: TLSFiles) -> Iterator[str]:
    """``interplay serve`` with the TLS flags, as a subprocess; its first line; SIGTERM, exit 0."""
    flags = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    with subprocess.Popen(
        [
            INTERPLAY,
            "serve",
            "--port",
            "0",
            "--ws-port",
            "0",
            "--data",
            ":memory:",
            "--log-level",
            "WARNING",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            yield process.stdout.readline()
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0, process.stderr.read()


@pytest.mark.slow
async def test_interplay_serve_with_tls_flags(tls: TLSFiles) -> None:
    with interplay_serve_tls(tls) as line:
        found = re.search(r"serving chat.ChatService on 127\.0\.0\.1:(\d+) \(TLS\)$", line)
        assert found, f"first line {line!r}"
        channel = Channel("127.0.0.1", int(found[1]), codec=WireCodec(), ssl=tls.client_context())
        try:
            await join_and_echo(channel, "ann")
        finally:
            channel.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "environment", "says"),
    [
        (["--tls-key", "{key}"], {}, "--tls-cert and --tls-key go together"),
        ([], {"INTERPLAY_TLS_CERT": "{cert}"}, "--tls-cert and --tls-key go together"),
        (
            ["--tls-cert", "{cert}", "--tls-key", "{ca}"],
            {},
            "cannot load --tls-cert .*cert.pem / --tls-key .*ca.pem: ",
        ),
    ],
    ids=["key-only", "cert-only-from-environment", "not-a-key"],
)
def test_interplay_serve_refuses_half_a_tls_setup(
    tls: TLSFiles, flags: list[str], environment: dict[str, str], says: str
) -> None:
    files = {"cert": tls.cert, "key": tls.key, "ca": tls.ca}
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INTERPLAY_TLS_")}
    done = subprocess.run(
        [INTERPLAY, "serve", "--port", "0", "--ws-port", "0", "--data", ":memory:"]
        + [flag.format(**files) for flag in flags],
        env=environ | {k: v.format(**files) for k, v in environment.items()},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1
    assert done.stdout == ""  # never started serving
    assert re.search(f"^interplay serve: {says}", done.stderr), done.stderr
