"""The ``interplay`` command: the composition root.

This is the one module that reads configuration (flags, with ``INTERPLAY_*`` environment
variables as their defaults) and wires core, store and transport together.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import logging
import os
import re
import secrets
import ssl
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from interplay.runtime.auth import AdminAuthenticator, Authenticator
    from interplay.runtime.backend import Backend

DEFAULT_DATA = Path("interplay-data") / "interplay.db"

T = TypeVar("T")


def _env(name: str, default: T) -> T | str:
    """``INTERPLAY_<name>`` if set, else ``default``: a flag's default (argparse parses a
    string default with the flag's ``type``, as it does the flag's own value)."""
    return os.environ.get(f"INTERPLAY_{name}", default)


class _Parser(argparse.ArgumentParser):
    """argparse, except that a bad flag or variable is one line (usage is in ``--help``),
    naming the ``INTERPLAY_*`` variable when the bad value came from one."""

    def error(self, message: str) -> NoReturn:
        flag = re.match(r"argument (?:[^ :]*/)?(--[a-z-]+)", message)
        if flag is not None:
            variable = "INTERPLAY_" + flag.group(1)[2:].replace("-", "_").upper()
            given = any(a == flag.group(1) or a.startswith(flag.group(1) + "=") for a in sys.argv)
            if variable in os.environ and not given:
                message += f" (from {variable}={os.environ[variable]!r})"
        self.exit(2, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    from interplay import __version__
    from interplay.transports.grpc.server import ServerSettings

    server = ServerSettings()
    parser = _Parser(prog="interplay", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"interplay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser(
        "serve",
        help="run the gRPC server (chat.ChatService) with the embedded SQLite store",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _serve_flags(serve)
    _operations_flags(serve)
    _admin_command(commands, server)
    chat = commands.add_parser(
        "chat",
        help="chat in a terminal (reconnects and resumes by itself)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _chat_flags(chat, f"{server.host}:{server.port}")
    health = commands.add_parser(
        "health",
        help="exit 0 if a server answers SERVING to the gRPC health check (for HEALTHCHECK)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _health_flags(health, f"{server.host}:{server.port}")
    token = commands.add_parser(
        "token",
        help="mint a bearer token for development (signed with the server's auth secret)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    token.add_argument("--user", required=True, help="the user the token acts as ('sub')")
    for claim, what in (("rooms", "rooms"), ("documents", "documents"), ("matches", "matches")):
        token.add_argument(
            f"--{claim}",
            type=_names,
            default=None,
            help=f"comma-separated {what} it may join (default: any)",
        )
    token.add_argument("--ttl", type=float, default=24 * 3600, help="seconds; 0 = no expiry")
    token.add_argument(
        "--auth-secret", default=None, help="the server's secret [INTERPLAY_AUTH_SECRET]"
    )
    return parser


def _chat_flags(chat: argparse.ArgumentParser, server: str) -> None:
    """The flags of ``interplay chat``."""
    chat.add_argument("--room", required=True, help="the room to join first")
    chat.add_argument("--user", required=True, help="who you are in the rooms")
    chat.add_argument(
        "--server",
        default=_env("SERVER", server),
        help="HOST:PORT; an IPv6 address in brackets: [::1]:50051 [INTERPLAY_SERVER]",
    )
    chat.add_argument(
        "--token", default=None, help="bearer token, if the server wants one [INTERPLAY_TOKEN]"
    )
    chat.add_argument(
        "--tls",
        action="store_true",
        help="connect over TLS, trusting the system's certificate authorities",
    )
    chat.add_argument(
        "--tls-ca",
        default=_env("TLS_CA", "") or None,
        metavar="PEM",
        help="connect over TLS, trusting the authority (or self-signed certificate) in this "
        "file [INTERPLAY_TLS_CA]",
    )


def _health_flags(health: argparse.ArgumentParser, server: str) -> None:
    health.add_argument(
        "--server", default=_env("SERVER", server), help="HOST:PORT [INTERPLAY_SERVER]"
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for it")
    health.add_argument("--tls", action="store_true", help="over TLS (the system's authorities)")
    health.add_argument("--tls-ca", default=None, metavar="PEM", help="over TLS, trusting this")


def _health(args: argparse.Namespace) -> int:
    """The standard gRPC health check of chat.ChatService: 0 when SERVING, else 1 and why."""
    from grpclib.client import Channel
    from grpclib.health.v1.health_grpc import HealthStub
    from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

    host, port = _host_port(args.server, "health")
    tls = _client_tls(args.tls, args.tls_ca)

    async def check() -> str:
        channel = Channel(host, port, ssl=tls)
        try:
            request = HealthCheckRequest(service="chat.ChatService")
            reply = await HealthStub(channel).Check(request, timeout=args.timeout)
            return str(HealthCheckResponse.ServingStatus.Name(reply.status))
        finally:
            channel.close()

    try:
        status = asyncio.run(check())
    except Exception as error:  # refused, timed out, not gRPC: unhealthy, say why
        status = f"{type(error).__name__}: {error}"
    print(f"interplay health: {args.server}: {status}")
    return 0 if status == "SERVING" else 1


def _serve_flags(serve: argparse.ArgumentParser) -> None:
    """The flags of ``interplay serve``. Their defaults are those of the settings they fill
    (the dataclasses and RoomHub's constructor say them once); a flag marked [INTERPLAY_X]
    takes that variable instead when it is set (argparse parses it with the flag's type)."""
    from interplay.core.documents import DocumentLimits
    from interplay.core.matches import GameLimits, GameSettings
    from interplay.core.rooms import ChatLimits, RoomHub
    from interplay.runtime.node_matches import LEASE as MATCH_LEASE
    from interplay.runtime.settings import Settings
    from interplay.transports.grpc.server import ServerSettings
    from interplay.transports.websocket.server import WebSocketSettings

    server, flow, chat = ServerSettings(), Settings(), ChatLimits()
    websocket = WebSocketSettings()
    documents, games, players = DocumentLimits(), GameSettings(), GameLimits()
    room_hub = inspect.signature(RoomHub).parameters

    serve.add_argument(
        "--host", default=_env("HOST", server.host), help="address to listen on [INTERPLAY_HOST]"
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=_env("PORT", server.port),
        help="port to listen on; 0 = any free one [INTERPLAY_PORT]",
    )
    serve.add_argument(
        "--ws-port",
        type=int,
        default=_env("WS_PORT", websocket.port),
        help="port of the WebSocket endpoints (/chat, /edit, /game) and the browser app "
        "(http://HOST:PORT/), on --host; 0 = no WebSocket [INTERPLAY_WS_PORT]",
    )
    serve.add_argument(
        "--data",
        default=_env("DATA", str(DEFAULT_DATA)),
        help="SQLite file for chat history and documents, or ':memory:' [INTERPLAY_DATA]",
    )
    serve.add_argument(
        "--redis",
        default=_env("REDIS", "") or None,
        metavar="redis://HOST:PORT/DB",
        help="be one node of many sharing rooms through this Redis (instead of --data) "
        "[INTERPLAY_REDIS]",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=_env("WORKERS", 1),
        help="node processes on this port (SO_REUSEPORT), one per core; more than 1 needs "
        "--redis [INTERPLAY_WORKERS]",
    )
    serve.add_argument(
        "--loop",
        default=_env("LOOP", "auto"),
        type=_one_of("auto", "asyncio", "uvloop", case=str.lower),
        metavar="{auto,asyncio,uvloop}",
        help="event loop; auto = uvloop when installed (pip install 'interplay[uvloop]') "
        "[INTERPLAY_LOOP]",
    )
    serve.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        type=_one_of("DEBUG", "INFO", "WARNING", "ERROR", case=str.upper),
        metavar="{DEBUG,INFO,WARNING,ERROR}",
        help="what to log, any case (DEBUG: a line per call, with the peer; nothing is logged "
        "per message) [INTERPLAY_LOG_LEVEL]",
    )
    serve.add_argument(
        "--auth-secret",
        default=None,
        help="require bearer tokens (JWT, HS256) signed with this secret; mint them with "
        "'interplay token' [INTERPLAY_AUTH_SECRET; the variable keeps it out of ps]",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=_env("GRACE", server.grace),
        help="seconds a shutdown (SIGTERM) waits for calls to flush and end [INTERPLAY_GRACE]",
    )
    serve.add_argument(
        "--metrics-port",
        type=_port,
        default=_env("METRICS_PORT", server.metrics_port or 0),
        help="serve Prometheus metrics at http://HOST:PORT/metrics on this port, HOST being "
        "--host; 0 = no metrics [INTERPLAY_METRICS_PORT]",
    )
    serve.add_argument(
        "--tls-cert",
        default=_env("TLS_CERT", "") or None,
        help="serve over TLS with this certificate chain (PEM); needs --tls-key "
        "[INTERPLAY_TLS_CERT]",
    )
    serve.add_argument(
        "--tls-key",
        default=_env("TLS_KEY", "") or None,
        help="the private key (PEM) of --tls-cert [INTERPLAY_TLS_KEY]",
    )
    wire = serve.add_argument_group("connection limits")
    wire.add_argument(
        "--keepalive-time",
        type=float,
        default=_env("KEEPALIVE_TIME", server.keepalive_time or 0),
        help="seconds between HTTP/2 pings on each connection; 0 = no pings "
        "[INTERPLAY_KEEPALIVE_TIME]",
    )
    wire.add_argument(
        "--keepalive-timeout",
        type=float,
        default=_env("KEEPALIVE_TIMEOUT", server.keepalive_timeout),
        help="seconds to wait for a ping's ack; then the connection is dropped and its "
        "members leave their rooms (within time + timeout of losing them) "
        "[INTERPLAY_KEEPALIVE_TIMEOUT]",
    )
    wire.add_argument(
        "--max-message-bytes",
        type=int,
        default=server.max_message_bytes,
        help="bytes per received message, checked before it is read",
    )
    wire.add_argument(
        "--max-streams",
        type=int,
        default=server.max_streams,
        help="concurrent calls per HTTP/2 connection",
    )
    limits = serve.add_argument_group("chat limits")
    limits.add_argument(
        "--history",
        type=int,
        default=room_hub["history"].default,
        help="messages a joiner receives (also the id-idempotency window)",
    )
    limits.add_argument(
        "--retain",
        type=int,
        default=room_hub["retain"].default,
        help="messages kept per room for resume",
    )
    limits.add_argument(
        "--max-content-bytes",
        type=int,
        default=chat.max_content_bytes,
        help="UTF-8 bytes per chat message",
    )
    limits.add_argument(
        "--max-id-length",
        type=int,
        default=chat.max_id_length,
        help="characters per id (rooms, users, documents, matches, message ids)",
    )
    limits.add_argument(
        "--max-rooms", type=int, default=chat.max_rooms, help="rooms per chat stream"
    )
    limits.add_argument(
        "--max-rate",
        type=float,
        default=flow.rate,
        help="chat messages per second per stream (a faster sender waits); 0 = off",
    )
    limits.add_argument(
        "--burst", type=int, default=flow.burst, help="chat messages above the rate"
    )
    edit = serve.add_argument_group("documents (CollaborativeEdit)")
    edit.add_argument(
        "--max-documents",
        type=int,
        default=documents.max_documents,
        help="documents per editing stream",
    )
    edit.add_argument(
        "--max-inserted-chars",
        type=int,
        default=documents.max_inserted_chars,
        help="code points per insert",
    )
    game = serve.add_argument_group("games (GameSync)")
    game.add_argument(
        "--tick-hz",
        type=float,
        default=_env("TICK_HZ", games.tick_hz),
        help="ticks per second per match [INTERPLAY_TICK_HZ]",
    )
    game.add_argument(
        "--full-every",
        type=int,
        default=games.full_every,
        help="ticks between full game states",
    )
    game.add_argument(
        "--max-catch-up",
        type=int,
        default=games.max_catch_up,
        help="missed ticks run on a late wake-up (the rest are skipped)",
    )
    game.add_argument(
        "--match-grace",
        type=float,
        default=games.grace,
        help="seconds an empty match is kept",
    )
    game.add_argument(
        "--match-lease",
        type=float,
        default=MATCH_LEASE,
        help="with --redis: seconds a match's owner holds it unrenewed; once they pass, "
        "another node takes it over",
    )
    game.add_argument(
        "--max-matches", type=int, default=players.max_matches, help="matches per server"
    )
    game.add_argument(
        "--max-players", type=int, default=players.max_players, help="players per match"
    )
    game.add_argument(
        "--max-actions",
        type=float,
        default=players.actions_per_second,
        help="game actions per second per player",
    )
    queues = serve.add_argument_group("flow control")
    queues.add_argument(
        "--high-water",
        type=int,
        default=flow.high_water,
        help="messages queued for one stream above which a chat stream reads from the log "
        "(an editing stream's documents pause their senders)",
    )
    queues.add_argument(
        "--low-water",
        type=int,
        default=flow.low_water,
        help="messages queued at which a stream reads its next log page, or rejoins live "
        "delivery once caught up (an editing stream's documents resume)",
    )
    queues.add_argument(
        "--drain-timeout",
        type=float,
        default=flow.drain_timeout,
        help="seconds a stream holding queued messages may write nothing before it is cut "
        "(slow consumer)",
    )
    queues.add_argument(
        "--session-budget",
        type=int,
        default=flow.session_budget,
        help="bytes queued for one stream above which it reads from the log",
    )
    queues.add_argument(
        "--connection-budget",
        type=int,
        default=flow.connection_budget,
        help="bytes queued for the streams of one connection: above it the fullest reads "
        "from the log",
    )
    queues.add_argument(
        "--server-budget",
        type=int,
        default=flow.server_budget,
        help="bytes queued for every stream: above it the fullest read from the log, then "
        "readers wait (0 = an eighth of the machine's memory, 64 MiB to 1 GiB)",
    )
    queues.add_argument(
        "--log-page",
        type=int,
        default=flow.log_page,
        help="messages per log read of a stream that reads from the log",
    )


def _operations_flags(serve: argparse.ArgumentParser) -> None:
    """The flags for running it for real: identity-provider tokens, the admin API, retention."""
    auth = serve.add_argument_group("identity-provider tokens (RS256, ES256)")
    auth.add_argument(
        "--auth-public-key",
        default=_env("AUTH_PUBLIC_KEY", "") or None,
        metavar="FILE",
        help="require bearer tokens signed by this RSA or EC P-256 public key (PEM) "
        "[INTERPLAY_AUTH_PUBLIC_KEY]",
    )
    auth.add_argument(
        "--auth-jwks",
        default=_env("AUTH_JWKS", "") or None,
        metavar="URL",
        help="require bearer tokens signed by a key of this JWKS (an identity provider's "
        "certs URL; fetched at start, cached, fetched again for an unknown kid at most once a "
        "minute) [INTERPLAY_AUTH_JWKS]",
    )
    auth.add_argument(
        "--auth-audience",
        default=_env("AUTH_AUDIENCE", "") or None,
        help="the 'aud' every token must carry [INTERPLAY_AUTH_AUDIENCE]",
    )
    auth.add_argument(
        "--auth-issuer",
        default=_env("AUTH_ISSUER", "") or None,
        help="the 'iss' every token must carry [INTERPLAY_AUTH_ISSUER]",
    )
    operations = serve.add_argument_group("server API and retention")
    operations.add_argument(
        "--admin-secret",
        default=None,
        help="serve the admin API (interplay.admin.v1.AdminService) to tokens signed with this "
        "secret; 'interplay admin' makes them [INTERPLAY_ADMIN_SECRET; keeps it out of ps]",
    )
    operations.add_argument(
        "--history-ttl",
        type=_duration,
        default=_env("HISTORY_TTL", None),
        metavar="DURATION",
        help="trim chat messages older than this (e.g. 30d, 12h, 90m, 3600s) and forget rooms "
        "left empty; default: keep by count only (--retain) [INTERPLAY_HISTORY_TTL]",
    )


def _admin_command(commands: Any, server: Any) -> None:
    """``interplay admin CALL ...``: the server API from a terminal (``interplay.admin``)."""
    from interplay.admin import add_commands

    admin = commands.add_parser(
        "admin",
        help="call the server API: publish, presence, history, disconnect, delete-history, "
        "snapshot, matches",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    admin.add_argument(
        "--server",
        default=_env("SERVER", f"{server.host}:{server.port}"),
        help="HOST:PORT [INTERPLAY_SERVER]",
    )
    admin.add_argument(
        "--admin-secret", default=None, help="the server's admin secret [INTERPLAY_ADMIN_SECRET]"
    )
    add_commands(admin)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``3600s`` or ``3600``."""
    number, unit = (value[:-1], value[-1]) if value[-1:] in _UNITS else (value, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: a duration like 30d, 12h, 90m or 3600s"
        ) from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: must be a positive duration")
    return seconds


def _names(value: str) -> list[str]:
    """A comma-separated list, each name stripped ("lobby, dev" is lobby and dev)."""
    return [name for name in (part.strip() for part in value.split(",")) if name]


def _one_of(*names: str, case: Callable[[str], str]) -> Callable[[str], str]:
    """A flag's type: one of ``names``, in any case. (argparse's ``choices`` are not checked
    against a default, and an INTERPLAY_* variable is one.)"""

    def parse(value: str) -> str:
        if case(value) not in names:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(names)}, got {value!r}")
        return case(value)

    return parse


def _port(value: str) -> int:
    """A port number: 0 (any free one) to 65535."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 0 to 65535 (0: any free one), got {value!r}"
        )
    return port


