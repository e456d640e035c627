"""CollaborativeEdit end to end over grpclib's in-memory channel."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
from edit_client import EditClient, edit_call
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from helpers import channel_for, open_call
from interplay.transports.grpc.generated.chat import EditOperation
from interplay.transports.grpc.service import ChatService

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[ChatService, Channel]]:
    async with channel_for() as served:
        yield served


async def test_join_edit_ack_and_the_other_editor_receives_the_op() -> None:
    async with serving() as (_, channel), edit_call(channel, "d", "ann") as ann:
        await ann.join()
        async with edit_call(channel, "d", "bob") as bob:
            await bob.join()
            await ann.edit(0, inserted="héllo 😀")
            [ack] = [await ann.recv()]
            assert (ack.operation, ack.version, ack.op_id) == ("ack", 1, "ann-1")  # type: ignore[union-attr]
            got = await bob.recv()
            assert got is not None
            assert (got.operation, got.position, got.content, got.version, got.user_id) == (
                "insert",
                0,
                "héllo 😀",
                1,
                "ann",
            )
            bob.handle(got)
            await bob.edit(1, deleted=1, inserted="e")  # replace é with e
            await bob.until_acked()
            replaced = await ann.recv()
            assert replaced is not None
            assert (replaced.operation, replaced.position, replaced.length) == ("replace", 1, 1)


async def test_an_edit_without_join_joins_implicitly_snapshot_first() -> None:
    async with serving() as (_, channel), edit_call(channel, "d", "ann") as ann:
        await ann.send(operation="insert", position=0, content="old client", version=0)
        snapshot, ack = await ann.recv(), await ann.recv()
        assert (snapshot.operation, snapshot.content, snapshot.version) == ("snapshot", "", 0)  # type: ignore[union-attr]
        assert (ack.operation, ack.version) == ("ack", 1)  # type: ignore[union-attr]


async def test_two_editors_typing_concurrently_converge() -> None:
    rng = random.Random(7)
    async with (
        serving() as (service, channel),
        edit_call(channel, "doc", "ann") as ann,
        edit_call(channel, "doc", "bob") as bob,
    ):
        await ann.join()
        await bob.join()

        async def type_into(client: EditClient, n: int) -> None:
            for _ in range(n):
                text = client.doc.text
                position = rng.randint(0, len(text))
                if text and rng.random() < 0.3:
                    deleted = rng.randint(1, min(3, len(text) - min(position, len(text) - 1)))
                    position = min(position, len(text) - deleted)
                    await client.edit(position, deleted=deleted)
                else:
                    await client.edit(position, inserted=rng.choice(["a", "b", "😀", "é "]))
                await client.until_acked()
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(type_into, ann, 60)
            tasks.start_soon(type_into, bob, 60)
        final = service.runtime.documents.text("doc")
        assert final is not None
        revision = 120
        await ann.until_revision(revision)
        await bob.until_revision(revision)
        assert ann.doc.text == bob.doc.text == final
        assert ann.doc.revision == bob.doc.revision == revision


@pytest.mark.parametrize(
    ("fields", "status", "text"),
    [
        (
            {"operation": "insert", "position": -1, "content": "x"},
            Status.INVALID_ARGUMENT,
            "position: must not be negative",
        ),
        (
            {"operation": "delete", "position": 2, "length": 5},
            Status.INVALID_ARGUMENT,
            "position: 2 + length 5 is beyond the 3 code points of revision 1",
        ),
        (
            {"operation": "insert", "position": 0, "content": "x", "version": 9},
            Status.INVALID_ARGUMENT,
            "version: revision 9 is in the future",
        ),
        ({"operation": "frobnicate"}, Status.INVALID_ARGUMENT, "operation: unknown operation"),
        (
            {"operation": "replace", "position": 0, "content": "x", "user_id": "mallory"},
            Status.PERMISSION_DENIED,
            "user_id: this stream is bound to 'bob'",
        ),
    ],
)
async def test_bad_edits_get_a_status_while_the_other_editor_keeps_editing(
    fields: dict,
    status: Status,
    text: str,  # type: ignore[type-arg]
) -> None:
    async with serving() as (service, channel), edit_call(channel, "d", "ann") as ann:
        await ann.join()
        await ann.edit(0, inserted="abc")
        await ann.until_acked()
        async with open_call(
            channel, "/chat.ChatService/CollaborativeEdit", EditOperation, EditOperation
        ) as stream:
            await stream.send_message(
                EditOperation(document_id="d", user_id="bob", operation="join")
            )
            assert (await stream.recv_message()).operation == "snapshot"  # type: ignore[union-attr]
            fields = {"version": 1, "user_id": "bob", **fields}
            await stream.send_message(EditOperation(document_id="d", **fields))
            with pytest.raises(GRPCError) as caught:
                try:
                    await stream.recv_message()
                except StreamTerminatedError:
                    stream._maybe_raise()  # the status came with the trailers
            assert caught.value.status is status
            assert text in (caught.value.message or "")
        assert service.runtime.documents.text("d") == "abc"  # untouched
        await ann.edit(3, inserted="d")
        await ann.until_acked()
        assert service.runtime.documents.text("d") == "abcd"


async def test_a_resent_op_id_is_acknowledged_again_and_not_applied_twice() -> None:
    async with serving() as (_, channel):
        async with edit_call(channel, "d", "ann") as ann:
            await ann.join()
            await ann.send(operation="insert", position=0, content="x", version=0, op_id="o1")
            assert (await ann.recv()).version == 1  # type: ignore[union-attr]
        async with edit_call(channel, "d", "ann") as again:  # a reconnect re-sends it
            await again.send(operation="insert", position=0, content="x", version=0, op_id="o1")
            snapshot, ack = await again.recv(), await again.recv()
            assert snapshot.operation == "snapshot" and snapshot.content == "x"  # type: ignore[union-attr]
            assert (ack.operation, ack.version, ack.op_id) == ("ack", 1, "o1")  # type: ignore[union-attr]
        async with edit_call(channel, "d", "cat") as cat:
            await cat.join()
            assert cat.doc.text == "x"


async def test_two_edits_sent_before_the_first_ack_follow_each_other() -> None:
    """Pipelining: both carry the revision the stream last received; the second is positioned
    after the first (what a client typing "ab" means), not concurrent with it."""
    async with serving() as (service, channel), edit_call(channel, "d", "ann") as ann:
        await ann.join()
        await ann.edit(0, inserted="xy")
        await ann.until_acked()
        async with edit_call(channel, "d", "bob") as bob:
            await bob.join()
            await bob.send(operation="insert", position=2, content="!", version=1, op_id="b1")
            await ann.send(operation="insert", position=0, content="a", version=1, op_id="a1")
            await ann.send(operation="insert", position=1, content="b", version=1, op_id="a2")
            acks = [m for m in [await ann.recv() for _ in range(3)] if m and m.operation == "ack"]
            assert [m.op_id for m in acks] == ["a1", "a2"]
            assert service.runtime.documents.text("d") == "abxy!"
