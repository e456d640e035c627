"""Operational transformation for plain text: operations, the server document, the client."""

from .text import Component, TextOp

__all__ = ["Component", "TextOp"]