def _refuse(flag: str, cause: object) -> NoReturn:
    """A setting the server cannot start with: one line naming the flag and the cause, exit
    status 2 (a usage error, as argparse's own), no traceback."""
    print(f"interplay serve: {flag}: {cause}", file=sys.stderr)
    raise SystemExit(2)


def _authenticators(
    args: argparse.Namespace,
) -> tuple[Authenticator | None, AdminAuthenticator | None]:
    """Who may open sessions (HS256 secret, identity provider's key or JWKS) and who may call
    the admin API; each bad setting refused naming its flag. The JWKS is fetched now: a URL
    the server cannot reach stops it at start, not at the first client."""
    from interplay.runtime.auth import AdminAuthenticator, Authenticator, load_public_key
    from interplay.runtime.jwks import JwksKeys, KeySetUnavailable

    secret = _secret(args)
    admin_secret = args.admin_secret or os.environ.get("INTERPLAY_ADMIN_SECRET") or None
    public_key, jwks = None, None
    if args.auth_public_key is not None and args.auth_jwks is not None:
        _refuse("--auth-public-key", "give it or --auth-jwks, not both")
    if args.auth_public_key is not None:
        try:
            public_key = Path(args.auth_public_key).read_bytes()
        except OSError as error:
            _refuse("--auth-public-key", f"cannot read {args.auth_public_key} ({error.strerror})")
    if public_key is not None:
        try:
            load_public_key(public_key)
        except ValueError as error:
            _refuse("--auth-public-key", f"{args.auth_public_key}: {error}")
    if secret is not None:
        try:
            Authenticator(secret)
        except ValueError as error:
            _refuse("--auth-secret", error)
    if args.auth_jwks is not None:
        if not args.auth_jwks.startswith(("https://", "http://")):
            _refuse("--auth-jwks", f"must be an http(s) URL, got {args.auth_jwks!r}")
        jwks = JwksKeys(args.auth_jwks)
        try:
            jwks.refresh()
        except KeySetUnavailable as error:
            _refuse("--auth-jwks", f"cannot fetch the key set from {error}")
    auth = None
    if secret or public_key is not None or jwks is not None:
        auth = Authenticator(
            secret,
            public_key=public_key,
            jwks=jwks,
            audience=args.auth_audience,
            issuer=args.auth_issuer,
        )
    elif args.auth_audience or args.auth_issuer:
        flag = "--auth-audience" if args.auth_audience else "--auth-issuer"
        _refuse(flag, "needs --auth-secret, --auth-public-key or --auth-jwks")
    admin = None
    if admin_secret is not None:
        if admin_secret == secret:
            _refuse("--admin-secret", "must differ from --auth-secret")
        try:
            admin = AdminAuthenticator(admin_secret)
        except ValueError as error:
            _refuse("--admin-secret", error)
    return auth, admin


