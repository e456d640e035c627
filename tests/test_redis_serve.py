"""``interplay serve --redis``: whole node processes on one real redis-server (DESIGN §10)."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from game_client import game_call
from grpclib.client import Channel
from redis_server import redis_server

from helpers import T, chat_call, free_port, interplay_process
from interplay.backends.redis.engine import match_keys
from interplay.cli import main
from interplay.testing.transport import GameClient

pytestmark = pytest.mark.anyio


def test_workers_without_redis_is_refused_naming_both_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["serve", "--workers", "2", "--data", ":memory:"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "--workers needs --redis" in err and "Traceback" not in err


@pytest.mark.slow
async def test_a_node_sigkilled_mid_conversation_its_client_resumes_on_the_other(
    tmp_path: Path,
) -> None:
    with (
        redis_server(tmp_path / "redis") as redis,
        interplay_process(tmp_path / "a.db", "--redis", redis.url, killed=True) as (a, node_a),
        interplay_process(tmp_path / "b.db", "--redis", redis.url) as (b, _),
    ):
        async with (
            Channel("127.0.0.1", a) as to_a,
            Channel("127.0.0.1", b) as to_b,
            chat_call(to_b) as bob,
            chat_call(to_a) as carl,
        ):
            await bob.join("bob")
            [bob_echo] = await bob.recv_n(1)
            await carl.join("carl")
            await bob.recv_until(lambda m: m.type == T.JOIN and m.sender_id == "carl")
            async with chat_call(to_a) as ann:
                await ann.join("ann")
                await ann.recv_until(lambda m: m.type == T.JOIN and m.sender_id == "ann")
                for n in range(3):
                    await ann.text(f"m{n}", id=f"a{n}")
                acked = await ann.recv_until(lambda m: m.type == T.TEXT and m.seq == 3)
                assert [m.seq for m in acked if m.type == T.TEXT] == [1, 2, 3]
                node_a.kill()  # mid-conversation: a3 is sent, never acknowledged
                killed = time.monotonic()
                await ann.text("m3", id="a3")
            received = await bob.recv_until(lambda m: m.type == T.TEXT and m.seq == 3)
            assert bob_echo.epoch and [m.seq for m in received if m.type == T.TEXT] == [1, 2, 3]
            # Ann's client reconnects to the other node, resumes after its last ack and
            # re-sends what was not acknowledged.
            async with chat_call(to_b) as again:
                await again.join("ann", resume_after_seq=2, epoch=bob_echo.epoch)
                replay = await again.recv_until(lambda m: m.type == T.TEXT and m.seq == 3)
                assert [m.id for m in replay if m.type == T.TEXT] == ["a2"]  # only the missed
                await again.text("m3", id="a3")
                await again.text("m3", id="a3")  # a client retrying twice
                acks = [await again.recv_until(lambda m: m.type == T.TEXT) for _ in range(2)]
                assert [m[-1].seq for m in acks] == [4, 4]  # stored once
            late = await bob.recv_until(lambda m: m.type == T.TEXT and m.seq == 4)
            assert [m.id for m in late if m.type == T.TEXT] == ["a3"]
            # carl never came back: the dead node's members leave within 10 s.
            await bob.recv_until(lambda m: m.type == T.LEAVE and m.sender_id == "carl", 10)
            assert time.monotonic() - killed < 10


def test_workers_metrics_ports_must_not_take_another_flags_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["serve", "--workers", "3", "--redis", "redis://127.0.0.1:1/0"]
    with pytest.raises(SystemExit) as exit:
        main([*argv, "--metrics-port", "9100", "--ws-port", "9102"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "3 workers serve metrics on ports 9100 to 9102, one each: --ws-port" in err


def two_free_ports() -> int:
    """A port P with P + 1 free too (one metrics port per worker)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two adjacent free ports")


