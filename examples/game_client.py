"""A tiny GameSync player on interplay's GameClient.

    python examples/game_client.py --server 127.0.0.1:50051 --match arena --player ann --moves 20

Joins the match, walks ``--moves`` random steps (one per tick or so), then prints the match as
its mirror holds it: one line per player with position, health and the last action the server
confirmed.
"""

from __future__ import annotations

import argparse
import random

import anyio
from _signals import run  # SIGINT or SIGTERM: a clean stop

from interplay.transports.grpc.client import GameClient


async def main(host: str, port: int, match: str, player: str, moves: int) -> None:
    async with GameClient(host, port, player=player, match=match) as game:
        last = 0
        for _ in range(moves):
            last = await game.act(
                "move", dx=str(random.randint(-3, 3)), dy=str(random.randint(-3, 3))
            )
            await anyio.sleep(0.05)
        async for mirror in game:
            me = mirror.players.get(player)
            if me is not None and me.last_sequence == last:
                break
        for state in sorted(game.mirror.players.values(), key=lambda s: s.player):
            print(
                f"{state.player}: x={state.x:g} y={state.y:g} health={state.health} "
                f"last_sequence={state.last_sequence}",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--match", default="")
    parser.add_argument("--player", required=True)
    parser.add_argument("--moves", type=int, default=20)
    args = parser.parse_args()
    host, _, port = args.server.rpartition(":")
    run(main(host, int(port), args.match, args.player, args.moves))
