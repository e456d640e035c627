"""Operational transformation for plain text: operations, the server document, the client."""

from .client import ClientDocument, Send, State
from .server import Applied, ServerDocument
from .text import Component, TextOp

__all__ = ["Applied", "ClientDocument", "Component", "Send", "ServerDocument", "State", "TextOp"]
