"""A chat member in a process of its own: joins a room on each server given, prints ``joined``,
then only listens (it sends nothing more), for tests that freeze or kill it.

    python listening_member.py [--ca CA.pem] --user NAME --room ROOM PORT [PORT ...]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from contextlib import AsyncExitStack

from grpclib.client import Channel

from helpers import T, chat_call
from interplay.transports.grpc.codec import WireCodec


async def main(args: argparse.Namespace) -> None:
    context = None
    if args.ca:
        context = ssl.create_default_context(cafile=args.ca)
        context.set_alpn_protocols(["h2"])
    async with AsyncExitStack() as stack:
        for port in args.ports:
            channel = Channel("127.0.0.1", port, codec=WireCodec(), ssl=context)
            stack.callback(channel.close)
            member = await stack.enter_async_context(chat_call(channel))
            await member.join(args.user, args.room)
            await member.recv_until(lambda m: (m.type, m.sender_id) == (T.JOIN, args.user))
        print("joined", flush=True)
        await asyncio.Event().wait()  # listen, for ever


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca")
    parser.add_argument("--user", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("ports", type=int, nargs="+")
    asyncio.run(main(parser.parse_args()))
