"""``interplay serve --redis``: whole node processes on one real redis-server (DESIGN §10)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from grpclib.client import Channel
from redis_server import redis_server

from helpers import T, chat_call, free_port, interplay_process
from interplay.cli import main

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
