"""A chat bot on interplay's reconnecting ChatClient.

    python examples/chat_bot.py --server 127.0.0.1:50051 --room lobby

Answers ``!echo TEXT`` with TEXT, ``!who`` with the room's members and ``!count`` with how many
TEXTs it has seen; greets whoever joins. It rides out server restarts on its own (backoff,
resume, re-send), and stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse

from _signals import run  # SIGINT or SIGTERM: a clean stop

from interplay.core import Kind
from interplay.transports.grpc.client import ChatClient


async def main(host: str, port: int, room: str, name: str) -> None:
    async with ChatClient(host, port, user=name) as chat:
        await chat.join(room)
        print(f"{name}: in #{room}", flush=True)
        seen = 0
        async for message in chat:
            if message.kind is Kind.JOIN and message.sender != name:
                await chat.send(message.room, f"welcome, {message.sender}!")
            if message.kind is not Kind.TEXT or message.sender == name:
                continue
            seen += 1
            command, _, rest = message.content.partition(" ")
            if command == "!echo":
                await chat.send(message.room, rest)
            elif command == "!who":
                await chat.send(message.room, ", ".join(sorted(chat.members(message.room))))
            elif command == "!count":
                await chat.send(message.room, f"{seen} messages so far")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--name", default="bot")
    args = parser.parse_args()
    host, _, port = args.server.rpartition(":")
    run(main(host, int(port), args.room, args.name))
