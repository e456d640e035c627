"""CollaborativeEdit, end to end (DESIGN §4): the checks of ``EditConformance``."""

from __future__ import annotations

import random
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interplay.core.ot import ClientDocument
from interplay.transports.grpc.generated.chat import EditOperation

from .base import SUPPRESSED, Transport
from .calls import CallEnded, EditClient, rejected

EDITS = st.lists(
    st.tuples(st.integers(-2, 12), st.sampled_from(["a", "bc", "😀", ""])), max_size=15
)


class EditConformance(Transport):
    """CollaborativeEdit, end to end (DESIGN §4): every check, on your transport."""

    async def test_join_edit_ack_and_the_other_editor_receives_the_op(self) -> None:
        async with self.serve() as server, server.edit("d", "ann") as ann:
            await ann.join()
            async with server.edit("d", "bob") as bob:
                await bob.join()
                await ann.edit(0, inserted="héllo 😀")
                ack = await ann.recv()
                assert ack is not None
                assert (ack.operation, ack.version, ack.op_id) == ("ack", 1, "ann-1")
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

    async def test_an_edit_without_join_joins_implicitly_snapshot_first(self) -> None:
        async with self.serve() as server, server.edit("d", "ann") as ann:
            await ann.send_op(operation="insert", position=0, content="old client", version=0)
            snapshot, ack = await ann.recv_n(2)
            assert (snapshot.operation, snapshot.content, snapshot.version) == ("snapshot", "", 0)
            assert (ack.operation, ack.version) == ("ack", 1)

    async def test_two_editors_typing_concurrently_converge(self) -> None:
        rng = random.Random(7)
        async with (
            self.serve() as server,
            server.edit("doc", "ann") as ann,
            server.edit("doc", "bob") as bob,
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
            final = server.document_text("doc")
            assert final is not None
            revision = 120
            await ann.until_revision(revision)
            await bob.until_revision(revision)
            assert ann.doc.text == bob.doc.text == final
            assert ann.doc.revision == bob.doc.revision == revision

    @pytest.mark.parametrize(
        ("fields", "code", "text"),
        [
            (
                {"operation": "insert", "position": -1, "content": "x"},
                "INVALID_ARGUMENT",
                "position: must not be negative",
            ),
            (
                {"operation": "delete", "position": 2, "length": 5},
                "INVALID_ARGUMENT",
                "position: 2 + length 5 is beyond the 3 code points of revision 1",
            ),
            (
                {"operation": "insert", "position": 0, "content": "x", "version": 9},
                "INVALID_ARGUMENT",
                "version: revision 9 is in the future",
            ),
            ({"operation": "frobnicate"}, "INVALID_ARGUMENT", "operation: unknown operation"),
            (
                {"operation": "insert", "position": 0, "content": "x", "document_id": ""},
                "INVALID_ARGUMENT",
                "document_id: must not be empty",
            ),
        ],
    )
    async def test_a_bad_edit_is_refused_and_the_editor_edits_on(
        self, fields: dict[str, Any], code: str, text: str
    ) -> None:
        async with self.serve() as server, server.edit("d", "ann") as ann:
            await ann.join()
            await ann.edit(0, inserted="abc")
            await ann.until_acked()
            async with server.edit("d", "bob") as bob:
                await bob.join()
                fields = {"version": 1, "user_id": "bob", "op_id": "bad-1", **fields}
                await bob.send(EditOperation(document_id=fields.pop("document_id", "d"), **fields))
                reject = await bob.recv()
                assert reject is not None and reject.operation == "reject"
                assert reject.op_id == "bad-1" and reject.version == fields["version"]
                status, field, rule = rejected(reject.rejection)
                assert status == code and f"{field}: {rule}".startswith(text)
                assert f"{code} {text}" in reject.content  # what an old client can show
                assert server.document_text("d") == "abc"  # untouched
                await bob.edit(3, inserted="!")  # the same stream goes on
                await bob.until_acked()
            assert server.document_text("d") == "abc!"
            await ann.edit(0, inserted="d")
            await ann.until_acked()
            assert server.document_text("d") == "dabc!"
            assert server.counters.errors == {} and server.counters.refusals == 1

    async def test_an_edit_claiming_another_user_ends_that_stream(self) -> None:
        async with self.serve() as server, server.edit("d", "ann") as ann:
            await ann.join()
            async with server.edit("d", "bob") as bob:
                await bob.join()
                await bob.send_op(operation="insert", content="x", user_id="mallory")
                with pytest.raises(CallEnded) as caught:
                    await bob.recv()
                assert caught.value.ended.code == "PERMISSION_DENIED"
                assert "user_id: this stream is bound to 'bob'" in caught.value.ended.message
            await ann.edit(0, inserted="a")
            await ann.until_acked()
            assert server.document_text("d") == "a"

    async def test_a_resent_op_id_is_acknowledged_again_and_not_applied_twice(self) -> None:
        async with self.serve() as server:
            async with server.edit("d", "ann") as ann:
                await ann.join()
                await ann.send_op(
                    operation="insert", position=0, content="x", version=0, op_id="o1"
                )
                ack = await ann.recv()
                assert ack is not None and ack.version == 1
            async with server.edit("d", "ann") as again:  # a reconnect re-sends it
                await again.send_op(
                    operation="insert", position=0, content="x", version=0, op_id="o1"
                )
                snapshot, ack = await again.recv_n(2)
                assert snapshot.operation == "snapshot" and snapshot.content == "x"
                assert (ack.operation, ack.version, ack.op_id) == ("ack", 1, "o1")
            async with server.edit("d", "cat") as cat:
                await cat.join()
                assert cat.doc.text == "x"

    async def test_two_edits_sent_before_the_first_ack_follow_each_other(self) -> None:
        """Pipelining: both carry the revision the stream last received; the second is positioned
        after the first (what a client typing "ab" means), not concurrent with it."""
        async with self.serve() as server, server.edit("d", "ann") as ann:
            await ann.join()
            await ann.edit(0, inserted="xy")
            await ann.until_acked()
            async with server.edit("d", "bob") as bob:
                await bob.join()
                await bob.send_op(
                    operation="insert", position=2, content="!", version=1, op_id="b1"
                )
                await ann.send_op(
                    operation="insert", position=0, content="a", version=1, op_id="a1"
                )
                await ann.send_op(
                    operation="insert", position=1, content="b", version=1, op_id="a2"
                )
                acks = [m for m in await ann.recv_n(3) if m.operation == "ack"]
                assert [m.op_id for m in acks] == ["a1", "a2"]
                assert server.document_text("d") == "abxy!"

    @settings(suppress_health_check=SUPPRESSED, deadline=None)
    @given(edits=EDITS)
    async def test_valid_and_refused_edits_mixed_on_one_stream_match_the_model(
        self, edits: list[tuple[int, str]]
    ) -> None:
        """Inserts at positions in and out of the text, one stream: exactly the out-of-range ones
        are refused (each a reject naming its op id), the others applied in order."""
        model, refused = "", []
        async with self.serve() as server, server.edit("d", "ann") as ann:
            await ann.join()
            for n, (position, text) in enumerate(edits):
                await ann.send_op(
                    operation="insert",
                    position=position,
                    content=text or "x",
                    version=ann.doc.revision,
                    op_id=f"o{n}",
                )
                reply = await ann.recv()
                assert reply is not None
                if 0 <= position <= len(model):
                    assert reply.operation == "ack" and reply.op_id == f"o{n}"
                    model = model[:position] + (text or "x") + model[position:]
                    ann.doc = ClientDocument(model, revision=reply.version)
                else:
                    assert reply.operation == "reject" and reply.op_id == f"o{n}"
                    refused.append(reply.op_id)
            assert [r.op_id for r in ann.rejected] == refused
            assert (server.document_text("d") or "") == model
            assert server.counters.refusals == len(refused) and server.counters.errors == {}