@pytest.mark.slow
async def test_workers_share_one_port_and_their_rooms(tmp_path: Path) -> None:
    port, ws_port, metrics = free_port(), free_port(), two_free_ports()
    flags = ["--port", str(port), "--ws-port", str(ws_port), "--metrics-port", str(metrics)]
    with (
        redis_server(tmp_path / "redis") as redis,
        interplay_process(tmp_path / "x.db", "--redis", redis.url, "--workers", "2", *flags) as (
            _,
            process,
        ),
    ):
        # One announcement, once both workers listen on every port.
        [ready] = [line for line in process.startup if line.startswith("interplay: ready")]
        assert f"metrics on ports {metrics} to {metrics + 1} (one per worker)" in ready
        assert "2 workers" in ready
        async with httpx.AsyncClient(timeout=10) as http:
            for each in (metrics, metrics + 1):
                scraped = await http.get(f"http://127.0.0.1:{each}/metrics")
                assert scraped.status_code == 200 and "interplay_" in scraped.text
            for _ in range(4):  # the browser app, from whichever worker takes the connection
                assert (await http.get(f"http://127.0.0.1:{ws_port}/")).status_code == 200
        # Connections spread over the two processes; every member sees every TEXT, in one order.
        channels = [Channel("127.0.0.1", port) for _ in range(6)]
        try:
            calls = []
            for n, channel in enumerate(channels):
                call = chat_call(channel)
                client = await call.__aenter__()
                calls.append((call, client))
                await client.join(f"u{n}")
            for _, client in calls:
                await client.recv_until(lambda m: m.type == T.JOIN and m.seq == 0 and m.epoch)
            for n, (_, client) in enumerate(calls):
                await client.text(f"t{n}", id=f"t{n}")
            orders = []
            for _, client in calls:
                got = await client.recv_until(lambda m: m.type == T.TEXT and m.seq == 6)
                orders.append([m.id for m in got if m.type == T.TEXT][-6:])
            assert all(order == orders[0] for order in orders)
            for call, _ in reversed(calls):
                await call.__aexit__(None, None, None)
        finally:
            for channel in channels:
                channel.close()


