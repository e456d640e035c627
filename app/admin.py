"""``interplay admin``: the server API (``interplay.admin.v1.AdminService``) from a terminal.

Each call mints a short-lived admin token with the admin secret (it never travels itself),
calls the server, and prints the reply as one JSON object (the proto3 JSON mapping, as grpcurl
prints it). A refusal prints one line with the status and its message and exits 1.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from interplay.runtime.auth import AdminAuthenticator
from interplay.transports.grpc.generated.interplay.admin import v1 as admin

TOKEN_TTL = 60.0  # seconds an admin token minted for one call stays valid


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The subcommands of ``interplay admin`` (the caller adds --server and --admin-secret)."""
    calls = parser.add_subparsers(dest="call", required=True)
    publish = calls.add_parser("publish", help="post a message into a room as a named sender")
    publish.add_argument("--room", required=True)
    publish.add_argument("--sender", required=True, help="who the message is from")
    publish.add_argument("--id", default="", help="idempotency key (a re-send is stored once)")
    publish.add_argument("--system", action="store_true", help="a SYSTEM message, not a TEXT")
    publish.add_argument("content", help="the message")
    presence = calls.add_parser("presence", help="who is in a room now")
    presence.add_argument("--room", required=True)
    history = calls.add_parser("history", help="a room's stored messages by seq")
    history.add_argument("--room", required=True)
    history.add_argument("--after-seq", type=int, default=0, help="messages after this seq")
    history.add_argument("--limit", type=int, default=100, help="at most this many (1 to 1000)")
    disconnect = calls.add_parser("disconnect", help="end every stream of a user")
    disconnect.add_argument("--user", required=True)
    disconnect.add_argument("--reason", default="", help="what the user's clients are told")
    disconnect.add_argument(
        "--reconnect", action="store_true", help="let the clients reconnect and resume"
    )
    delete = calls.add_parser("delete-history", help="forget a room's messages, or one user's")
    delete.add_argument("--room", required=True)
    delete.add_argument("--user", default="", help="only this user's messages")
    snapshot = calls.add_parser("snapshot", help="a document's text and revision")
    snapshot.add_argument("--document", required=True)
    calls.add_parser("matches", help="the running matches and their players")


async def run_admin(host: str, port: int, secret: str, args: argparse.Namespace) -> int:
    """One call; its reply printed as JSON (0), or its refusal as one line (1)."""
    token = AdminAuthenticator(secret).mint(ttl=TOKEN_TTL)
    channel = Channel(host, port)
    try:
        api = admin.AdminServiceStub(channel, metadata={"authorization": f"Bearer {token}"})
        reply = await _call(api, args)
    except GRPCError as error:
        print(f"interplay admin: {error.status.name} {error.message or ''}".rstrip())
        return 1
    except OSError as error:
        print(f"interplay admin: cannot reach {host}:{port} ({error.strerror or error})")
        return 1
    finally:
        channel.close()
    print(json.dumps(reply.to_dict(include_default_values=True), ensure_ascii=False))
    return 0


async def _call(api: admin.AdminServiceStub, args: argparse.Namespace) -> Any:
    call = args.call
    if call == "publish":
        kind = admin.MessageType.SYSTEM if args.system else admin.MessageType.TEXT
        request = admin.PublishRequest(
            room=args.room, sender=args.sender, content=args.content, type=kind, id=args.id
        )
        return await api.publish(request)
    if call == "presence":
        return await api.presence(admin.PresenceRequest(room=args.room))
    if call == "history":
        return await api.history(
            admin.HistoryRequest(room=args.room, after_seq=args.after_seq, limit=args.limit)
        )
    if call == "disconnect":
        return await api.disconnect(
            admin.DisconnectRequest(user=args.user, reason=args.reason, reconnect=args.reconnect)
        )
    if call == "delete-history":
        return await api.delete_history(admin.DeleteHistoryRequest(room=args.room, user=args.user))
    if call == "snapshot":
        return await api.snapshot(admin.SnapshotRequest(document=args.document))
    if call == "matches":
        return await api.matches(admin.MatchesRequest())
    raise AssertionError(call)
