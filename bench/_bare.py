"""The baseline: a bare grpclib Chat fan-out, the transport's own limit.

    python bench/_bare.py --port 0      # prints "bare: serving on 127.0.0.1:PORT"

No store, no limits, no backpressure, no resume: each TEXT gets the room's next seq, is encoded
once with upb and sent with grpclib's stock ``send_message`` (one DATA frame per message) to every
member through an unbounded per-stream queue and writer task. JOINs are announced to the room,
and a joiner is told who is there, which is all ``chat_load.py``'s clients need.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from typing import Any

from _pb import chat_pb2
from grpclib.const import Cardinality, Handler
from grpclib.encoding.proto import ProtoCodec
from grpclib.server import Server, Stream

pb = chat_pb2()


class PassThrough(ProtoCodec):
    def encode(self, message: Any, message_type: Any) -> bytes:
        return message if type(message) is bytes else super().encode(message, message_type)


class Bare:
    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, asyncio.Queue[bytes]]] = defaultdict(dict)
        self.seqs: dict[str, int] = defaultdict(int)
        self.ids = 0

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/chat.ChatService/Chat": Handler(
                self.chat, Cardinality.STREAM_STREAM, pb.ChatMessage, pb.ChatMessage
            )
        }

    async def chat(self, stream: Stream[Any, Any]) -> None:
        self.ids += 1
        me = str(self.ids)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        users: dict[str, str] = {}

        async def write() -> None:
            while True:
                await stream.send_message(await queue.get())
                queue.task_done()

        writer = asyncio.create_task(write())
        joined: list[str] = []
        try:
            async for message in stream:
                room = self.rooms[message.room_id]
                if message.type == pb.ChatMessage.JOIN:
                    users[me] = message.sender_id
                    for other in self._members.get(message.room_id, {}).values():
                        queue.put_nowait(other)
                    join = message.SerializeToString()
                    self._members.setdefault(message.room_id, {})[me] = join
                    room[me] = queue
                    joined.append(message.room_id)
                    for member in room.values():
                        member.put_nowait(join)
                elif message.type == pb.ChatMessage.TEXT:
                    self.seqs[message.room_id] += 1
                    message.seq = self.seqs[message.room_id]
                    message.sender_id = users.get(me, "")
                    data = message.SerializeToString()
                    for member in room.values():
                        member.put_nowait(data)
            await queue.join()  # half-close: flush, then end with OK
        finally:
            writer.cancel()
            for room_id in joined:
                self.rooms[room_id].pop(me, None)
                self._members[room_id].pop(me, None)

    _members: dict[str, dict[str, bytes]] = {}


async def main(port: int) -> None:
    server = Server([Bare()], codec=PassThrough())
    await server.start("127.0.0.1", port)
    assert server._server is not None
    bound = server._server.sockets[0].getsockname()[1]
    print(f"bare: serving on 127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
