"""The WebSocket baseline: a bare ``websockets.broadcast`` fan-out, the library's own limit.

    python bench/_bare_ws.py --port 0      # prints "bare: serving on 127.0.0.1:PORT"

No store, no limits, no backpressure, no resume: each TEXT gets the room's next seq, is encoded
once with upb and handed to ``websockets.broadcast`` for every member, which writes it into
each socket's buffer at once, with no backpressure: a slow member's buffer grows without bound.
JOINs are announced to the room, and a joiner is told who is there, which is all
``chat_load.py``'s clients need. The end message closes the call. Compression off, as in
``interplay serve``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict

from _pb import chat_pb2
from websockets.asyncio.server import ServerConnection, broadcast, serve

pb = chat_pb2()
rooms: dict[str, dict[ServerConnection, bytes]] = defaultdict(dict)
seqs: dict[str, int] = defaultdict(int)


async def chat(ws: ServerConnection) -> None:
    user = ""
    joined: list[str] = []
    try:
        async for frame in ws:
            if isinstance(frame, str):  # the end message
                break
            message = pb.ChatMessage.FromString(frame)
            room = rooms[message.room_id]
            if message.type == pb.ChatMessage.JOIN:
                user = message.sender_id
                for join in room.values():
                    await ws.send(join)
                data = message.SerializeToString()
                room[ws] = data
                joined.append(message.room_id)
                broadcast(room, data)
            elif message.type == pb.ChatMessage.TEXT:
                seqs[message.room_id] += 1
                message.seq = seqs[message.room_id]
                message.sender_id = user
                broadcast(room, message.SerializeToString())
    finally:
        for name in joined:
            rooms[name].pop(ws, None)


async def main(port: int) -> None:
    async with serve(
        chat,
        "127.0.0.1",
        port,
        subprotocols=["interplay.v1.proto"],
        max_size=None,
        ping_interval=None,
        compression=None,
    ) as server:  # type: ignore[list-item]
        bound = server.sockets[0].getsockname()[1]
        print(f"bare: serving on 127.0.0.1:{bound}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
