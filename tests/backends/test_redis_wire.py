"""The nodes' own pub/sub connection (``backends/redis/wire.py``) against a real
``redis-server``: a password in the URL, a Redis that goes silent, many replies per read."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis
from redis_server import redis_server

from interplay.backends.redis.wire import PubSubConnection, ScriptConnection

pytestmark = pytest.mark.anyio


async def confirmed(connection: PubSubConnection, channel: str) -> None:
    await connection.subscribe([channel])
    with anyio.fail_after(5):
        while True:
            replies = await connection.read()
            if [b"subscribe", channel.encode(), 1] in replies:
                return


async def test_a_wrong_password_is_refused_with_redis_s_reason(tmp_path: Path) -> None:
    with redis_server(tmp_path, password="s3cret") as server:
        wrong = PubSubConnection(server.url.replace("s3cret", "wrong"))
        with pytest.raises(ConnectionError, match="refused AUTH"):
            await wrong.connect()
        assert not wrong.connected
        right = PubSubConnection(server.url)
        await right.connect()
        await confirmed(right, "guarded")
        await right.close()


async def test_a_silent_redis_is_pinged_then_given_up_on(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        connection = PubSubConnection(server.url, idle=0.2)
        await connection.connect()
        await confirmed(connection, "quiet")
        with anyio.fail_after(5):  # silence, no more: a PONG comes back and it reads on
            with anyio.move_on_after(0.5):
                while True:
                    assert await connection.read() == [[b"pong", b""]]
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)  # alive, but answers nothing
        try:
            with anyio.fail_after(5), pytest.raises(ConnectionError, match=r"silent for 0\.4 s"):
                while True:
                    await connection.read()
            assert not connection.connected
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        await connection.connect()  # and once it answers again, connects again
        await confirmed(connection, "quiet")
        await connection.close()


async def test_one_read_hands_over_every_message_the_socket_holds(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        connection = PubSubConnection(server.url)
        await connection.connect()
        await confirmed(connection, "busy")
        client = aioredis.Redis.from_url(server.url)
        pipe = client.pipeline(transaction=False)
        for n in range(200):
            pipe.publish("busy", f"m{n}")
        await pipe.execute()
        await client.aclose()
        reads, got = 0, []
        with anyio.fail_after(5):
            while len(got) < 200:
                got += [reply[2] for reply in await connection.read()]
                reads += 1
        assert got == [f"m{n}".encode() for n in range(200)]  # in order, each once
        assert reads < 200 / 2  # parsed many at a time
        await connection.close()


async def test_a_pipeline_after_a_redis_restart_goes_to_the_new_redis(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        connection = ScriptConnection(server.url)
        assert await connection.execute([("SET", "k", "v"), ("GET", "k")]) == [b"OK", b"v"]
        assert not connection.stale()
        server.restart()  # the idle connection's peer is gone: found out before it is used
        assert await connection.execute([("PING",), ("GET", "k")]) == [b"PONG", b"v"]
        answers = await connection.execute([("GET", "k", "extra"), ("PING",)])
        assert isinstance(answers[0], Exception) and answers[1] == b"PONG"  # each on its own
        server.stop()
        with pytest.raises(ConnectionError):
            await connection.execute([("PING",)])
        assert not connection.connected
