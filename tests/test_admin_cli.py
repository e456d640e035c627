"""`interplay admin` against `interplay serve`, both as a person runs them; and
`--history-ttl` wired through to the running server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import interplay_serve

pytestmark = pytest.mark.slow

INTERPLAY = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")
ADMIN_SECRET = "the-admin-secret-for-the-cli-test-32bytes"


def admin(port: int, *call: str, secret: str = ADMIN_SECRET) -> tuple[int, Any]:
    done = subprocess.run(
        [INTERPLAY, "admin", "--server", f"127.0.0.1:{port}", "--admin-secret", secret, *call],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Traceback" not in done.stderr + done.stdout
    if done.returncode:
        return done.returncode, done.stdout.strip()
    return 0, json.loads(done.stdout)


def test_publish_presence_history_and_disconnect_from_a_terminal(tmp_path: Path) -> None:
    with interplay_serve(tmp_path / "data.db", "--admin-secret", ADMIN_SECRET) as port:
        code, reply = admin(
            port, "publish", "--room", "lobby", "--sender", "bot", "--id", "b1", "hi"
        )
        assert code == 0 and reply["message"]["seq"] == "1" and not reply["duplicate"]
        code, reply = admin(
            port, "publish", "--room", "lobby", "--sender", "bot", "--id", "b1", "hi"
        )
        assert reply["duplicate"] and reply["message"]["seq"] == "1"
        code, reply = admin(port, "publish", "--room", "lobby", "--sender", "ops", "--system", "up")
        assert reply["message"]["type"] == "SYSTEM" and reply["message"]["seq"] == "2"
        assert admin(port, "presence", "--room", "lobby") == (0, {"users": []})
        code, page = admin(port, "history", "--room", "lobby", "--limit", "1")
        assert [m["content"] for m in page["messages"]] == ["hi"] and page["head"] == "2"
        code, page = admin(port, "history", "--room", "lobby", "--after-seq", "1")
        assert [m["content"] for m in page["messages"]] == ["up"]
        assert admin(port, "disconnect", "--user", "nobody") == (0, {"streams": 0})
        assert admin(port, "matches") == (0, {"matches": []})
        code, said = admin(port, "presence", "--room", "lobby", secret="x" * 40)
        assert (code, said) == (
            1,
            "interplay admin: UNAUTHENTICATED authorization: Signature verification failed",
        )
    code, said = admin(port, "presence", "--room", "lobby")  # the server is gone
    assert code == 1 and said.startswith(f"interplay admin: cannot reach 127.0.0.1:{port}")


def test_history_ttl_trims_and_forgets_on_a_running_server(tmp_path: Path) -> None:
    with interplay_serve(
        tmp_path / "data.db", "--admin-secret", ADMIN_SECRET, "--history-ttl", "1s"
    ) as port:
        admin(port, "publish", "--room", "brief", "--sender", "bot", "soon gone")
        deadline = time.monotonic() + 15
        while admin(port, "history", "--room", "brief")[1]["epoch"]:  # the room is still known
            assert time.monotonic() < deadline, "not forgotten"
            time.sleep(0.2)
        assert admin(port, "history", "--room", "brief")[1] == {
            "messages": [],
            "epoch": "",
            "head": "0",
        }