@pytest.mark.slow
def test_a_worker_that_cannot_start_stops_them_all_and_says_which(tmp_path: Path) -> None:
    metrics = two_free_ports()
    exe = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")
    with redis_server(tmp_path / "redis") as redis, socket.socket() as taken:
        taken.bind(("127.0.0.1", metrics + 1))  # worker 1's metrics port
        taken.listen()
        argv = [exe, "serve", "--redis", redis.url, "--workers", "2", "--port", "0"]
        argv += ["--ws-port", "0", "--metrics-port", str(metrics)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert f"--metrics-port: 127.0.0.1:{metrics + 1} is already in use" in done.stderr
    assert "worker 1 of 2 exited with code 2 before it was ready" in done.stderr
    assert "interplay: ready" not in done.stdout and "Traceback" not in done.stderr


@pytest.mark.slow
def test_health_is_not_serving_while_redis_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def health_until(code: int) -> None:
        deadline = time.monotonic() + 10
        while (got := main(["health", "--server", f"127.0.0.1:{port}"])) != code:
            assert time.monotonic() < deadline, f"health still {got}, not {code}"
            time.sleep(0.2)

    with (
        redis_server(tmp_path / "redis") as redis,
        interplay_process(tmp_path / "a.db", "--redis", redis.url) as (port, _),
    ):
        health_until(0)
        redis.stop()
        health_until(1)
        said = capsys.readouterr()
        assert "NOT_SERVING" in said.out + said.err
        redis.start()
        health_until(0)  # by itself, once Redis is back


@pytest.mark.slow
def test_workers_drain_and_exit_when_the_first_process_is_killed(tmp_path: Path) -> None:
    with (
        redis_server(tmp_path / "redis") as redis,
        interplay_process(
            tmp_path / "x.db", "--redis", redis.url, "--workers", "3", killed=True
        ) as (_, process),
    ):
        process.kill()  # SIGKILL: it cannot stop its workers itself
        process.wait(timeout=10)  # reaped: a zombie would still count in the group
        deadline = time.monotonic() + 15
        while True:  # the process group empties: no orphan holds the port
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "a worker outlived its first process"
            time.sleep(0.1)


MATCH_FLAGS = ("--match-lease", "1", "--tick-hz", "20")  # a lapse takes a second, not five


def ticks_increase(client: GameClient) -> bool:
    ticks = [state.tick for state in client.states]
    return all(a < b for a, b in itertools.pairwise(ticks))


@pytest.mark.slow
async def test_the_owner_of_a_match_sigkilled_its_match_goes_on_from_the_other_node(
    tmp_path: Path,
) -> None:
    with (
        redis_server(tmp_path / "redis") as redis,
        interplay_process(tmp_path / "a.db", "--redis", redis.url, *MATCH_FLAGS, killed=True) as (
            a,
            node_a,
        ),
        interplay_process(tmp_path / "b.db", "--redis", redis.url, *MATCH_FLAGS) as (b, _),
    ):
        async with (
            Channel("127.0.0.1", a) as to_a,
            Channel("127.0.0.1", b) as to_b,
            game_call(to_b, "bob") as bob,
        ):
            async with game_call(to_a, "ann") as ann:
                await ann.join("m")
                await ann.until(lambda c: bool(c.states))  # node a owns it: only it had players
                await bob.join("m")
                await bob.until(lambda c: set(c.mirror.players) == {"ann", "bob"})
                node_a.kill()
                killed, seen = time.monotonic(), len(bob.states)
            # Node b takes the lease over and ticks on: a second of its states within 5 s.
            await bob.until(lambda c: len(c.states) >= seen + 20, timeout=5)
            assert time.monotonic() - killed < 5
            assert ticks_increase(bob)
            # Ann's node is dead: she leaves the match within 10 s.
            await bob.until(lambda c: "ann" not in c.mirror.players, timeout=10)
            assert time.monotonic() - killed < 10
            assert ticks_increase(bob)


async def scraped(port: int, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    [value] = [line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(value)


@pytest.mark.slow
async def test_an_owner_sigstopped_past_its_lease_loses_the_match_and_wakes_harmless(
    tmp_path: Path,
) -> None:
    metrics = free_port()
    with (
        redis_server(tmp_path / "redis") as redis,
        interplay_process(
            tmp_path / "a.db", "--redis", redis.url, *MATCH_FLAGS, "--metrics-port", str(metrics)
        ) as (a, node_a),
        interplay_process(tmp_path / "b.db", "--redis", redis.url, *MATCH_FLAGS) as (b, _),
    ):
        client = aioredis.Redis.from_url(redis.url)
        owner, snap = match_keys("m")[0], match_keys("m")[2]
        try:
            async with (
                Channel("127.0.0.1", a) as to_a,
                Channel("127.0.0.1", b) as to_b,
                game_call(to_a, "ann") as ann,
                game_call(to_b, "bob") as bob,
            ):
                await ann.join("m")
                await ann.until(lambda c: bool(c.states))  # node a owns it
                assert (await client.get(owner) or b"").endswith(b"|1")
                await bob.join("m")
                await bob.until(lambda c: set(c.mirror.players) == {"ann", "bob"})
                os.kill(node_a.pid, signal.SIGSTOP)
                try:
                    seen = len(bob.states)
                    # The match moves to node b (fence + 1) and goes on there.
                    await bob.until(lambda c: len(c.states) >= seen + 40, timeout=8)
                    assert (await client.get(owner) or b"").endswith(b"|2")
                    assert await client.hget(snap, "fence") == b"2"  # b's snapshots
                finally:
                    os.kill(node_a.pid, signal.SIGCONT)
                # Awake, node a ticks no more: what it publishes or saves late is refused, and
                # its player is served the new owner's states, ticks still increasing.
                seen = len(ann.states)
                await ann.until(lambda c: len(c.states) >= seen + 20, timeout=5)
                ticks, seen = await scraped(metrics, "interplay_ticks_total"), len(bob.states)
                await bob.until(lambda c: len(c.states) >= seen + 20, timeout=5)
                assert await scraped(metrics, "interplay_ticks_total") == ticks
                assert await scraped(metrics, "interplay_match_leases_lapsed_total") == 1
                assert await scraped(metrics, "interplay_matches_owned") == 0
                assert (await client.get(owner) or b"").endswith(b"|2")
                assert await client.hget(snap, "fence") == b"2"
                assert ticks_increase(ann) and ticks_increase(bob)
                # Both nodes' players see one match.
                assert set(ann.mirror.players) == set(bob.mirror.players) == {"ann", "bob"}
        finally:
            await client.aclose()