def _open_backend(data: str) -> Backend:
    """The backend over ``--data``, or a refusal naming it (not a database, another
    program's, a directory that cannot be made or written)."""
    from interplay.backends import UnusableDataFile

    try:
        return _backend(data)
    except UnusableDataFile as error:
        _refuse("--data", error)


def _listening(failure: BaseException) -> None:
    """Refuse with the flag of the address the server could not listen on (``CannotListen``,
    alone or the only one in an exception group); None for anything else."""
    from interplay.serving import CannotListen
    from interplay.workers import WorkerFailed

    while isinstance(failure, BaseExceptionGroup) and len(failure.exceptions) == 1:
        failure = failure.exceptions[0]
    if isinstance(failure, CannotListen):
        _refuse("--" + failure.setting.replace("_", "-"), failure.reason)
    if isinstance(failure, WorkerFailed):
        print(f"interplay serve: {failure}", file=sys.stderr)
        raise SystemExit(1)
    return None


def _secret(args: argparse.Namespace) -> str | None:
    return args.auth_secret or os.environ.get("INTERPLAY_AUTH_SECRET") or None


def _token(args: argparse.Namespace) -> int:
    from interplay.runtime.auth import Authenticator

    secret = _secret(args)
    if secret is None:
        raise SystemExit("interplay token: --auth-secret or INTERPLAY_AUTH_SECRET is required")
    try:
        authenticator = Authenticator(secret)
    except ValueError as error:
        raise SystemExit(f"interplay token: {error}") from None
    minted = authenticator.mint(
        args.user,
        rooms=args.rooms,
        documents=args.documents,
        matches=args.matches,
        ttl=args.ttl or None,
    )
    print(minted)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from interplay.chat import run_chat

    host, port = _host_port(args.server, "chat")
    token = args.token or os.environ.get("INTERPLAY_TOKEN")
    tls = _client_tls(args.tls, args.tls_ca)
    main = run_chat(host, port, room=args.room, user=args.user, token=token, tls=tls)
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # never a traceback in the person's terminal
        print(f"interplay chat: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def _host_port(server: str, command: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for an IPv6 address) of ``--server``, checked."""
    host, _, port = server.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        _usage_error(
            f"interplay {command}: --server must be HOST:PORT with a port in 1-65535 "
            f"(an IPv6 address as [::1]:50051), got {server!r}"
        )
    return host, int(port)


def _usage_error(line: str) -> NoReturn:
    """A bad flag: one line, exit 2 (argparse's own code for usage errors)."""
    print(line, file=sys.stderr)
    raise SystemExit(2)


def _client_tls(system: bool, ca: str | None) -> ssl.SSLContext | None:
    """The client's TLS context: None (plaintext), the system's authorities, or ``ca``'s."""
    if ca is None and not system:
        return None
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as error:
        _usage_error(f"interplay chat: cannot load --tls-ca {ca}: {error}")
    context.set_alpn_protocols(["h2"])  # gRPC insists on HTTP/2
    return context


def _serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from interplay.core.documents import DocumentHub, DocumentLimits
    from interplay.core.matches import GameLimits, GameSettings, MatchHub
    from interplay.core.rooms import ChatLimits, RoomHub
    from interplay.runtime import Runtime, Settings
    from interplay.serving import serve
    from interplay.transports.grpc import ServerSettings
    from interplay.transports.websocket.server import WebSocketSettings, default_web_root
    from interplay.workers import Workers

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ports = {"--port": args.port, "--ws-port": args.ws_port, "--metrics-port": args.metrics_port}
    for flag, other in (
        ("--port", "--ws-port"),
        ("--port", "--metrics-port"),
        ("--ws-port", "--metrics-port"),
    ):
        if ports[flag] and ports[flag] == ports[other]:
            raise SystemExit(f"interplay serve: {other} must differ from {flag}")
    last_metrics = args.metrics_port + max(args.workers, 1) - 1  # one port per worker
    for flag in ("--port", "--ws-port"):
        if args.metrics_port and args.metrics_port < ports[flag] <= last_metrics:
            _usage_error(
                f"interplay serve: {args.workers} workers serve metrics on ports "
                f"{args.metrics_port} to {last_metrics}, one each: {flag} must be outside them"
            )
    if args.workers < 1:
        _usage_error(f"interplay serve: --workers must be at least 1, got {args.workers}")
    if not args.match_lease > 0:  # NaN fails too
        _usage_error(f"interplay serve: --match-lease must be positive, got {args.match_lease}")
    if args.workers > 1 and not args.redis:
        _usage_error(
            "interplay serve: --workers needs --redis: separate processes share rooms only "
            "through Redis (one SQLite file has one writer)"
        )
    tls = _tls(args)
    try:  # each settings class checks its own fields (and names the field and the rule)
        games = MatchHub(
            settings=GameSettings(
                tick_hz=args.tick_hz,
                full_every=args.full_every,
                max_catch_up=args.max_catch_up,
                grace=args.match_grace,
            ),
            limits=GameLimits(
                max_id_length=args.max_id_length,
                max_matches=args.max_matches,
                max_players=args.max_players,
                actions_per_second=args.max_actions,
            ),
        )
        hub = RoomHub(
            history=args.history,
            retain=args.retain,
            ttl=args.history_ttl,
            limits=ChatLimits(
                max_content_bytes=args.max_content_bytes,
                max_id_length=args.max_id_length,
                max_rooms=args.max_rooms,
            ),
        )
        documents = DocumentHub(
            limits=DocumentLimits(
                max_inserted_chars=args.max_inserted_chars,
                max_id_length=args.max_id_length,
                max_documents=args.max_documents,
            ),
        )
        runtime_settings = Settings(
            high_water=args.high_water,
            low_water=args.low_water,
            drain_timeout=args.drain_timeout,
            session_budget=args.session_budget,
            connection_budget=args.connection_budget,
            server_budget=args.server_budget,
            log_page=args.log_page,
            rate=args.max_rate,
            burst=args.burst,
        )
        settings = ServerSettings(
            host=args.host,
            port=args.port,
            max_message_bytes=args.max_message_bytes,
            max_streams=args.max_streams,
            grace=args.grace,
            tls=tls,
            keepalive_time=args.keepalive_time or None,  # 0: no pings
            keepalive_timeout=args.keepalive_timeout,
            metrics_port=args.metrics_port or None,  # 0: no metrics (else + worker index)
            reuse_port=args.workers > 1,
        )
        websocket = None
        if args.ws_port:  # 0: no WebSocket
            websocket = WebSocketSettings(
                host=args.host,
                port=args.ws_port,
                max_message_bytes=args.max_message_bytes,
                grace=args.grace,
                tls=_tls(args, websocket=True),
                web_root=default_web_root(),
                reuse_port=args.workers > 1,
            )
    except ValueError as error:
        print(f"interplay serve: {error}", file=sys.stderr)
        return 2  # a usage error, as argparse's own
    auth, admin = _authenticators(args)
    node = None
    if args.redis:
        from interplay.backends.redis import RedisEngine
        from interplay.runtime.node import Node

        workers = Workers.fork(args.workers)
        if args.metrics_port:
            settings = replace(settings, metrics_port=args.metrics_port + workers.index)
        engine = RedisEngine(args.redis, retain=args.retain, node=secrets.token_hex(4))
        backend: Backend = engine
        node = Node(engine, match_lease=args.match_lease)
        lock = None
    else:
        workers = Workers(1)
        backend = _open_backend(args.data)
        lock = _lock_data(args.data)  # held until the process exits

    async def main() -> None:
        try:
            async with Runtime(
                backend,
                rooms=hub,
                documents=documents,
                games=games,
                settings=runtime_settings,
                auth=auth,
                admin=admin,
                node=node,
            ) as runtime:
                await serve(
                    runtime,
                    settings,
                    websocket,
                    ready=workers.ready,
                    announce=workers.first,
                    workers=workers.count,
                )
        finally:
            await backend.aclose()

    _tune_gc()
    try:
        _run(main(), args.loop)
    except BaseException as failure:
        _listening(failure)
        raise
    finally:
        if lock is not None:
            os.close(lock)
        workers.stop()
    return 0


# Allocations between the cyclic GC's young collections (CPython's default: 700, 10, 10).
# The hot paths allocate many short-lived objects that form no cycles, while each older
# collection walks everything the server keeps (rooms' windows, the messages lately
# delivered, queued broadcasts): at the defaults the GC took ~14 % of the server's CPU on
# bench/chat_load.py 1 x 2, ~2 % at these (gc.callbacks; bench/README.md, issue 13).
GC_THRESHOLDS = (10_000, 10, 10)


def _tune_gc() -> None:
    """Once the server is set up, what it holds (modules, settings, hubs) is frozen out of
    every collection (``gc.freeze``: it is never garbage), and the GC runs less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _lock_data(data: str) -> int | None:
    """An exclusive lock on the SQLite file (its descriptor), so that a second server on the
    same file refuses to start: two would both assign each room's next seq. Exit 2 if another
    process holds it."""
    if data == ":memory:":
        return None
    import fcntl

    path = Path(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        _usage_error(f"interplay serve: --data {data}: {error.strerror}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        _usage_error(
            f"interplay serve: --data {data} is in use by another interplay serve "
            "(one server per data file)"
        )
    return fd


def _backend(data: str) -> Backend:
    from interplay.backends import MemoryBackend, SQLiteBackend

    return MemoryBackend() if data == ":memory:" else SQLiteBackend(data)


def _tls(args: argparse.Namespace, *, websocket: bool = False) -> ssl.SSLContext | None:
    """The server's TLS context from --tls-cert and --tls-key (both or neither): gRPC's
    (ALPN h2), or the WebSocket server's (HTTP/1.1)."""
    from interplay.transports.grpc.server import tls_context as grpc_context
    from interplay.transports.websocket.server import tls_context as websocket_context

    tls_context = websocket_context if websocket else grpc_context

    if (args.tls_cert is None) != (args.tls_key is None):
        raise SystemExit(
            "interplay serve: --tls-cert and --tls-key go together "
            "(or INTERPLAY_TLS_CERT and INTERPLAY_TLS_KEY)"
        )
    if args.tls_cert is None:
        return None
    try:
        return tls_context(args.tls_cert, args.tls_key)
    except OSError as error:  # ssl.SSLError is one too
        raise SystemExit(
            f"interplay serve: cannot load --tls-cert {args.tls_cert} / --tls-key "
            f"{args.tls_key}: {error}"
        ) from None


def _run(main: Coroutine[Any, Any, None], loop: str) -> None:
    """Run ``main`` on asyncio's own loop, or on uvloop (faster sockets, fewer syscalls)."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                main.close()
                needs = "interplay serve: --loop uvloop needs: pip install 'interplay[uvloop]'"
                raise SystemExit(needs) from None
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "token":
        return _token(args)
    if args.command == "chat":
        return _chat(args)
    if args.command == "health":
        return _health(args)
    if args.command == "admin":
        return _admin(args)
    raise AssertionError(args.command)


def _admin(args: argparse.Namespace) -> int:
    from interplay.admin import run_admin

    host, _, port = args.server.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"interplay admin: --server must be HOST:PORT, got {args.server!r}")
    secret = args.admin_secret or os.environ.get("INTERPLAY_ADMIN_SECRET")
    if not secret:
        raise SystemExit("interplay admin: --admin-secret or INTERPLAY_ADMIN_SECRET is required")
    try:
        return asyncio.run(run_admin(host, int(port), secret, args))
    except ValueError as error:  # the secret is too short to be the server's
        raise SystemExit(f"interplay admin: {error}") from None
