"""The gRPC transport (grpclib): ``chat.ChatService`` over HTTP/2."""

from .server import ServerSettings, build_server, drain, start
from .service import ChatService

__all__ = ["ChatService", "ServerSettings", "build_server", "drain", "start"]
