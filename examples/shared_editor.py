"""A shared plain-text editor for two (or more) terminals, on interplay's EditClient.

    python examples/shared_editor.py --server 127.0.0.1:50051 --document notes --user ann

Commands, one per line: ``i POS TEXT`` inserts TEXT at POS (``$`` is the end), ``d POS N``
deletes N characters, ``u`` undoes your last step, ``r`` redoes, ``p`` prints (``= [rev N] text``,
once your edits are acknowledged), ``q`` quits.
Every change, yours or someone else's, prints the document as ``[rev N] text``; everyone ends
with the same text (operational transformation), and a server restart is ridden out.
"""

from __future__ import annotations

import argparse
import sys

import anyio
from _signals import run  # SIGINT or SIGTERM: a clean stop

from interplay.transports.grpc.client import EditClient


async def show_changes(editor: EditClient) -> None:
    async for change in editor:
        print(f"[rev {change.revision}] {change.text}", flush=True)


async def commands(editor: EditClient) -> None:
    stdin = anyio.wrap_file(sys.stdin)
    async for line in stdin:
        command, _, rest = line.rstrip("\n").partition(" ")
        try:
            if command == "q":
                return
            if command == "i":
                where, _, text = rest.partition(" ")
                await editor.insert(len(editor.text) if where == "$" else int(where), text)
            elif command == "d":
                where, _, count = rest.partition(" ")
                await editor.delete(int(where), int(count))
            elif command == "u":
                await editor.undo()
            elif command == "r":
                await editor.redo()
            elif command == "p":
                await editor.wait_settled()
                print(f"= [rev {editor.doc.revision}] {editor.text}", flush=True)
                continue
            else:
                print("? i POS TEXT | d POS N | u | r | p | q", flush=True)
                continue
            print(f"[rev {editor.doc.revision}] {editor.text}", flush=True)
        except ValueError as error:  # a position outside the text, a bad number
            print(f"? {error}", flush=True)


async def main(host: str, port: int, document: str, user: str) -> None:
    async with EditClient(host, port, user=user, document=document) as editor:
        await editor.wait_synced()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(show_changes, editor)
            await commands(editor)
            await editor.wait_settled()
            tasks.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--document", default="notes")
    parser.add_argument("--user", required=True)
    args = parser.parse_args()
    host, _, port = args.server.rpartition(":")
    run(main(host, int(port), args.document, args.user))
