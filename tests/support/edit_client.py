"""A CollaborativeEdit test client: the core's ClientDocument behind a raw grpclib stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from grpclib.client import Channel, Stream
from grpclib.exceptions import StreamTerminatedError

from helpers import open_call
from interplay.core.ot import ClientDocument, TextOp
from interplay.transports.grpc.generated.chat import EditOperation


class EditClient:
    def __init__(self, stream: Stream[EditOperation, EditOperation], document: str, user: str):
        self.stream = stream
        self.document = document
        self.user = user
        self.doc = ClientDocument()
        self.counter = 0
        self.received: list[EditOperation] = []

    async def send(self, **fields: Any) -> None:
        await self.stream.send_message(
            EditOperation(document_id=self.document, user_id=self.user, **fields)
        )

    async def recv(self, timeout: float = 5.0) -> EditOperation | None:
        with anyio.fail_after(timeout):
            try:
                message = await self.stream.recv_message()
            except StreamTerminatedError:
                self.stream._maybe_raise()  # the status arrived with the trailers
                raise
        if message is not None:
            self.received.append(message)
        return message

    async def join(self) -> None:
        await self.send(operation="join")
        snapshot = await self.recv()
        assert snapshot is not None and snapshot.operation == "snapshot"
        self.doc = ClientDocument(snapshot.content, revision=snapshot.version)

    async def edit(self, position: int, deleted: int = 0, inserted: str = "") -> None:
        """One local edit, sent at once (the client waits for acks between edits)."""
        assert self.doc.outstanding is None, "wait for the ack first"
        op = TextOp.splice(len(self.doc.text), position, deleted, inserted)
        send = self.doc.edit(op)
        assert send is not None
        self.counter += 1
        operation = "replace" if deleted and inserted else ("insert" if inserted else "delete")
        await self.send(
            operation=operation,
            position=position,
            length=deleted,
            content=inserted,
            version=send.base,
            op_id=f"{self.user}-{self.counter}",
        )

    def handle(self, message: EditOperation) -> None:
        """Apply one message from the server to the client document."""
        kind = message.operation
        if kind == "ack":
            assert self.doc.ack() is None
        elif kind == "noop":
            self.doc.receive(TextOp.identity(self.doc.server_length), revision=message.version)
        elif kind in ("insert", "delete", "replace"):
            deleted = 0 if kind == "insert" else message.length
            inserted = "" if kind == "delete" else message.content
            op = TextOp.splice(self.doc.server_length, message.position, deleted, inserted)
            self.doc.receive(op, revision=message.version)
        elif kind != "cursor":
            raise AssertionError(f"unexpected {message}")

    async def until_acked(self) -> None:
        while self.doc.outstanding is not None:
            message = await self.recv()
            assert message is not None
            self.handle(message)

    async def until_revision(self, revision: int) -> None:
        while self.doc.revision < revision or self.doc.outstanding is not None:
            message = await self.recv()
            assert message is not None
            self.handle(message)


@asynccontextmanager
async def edit_call(channel: Channel, document: str, user: str) -> AsyncIterator[EditClient]:
    async with open_call(
        channel, "/chat.ChatService/CollaborativeEdit", EditOperation, EditOperation
    ) as stream:
        yield EditClient(stream, document, user)
