"""Our ChatClient against a minimal chat server written with Google's grpcio (not grpclib):
the clients speak the proto, not our server's quirks."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import anyio
import grpc
import pytest

from interplay.core import Kind
from interplay.transports.grpc.client import ChatClient, ConnectionState
from interplay.transports.grpc.generated import chat_pb2 as pb

pytestmark = pytest.mark.anyio

M = pb.ChatMessage


class TinyChat:
    """Rooms with a seq and an epoch, the JOIN echo carrying both, TEXT to every member."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: dict[str, list[queue.Queue[Any]]] = {}
        self.head: dict[str, int] = {}

    def chat(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        mine: queue.Queue[Any] = queue.Queue()
        user = ""

        def read() -> None:
            nonlocal user
            for message in requests:
                with self.lock:
                    room = message.room_id
                    if message.type == M.JOIN:
                        user = message.sender_id
                        self.members.setdefault(room, []).append(mine)
                        echo = M(type=M.JOIN, room_id=room, sender_id=user, epoch="e1")
                        echo.seq = self.head.get(room, 0)
                        mine.put(echo)
                    elif message.type == M.TEXT:
                        seq = self.head[room] = self.head.get(room, 0) + 1
                        text = M(
                            type=M.TEXT,
                            room_id=room,
                            sender_id=user,
                            id=message.id,
                            content=message.content,
                            seq=seq,
                            epoch="e1",
                        )
                        for member in self.members.get(room, []):
                            member.put(text)
            mine.put(None)

        threading.Thread(target=read, daemon=True).start()
        while (out := mine.get()) is not None:
            yield out


@contextmanager
def grpcio_server() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.method_handlers_generic_handler(
        "chat.ChatService",
        {
            "Chat": grpc.stream_stream_rpc_method_handler(
                TinyChat().chat,
                request_deserializer=M.FromString,
                response_serializer=M.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(5)


async def test_our_client_chats_through_a_grpcio_server() -> None:
    with grpcio_server() as port:
        async with (
            ChatClient("127.0.0.1", port, user="ann") as ann,
            ChatClient("127.0.0.1", port, user="bob") as bob,
        ):
            await ann.join("lobby")
            await bob.join("lobby")
            await anyio.sleep(0.2)  # both joined before the first TEXT
            sent = [await ann.send("lobby", f"hi {n}") for n in range(3)]
            sent.append(await bob.send("lobby", "hello"))
            for client in (ann, bob):
                texts = []
                with anyio.fail_after(5):
                    async for message in client:
                        if message.kind is Kind.TEXT:
                            texts.append(message)
                            if len(texts) == 4:
                                break
                assert [m.seq for m in texts] == [1, 2, 3, 4]
                assert sorted(m.id for m in texts) == sorted(sent)
            assert ann.rooms.unacknowledged() == [] and bob.rooms.unacknowledged() == []
            assert ann.state is ConnectionState.CONNECTED
            assert list(itertools.chain(ann.reconnect_delays, bob.reconnect_delays)) == []
