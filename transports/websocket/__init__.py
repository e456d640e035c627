"""The WebSocket transport (``websockets``): ``chat.ChatService``'s three calls for browsers
and anything else that speaks WebSocket, beside the browser app's files (DESIGN §9)."""

from .server import WebSocketSettings, drain, start
from .service import WebSocketService

__all__ = ["WebSocketService", "WebSocketSettings", "drain", "start"]
