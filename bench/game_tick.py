"""GameSync through the real server: M matches x P players at a tick rate.

    python bench/game_tick.py --matches 1 --players 100 --hz 60 [--seconds 10] [--action-hz 10]
    python bench/game_tick.py --matches 1 --players 100 --hz 30 --nodes 2

The server (``build_server`` with a ``MatchHub``, as ``interplay serve`` wires it) runs in a
child process so that the load generator does not share its core; it reports its tick driver's
work per wake-up (advance + encode + hand-out: ``tick_ms``), how late each wake-up came after its
deadline (``lag_ms``), its CPU time, and the counters. Every player is a real client on its own
stream (50 streams per HTTP/2 connection) that joins, sends a ``move`` at ``--action-hz`` and
decodes every state with Google's upb classes for the same proto (the betterproto2 decoder would
make the load generator the thing measured).

Prints one JSON object: ticks/s per match (server) and states/s per player (client), whether the
rate was held (>= 99 % of the ticks, none skipped), tick and lag p50/p99/max, bytes per state
(full and delta), states superseded, how many ticks a client saw out of order (must be 0), and
server CPU per state delivered.

With ``--nodes N``, the same players, in the same run, first against one server, then against
N node processes on one ``redis-server`` (``appendfsync always``; player i on node i mod N, so
every match has players on every node): one node owns each match and ticks it, the others
relay its states (runtime/node_matches.py). One JSON line with both reports: the nodes' CPU
summed (per state delivered, to compare with one), Redis's apart, tick lateness from the
owners' tick drivers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import resource
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

from _pb import chat_pb2
from _serve import cpu_seconds, redis_started
from grpclib.const import Cardinality
from grpclib.encoding.proto import ProtoCodec

from interplay.transports.grpc.data_frames import Channel

STREAMS_PER_CONNECTION = 50


# -- the server, in its own process ---------------------------------------------------------


def run_server(
    conn: Connection, hz: float, full_every: int, players: int, redis: str = "", node: str = ""
) -> None:
    asyncio.run(_serve(conn, hz, full_every, players, redis, node))


async def _serve(
    conn: Connection, hz: float, full_every: int, players: int, redis: str, node_id: str
) -> None:
    from interplay.backends import MemoryBackend
    from interplay.core.matches import GameLimits, GameSettings, MatchHub
    from interplay.runtime import Runtime
    from interplay.runtime.backend import Backend
    from interplay.runtime.node import Node
    from interplay.transports.grpc.server import ServerSettings, build_server

    games = MatchHub(
        settings=GameSettings(tick_hz=hz, full_every=full_every),
        limits=GameLimits(max_players=max(players, 256), actions_per_second=1000),
    )
    backend: Backend = MemoryBackend()
    node = None
    if redis:  # one node of many
        from interplay.backends.redis import RedisEngine

        backend = engine = RedisEngine(redis, node=node_id)
        node = Node(engine)
    async with Runtime(backend, games=games, node=node) as runtime:
        while node is not None and not node.healthy:  # noqa: ASYNC110 (no event for it)
            await asyncio.sleep(0.01)
        server, service = build_server(runtime, ServerSettings())
        runtime = service.runtime
        await server.start("127.0.0.1", 0)
        assert server._server is not None
        conn.send(server._server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "start measuring"
        runtime.tick_durations.clear()
        runtime.tick_lags.clear()
        ticks0, superseded0 = service.counters.ticks, service.counters.states_superseded
        skipped0 = games.statistics().ticks_skipped
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await loop.run_in_executor(None, conn.recv)  # "stop measuring"
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        conn.send(
            {
                "ticks": service.counters.ticks - ticks0,
                "skipped": games.statistics().ticks_skipped - skipped0,
                "superseded": service.counters.states_superseded - superseded0,
                "tick_s": list(runtime.tick_durations),
                "lag_s": list(runtime.tick_lags),
                "cpu_s": cpu,
                "wall_s": wall,
                "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
        await loop.run_in_executor(None, conn.recv)  # "quit": the players have ended their calls
        server.close()
        await server.wait_closed()
    await backend.aclose()


# -- the players -----------------------------------------------------------------------------


class Player:
    def __init__(self, name: str, match: str) -> None:
        self.name = name
        self.match = match
        self.states = 0
        self.last_tick = 0
        self.disorder = 0
        self.full_bytes: list[int] = []
        self.delta_bytes: list[int] = []
        self.measuring = False


async def play(
    pb: Any, channel: Channel, player: Player, action_hz: float, stop: asyncio.Event
) -> None:
    rng = random.Random(player.name)
    async with channel.request(
        "/chat.ChatService/GameSync", Cardinality.STREAM_STREAM, pb.GameAction, pb.GameState
    ) as stream:
        await stream.send_request()
        await stream.send_message(
            pb.GameAction(player_id=player.name, action_type="join", match_id=player.match)
        )

        async def act() -> None:
            sequence = 0
            while not stop.is_set():
                await asyncio.sleep(rng.expovariate(action_hz))
                sequence += 1
                await stream.send_message(
                    pb.GameAction(
                        player_id=player.name,
                        action_type="move",
                        parameters={"dx": str(rng.randint(-5, 5)), "dy": str(rng.randint(-5, 5))},
                        sequence=sequence,
                    )
                )
            await stream.end()

        sender = asyncio.create_task(act()) if action_hz > 0 else None
        if sender is None:
            stop_task = asyncio.create_task(_end_after(stop, stream))
        while (state := await stream.recv_message()) is not None:
            if state.tick <= player.last_tick:
                player.disorder += 1
            player.last_tick = state.tick
            if player.measuring:
                player.states += 1
                size = state.ByteSize()
                (player.full_bytes if state.full else player.delta_bytes).append(size)
        await (sender if sender is not None else stop_task)


async def _end_after(stop: asyncio.Event, stream: Any) -> None:
    await stop.wait()
    await stream.end()


def encode_cost(players: int) -> dict[str, float]:
    """µs to encode one full state of ``players``: our encoder (cold cache, as after every
    player moved) against betterproto2's, the baseline it replaces."""
    from interplay.core.arena import Arena
    from interplay.core.game import Action, GameLoop
    from interplay.transports.grpc.codec import GameStateEncoder
    from interplay.transports.grpc.generated.chat import GameEvent, GameState, PlayerState

    loop = GameLoop(Arena(), start=0.0, tick_hz=60.0, actions_per_second=1000)
    for i in range(players):
        loop.submit(Action(player=f"player-{i}", kind="join"))
    (state,) = loop.advance(1 / 60)
    message = GameState(
        tick=state.tick,
        players=[
            PlayerState(
                player_id=p.player,
                x=p.x,
                y=p.y,
                health=p.health,
                attributes=dict(p.attributes),
                last_sequence=p.last_sequence,
            )
            for p in state.players
        ],
        events=[GameEvent(event_id=e.id, event_type=e.kind, data=e.data) for e in state.events],
        timestamp=1,
        match_id="m",
        full=True,
    )
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        GameStateEncoder("m").encode(state, full=True, timestamp=1)
    ours = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for _ in range(rounds):
        bytes(message)
    theirs = (time.perf_counter() - started) / rounds
    return {"interplay_us": round(ours * 1e6, 1), "betterproto2_us": round(theirs * 1e6, 1)}


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    pb: Any, ports: list[int], conns: list[Connection], args: argparse.Namespace, redis: int
) -> tuple[list[Player], float, float]:
    """Players on the servers at ``ports`` (player i on ``ports[i % len]``); the states they
    got while measuring, the seconds measured, and Redis's CPU meanwhile (pid ``redis``)."""
    players = [
        Player(f"p{m}-{i}", f"match-{m}") for m in range(args.matches) for i in range(args.players)
    ]
    channels = [
        [
            Channel("127.0.0.1", port, codec=ProtoCodec())
            for _ in range(0, len(players), STREAMS_PER_CONNECTION)
        ]
        for port in ports
    ]
    stop = asyncio.Event()
    tasks = []
    for i, player in enumerate(players):
        node, nth = i % len(ports), i // len(ports)
        channel = channels[node][nth // STREAMS_PER_CONNECTION]
        tasks.append(asyncio.create_task(play(pb, channel, player, args.action_hz, stop)))
    await asyncio.sleep(args.warmup)  # everyone joined, matches ticking
    for conn in conns:
        conn.send("start")
    redis_cpu = cpu_seconds(redis) if redis else 0.0
    for player in players:
        player.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(args.seconds)
    for player in players:
        player.measuring = False
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.send("stop")
    redis_cpu = cpu_seconds(redis) - redis_cpu if redis else 0.0
    stop.set()
    await asyncio.gather(*tasks)
    for per_port in channels:
        for channel in per_port:
            channel.close()
    for conn in conns:
        conn.send("quit")
    return players, elapsed, redis_cpu


def measure(
    pb: Any, args: argparse.Namespace, nodes: int = 0, redis: tuple[str, int] = ("", 0)
) -> dict[str, Any]:
    """One run: one server (``nodes`` 0) or ``nodes`` nodes on ``redis`` (url, pid)."""
    url, redis_pid = redis
    conns, servers, ports = [], [], []
    for n in range(max(nodes, 1)):
        ours, theirs = multiprocessing.Pipe()
        server = multiprocessing.get_context("spawn").Process(
            target=run_server,
            args=(theirs, args.hz, args.full_every, args.players, url, f"bench{n}"),
            daemon=True,
        )
        server.start()
        ports.append(ours.recv())
        conns.append(ours)
        servers.append(server)
    cpu0 = time.process_time()
    players, elapsed, redis_cpu = asyncio.run(drive(pb, ports, conns, args, redis_pid))
    client_cpu = time.process_time() - cpu0
    reports = [conn.recv() for conn in conns]
    for server in servers:
        server.join(timeout=30)
    wall = max(r["wall_s"] for r in reports)
    ticks = sum(r["ticks"] for r in reports)
    skipped = sum(r["skipped"] for r in reports)
    server_cpu = sum(r["cpu_s"] for r in reports)
    expected = args.hz * wall * args.matches
    rates = [p.states / elapsed for p in players]
    states = sum(p.states for p in players)
    full = [b for p in players for b in p.full_bytes]
    delta = [b for p in players for b in p.delta_bytes]
    tick_ms = [s * 1000 for r in reports for s in r["tick_s"]]
    lag_ms = [s * 1000 for r in reports for s in r["lag_s"]]
    report = {
        "config": f"{args.matches}x{args.players} at {args.hz:g} Hz, "
        f"{args.action_hz:g} moves/s per player, full every {args.full_every}",
        "ticks_per_s_per_match": round(ticks / wall / args.matches, 2),
        "held": ticks >= 0.99 * expected and skipped == 0,
        "ticks_skipped": skipped,
        "tick_ms": {
            "p50": round(pct(tick_ms, 0.5), 3),
            "p99": round(pct(tick_ms, 0.99), 3),
            "max": round(max(tick_ms, default=0), 3),
        },
        "lag_ms": {
            "p50": round(pct(lag_ms, 0.5), 3),
            "p99": round(pct(lag_ms, 0.99), 3),
            "max": round(max(lag_ms, default=0), 3),
        },
        "states_per_s_per_player": {
            "min": round(min(rates), 2),
            "mean": round(statistics.fmean(rates), 2),
        },
        "bytes_per_state": {
            "full": round(statistics.fmean(full)) if full else 0,
            "delta": round(statistics.fmean(delta)) if delta else 0,
        },
        "states_superseded": sum(r["superseded"] for r in reports),
        "out_of_order": sum(p.disorder for p in players),
        "server_cpu_share": round(server_cpu / wall, 3),
        "server_cpu_us_per_state": round(server_cpu / max(states, 1) * 1e6, 2),
        "client_cpu_s": round(client_cpu, 2),
        "server_max_rss_mib": round(max(r["max_rss_mib"] for r in reports), 1),
    }
    if nodes:
        report["nodes"] = nodes
        report["redis_cpu_us_per_state"] = round(redis_cpu / max(states, 1) * 1e6, 2)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=1)
    parser.add_argument("--players", type=int, default=100, help="per match")
    parser.add_argument("--hz", type=float, default=60.0)
    parser.add_argument("--full-every", type=int, default=60)
    parser.add_argument("--action-hz", type=float, default=10.0, help="moves per player per s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--nodes",
        type=int,
        default=0,
        help="also run N Redis nodes (players split across them) after one server, same run",
    )
    args = parser.parse_args()

    pb = chat_pb2()
    report = measure(pb, args)
    report["encode_full_state"] = encode_cost(args.players)
    if args.nodes:
        with redis_started() as redis:
            many = measure(pb, args, args.nodes, redis)
        report = {
            "bench": "game_tick",
            "one_node": report,
            "nodes": many,
            "cpu_per_state_nodes_to_one": round(
                many["server_cpu_us_per_state"] / max(report["server_cpu_us_per_state"], 1e-9), 2
            ),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
