"""The browser app in chromium against `interplay serve` (a subprocess on real ports): people
chat, co-edit with a gRPC editor, play against a gRPC player, and ride out a server kill."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from playwright.async_api import Page, WebSocketRoute, expect
from starlette.applications import Starlette
from starlette.routing import Mount

from browser_support import Pages, WebServer, web_serve
from helpers import eventually, free_port, tcp_server, uvicorn_serving, websocket_server
from interplay.backends import MemoryBackend
from interplay.core import Kind
from interplay.core.backoff import BackoffPolicy
from interplay.core.documents import DocumentHub
from interplay.runtime import Runtime, Settings
from interplay.runtime.auth import Authenticator
from interplay.transports.asgi import InterplayASGI
from interplay.transports.grpc.client import ChatClient, EditClient, GameClient
from interplay.transports.websocket.server import WebSocketSettings, default_web_root

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAST = BackoffPolicy(initial=0.2, multiplier=1.5, cap=1.0)


async def texts(page: Page) -> list[tuple[int, str, str]]:
    """The chat messages a page shows: (seq, sender, text), pending ones with seq 0."""
    rows = await page.locator("#messages li.message").evaluate_all(
        "nodes => nodes.map(n => [Number(n.dataset.seq), n.dataset.sender,"
        " n.querySelector('.body').textContent])"
    )
    return [(seq, sender, text) for seq, sender, text in rows]


async def say(page: Page, text: str) -> None:
    await page.fill("#message-input", text)
    await page.press("#message-input", "Enter")


async def test_two_pages_chat_with_presence_typing_and_history(
    pages: Pages, tmp_path: Path
) -> None:
    with web_serve(tmp_path / "chat.db") as server:
        ann = await pages.open(server.url("user=ann&room=lobby"))
        await expect(ann.locator("#chat-status")).to_have_text("connected")
        bob = await pages.open(server.url("user=bob&room=lobby"))
        await expect(ann.locator("#member-list [data-member=bob]")).to_be_visible()
        await expect(bob.locator("#member-list li")).to_have_count(2)

        await say(ann, "hi bob")
        await expect(bob.locator("#messages li.message")).to_have_count(1)
        await bob.locator("#message-input").press_sequentially("hi ann, astral 𝄞 ok")
        await expect(ann.locator("#typing")).to_have_text("bob is typing…")
        await bob.press("#message-input", "Enter")
        await expect(ann.locator("#typing")).to_have_text("")
        want = [(1, "ann", "hi bob"), (2, "bob", "hi ann, astral 𝄞 ok")]
        for page in (ann, bob):
            await expect(page.locator("#messages li.message:not(.pending)")).to_have_count(2)
            assert await texts(page) == want

        # A second room: bob joins it from the form and posts; ann, in the lobby, is told.
        await ann.fill("#join-room-name", "design")
        await ann.press("#join-room-name", "Enter")
        await ann.click("#room-list li[data-room=lobby]")
        await bob.fill("#join-room-name", "#design")
        await bob.press("#join-room-name", "Enter")
        await expect(bob.locator("#room-title")).to_have_text("#design")
        await say(bob, "over here")
        await expect(ann.locator("#room-list li[data-room=design] .unread")).to_have_text("1")
        await ann.click("#room-list li[data-room=design]")
        assert await texts(ann) == [(1, "bob", "over here")]
        await expect(ann.locator("#room-list li[data-room=design] .unread")).to_have_count(0)
        await ann.click("#room-list li[data-room=lobby]")

        # A third person gets the history on join; leaving is announced.
        cat = await pages.open(server.url("user=cat&room=lobby"))
        await expect(cat.locator("#messages li.message")).to_have_count(2)
        assert await texts(cat) == want
        await expect(ann.locator("#member-list li")).to_have_count(3)
        await cat.close()
        await expect(ann.locator("#member-list li")).to_have_count(2)
        await expect(ann.locator("#messages .notice", has_text="cat left")).to_be_visible()
        for _, log in pages.opened:
            assert log.errors == []


async def editor_state(page: Page) -> tuple[str, int, bool]:
    """What the page's textarea shows, its revision, and whether every edit is acknowledged."""
    meta = page.locator("#doc-meta")
    return (
        await page.input_value("#doc-text"),
        int(await meta.get_attribute("data-revision") or -1),
        await meta.get_attribute("data-settled") == "true",
    )


async def converged(editors: list[Page], cat: EditClient) -> str:
    """Wait until both pages and the gRPC editor hold the same acknowledged text."""

    async def check() -> bool:
        states = [await editor_state(page) for page in editors]
        return all(
            settled and (text, revision) == (cat.text, cat.doc.revision)
            for text, revision, settled in states
        )

    with anyio.fail_after(20):
        while not (cat.editor.settled and await check()):  # noqa: ASYNC110 (polling pages)
            await anyio.sleep(0.05)
    return cat.text


async def test_two_pages_and_a_grpc_editor_type_at_once_and_converge(
    pages: Pages, tmp_path: Path
) -> None:
    """ann types lowercase at the end, bob uppercase at the start, cat (gRPC) appends digits,
    all at once: every editor ends with the same text, each one's characters once, in order;
    ann's undo takes back only her own typing."""
    typed = {"ann": "abcdefghijklmnopqrstuvwxyz", "bob": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    digits = "0123456789" * 2
    with web_serve(tmp_path / "docs.db") as server:
        async with EditClient("127.0.0.1", server.grpc_port, user="cat", document="notes") as cat:
            await cat.wait_synced()
            await cat.insert(0, "--")
            ann = await pages.open(server.url("user=ann&doc=notes", "editor"))
            bob = await pages.open(server.url("user=bob&doc=notes", "editor"))
            for page in (ann, bob):
                await expect(page.locator("#doc-text")).to_have_value("--")
            await ann.locator("#doc-text").press("Control+End")
            await bob.locator("#doc-text").press("Control+Home")

            async def type_on(page: Page, text: str) -> None:
                await page.locator("#doc-text").press_sequentially(text, delay=15)

            async def append_digits() -> None:
                for digit in digits:
                    await cat.insert(len(cat.text), digit)
                    await anyio.sleep(0.02)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(type_on, ann, typed["ann"])
                tasks.start_soon(type_on, bob, typed["bob"])
                tasks.start_soon(append_digits)
            text = await converged([ann, bob], cat)
            assert "".join(c for c in text if c.islower()) == typed["ann"]
            assert "".join(c for c in text if c.isupper()) == typed["bob"]
            assert "".join(c for c in text if c.isdigit()) == digits
            assert text.count("-") == 2

            # ann sees bob's caret, flagged with his name, where he stopped typing.
            await expect(ann.locator("#carets .caret[data-user=bob] .flag")).to_be_visible()
            before_bob = await ann.locator("#carets").evaluate(
                "node => node.textContent.split('bob')[0]"
            )
            assert before_bob == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

            await ann.locator("#doc-text").press("Control+z")
            after = await converged([ann, bob], cat)
            lower = "".join(c for c in after if c.islower())
            assert len(lower) < len(typed["ann"]) and typed["ann"].startswith(lower)
            assert "".join(c for c in after if not c.islower()) == "".join(
                c for c in text if not c.islower()
            )
            await ann.locator("#doc-text").press("Control+Shift+z")  # redo puts it back
            assert await converged([ann, bob], cat) == text
            for _, log in pages.opened:
                assert log.errors == []


async def test_a_page_typing_while_cut_off_keeps_its_typing_after_a_snapshot(
    pages: Pages,
) -> None:
    """The server keeps 2 revisions. ann's page loses its connection (its calls are cut and
    refused for a while: the route below), types, and cat (gRPC) types 6 edits meanwhile, so
    the revision ann holds is gone: her rejoin is answered by a snapshot. Her typing is
    rebased onto it, not lost: it reaches cat, and both end with the same text, each one's
    characters once and in order."""
    up = True
    live: list[tuple[WebSocketRoute, WebSocketRoute]] = []
    from_server: list[dict[str, Any]] = []

    async def route(ws: WebSocketRoute) -> None:
        if not up:
            await ws.close(code=1012, reason="cut off by the test")
            return
        server = ws.connect_to_server()

        def deliver(message: str | bytes) -> None:
            from_server.append(json.loads(message))
            ws.send(message)

        server.on_message(deliver)  # recorded, then on to the page; the page's go on as is
        live.append((ws, server))

    async def prepare(page: Page) -> None:
        await page.route_web_socket(re.compile(r"/edit(\?|$)"), route)

    settings = WebSocketSettings(port=0, web_root=default_web_root())
    async with (
        tcp_server(documents=DocumentHub(keep=2)) as grpc_served,
        websocket_server(settings, runtime=grpc_served.service.runtime) as ws_served,
        EditClient("127.0.0.1", grpc_served.port, user="cat", document="notes") as cat,
    ):
        await cat.wait_synced()
        await cat.insert(0, "[]")
        url = f"http://127.0.0.1:{ws_served.port}/?user=ann&doc=notes#editor"
        ann = await pages.open(url, prepare)
        status = ann.locator("#edit-status")
        await expect(ann.locator("#doc-text")).to_have_value("[]")
        await expect(ann.locator("#doc-meta")).to_have_attribute("data-settled", "true")

        up = False
        for page_side, server_side in live:
            await page_side.close(code=1012, reason="cut off by the test")
            await server_side.close()
        await expect(status).to_have_attribute("data-state", "reconnecting")
        await ann.locator("#doc-text").press("Control+End")
        await ann.locator("#doc-text").press_sequentially("abc𝄞de", delay=10)
        for digit in "012345":  # one revision each
            await cat.insert(len(cat.text), digit)
            await cat.wait_settled()
        from_server.clear()
        up = True

        await expect(status).to_have_text("connected", timeout=20_000)
        text = await converged([ann], cat)
        snapshots = [f for f in from_server if f.get("operation") == "snapshot"]
        assert snapshots and snapshots[0]["content"] == "[]012345"  # no catch-up: trimmed
        assert "".join(c for c in text if c in "abc𝄞de") == "abc𝄞de"
        assert "".join(c for c in text if c.isdigit()) == "012345"
        assert sorted(text) == sorted("[]abc𝄞de012345")
        for _, log in pages.opened:
            assert log.errors == []


async def test_a_page_survives_a_server_kill_and_restart(pages: Pages, tmp_path: Path) -> None:
    """SIGKILL `interplay serve` under a chatting page and an editing page, type while it is
    down, restart it on the same ports and data: the pages show it reconnecting and back; every
    message is there once, in seq order, the one racing the kill included, and every edit once;
    gRPC clients see the same."""
    data, grpc_port, ws_port = tmp_path / "chat.db", free_port(), free_port()
    ports = {"grpc_port": grpc_port, "ws_port": ws_port, "killed": True}
    server = web_serve(data, **ports)  # type: ignore[arg-type]
    running: WebServer = server.__enter__()
    try:
        ann = await pages.open(running.url("user=ann&room=lobby"))
        status = ann.locator("#chat-status")
        await expect(status).to_have_text("connected")
        for n in range(3):
            await say(ann, f"before {n}")
        await expect(ann.locator("#messages li.message:not(.pending)")).to_have_count(3)
        ed = await pages.open(running.url("user=ed&doc=plan", "editor"))
        await expect(ed.locator("#doc-text")).to_be_enabled()
        await ed.locator("#doc-text").press_sequentially("kept ")
        await expect(ed.locator("#doc-meta")).to_have_attribute("data-settled", "true")
        await ed.locator("#doc-text").press_sequentially("racing ")  # in flight at the kill
        await say(ann, "racing the kill")  # stored or not: re-sent under its id, shown once
        running.process.kill()
        server.__exit__(None, None, None)

        await expect(status).to_have_attribute("data-state", "reconnecting")
        await expect(status).to_contain_text(re.compile(r"connection lost; retrying in \d"))
        for n in range(2):
            await say(ann, f"while down {n}")
        await expect(ed.locator("#edit-status")).to_have_attribute("data-state", "reconnecting")
        await ed.locator("#doc-text").press_sequentially("typed while down")
        pending = ann.locator("#messages li.message.pending", has_text="while down")
        await expect(pending).to_have_count(2, timeout=1000)

        server = web_serve(data, **ports)  # type: ignore[arg-type]
        running = server.__enter__()
        await expect(status).to_have_text("connected", timeout=20_000)
        assert int(await status.get_attribute("data-reconnects") or 0) >= 1
        await expect(ann.locator("#toast")).to_contain_text("reconnected")
        await expect(ann.locator("#messages li.message:not(.pending)")).to_have_count(6)
        await expect(ann.locator("#messages li.message.pending")).to_have_count(0)
        await expect(ed.locator("#edit-status")).to_have_text("connected")
        await expect(ed.locator("#doc-meta")).to_have_attribute("data-settled", "true")
        await expect(ed.locator("#doc-text")).to_have_value("kept racing typed while down")
        async with EditClient("127.0.0.1", grpc_port, user="cat", document="plan") as cat:
            await cat.wait_synced()
            assert cat.text == "kept racing typed while down"

        async with ChatClient("127.0.0.1", grpc_port, user="bob", backoff=FAST) as bob:
            await bob.join("lobby")
            seen = []
            with anyio.fail_after(10):
                async for message in bob:
                    if message.kind is Kind.TEXT:
                        seen.append((message.seq, message.sender, message.content))
                    if len(seen) == 6:
                        break
            await bob.send("lobby", "welcome back")
            await expect(ann.locator("#messages li.message")).to_have_count(7)
            await expect(ann.locator("#member-list [data-member=bob]")).to_be_visible()
        sent = [
            "before 0",
            "before 1",
            "before 2",
            "racing the kill",
            "while down 0",
            "while down 1",
        ]
        want = [(n + 1, "ann", text) for n, text in enumerate(sent)]
        assert seen == want
        assert await texts(ann) == [*want, (7, "bob", "welcome back")]
        await expect(ann.locator("#member-list [data-member=bob]")).to_have_count(0)  # bob left
    finally:
        server.__exit__(None, None, None)


async def test_a_game_page_moves_with_the_keyboard_and_a_grpc_player_sees_it(
    pages: Pages, tmp_path: Path
) -> None:
    with web_serve(tmp_path / "game.db") as server:
        async with GameClient("127.0.0.1", server.grpc_port, player="bob", match="m1") as bob:
            seen: list[tuple[float, float]] = []  # ann's positions in bob's states

            async def watch() -> None:
                async for mirror in bob:
                    ann_state = mirror.players.get("ann")
                    if ann_state is not None:
                        seen.append((ann_state.x, ann_state.y))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch)
                ann = await pages.open(server.url("user=ann&match=m1", "game"))
                await expect(ann.locator("#game-status")).to_have_text("connected")
                row = ann.locator("#scores tr[data-player=ann]")
                await expect(ann.locator("#scores tr[data-player=bob]")).to_be_visible()
                await eventually(lambda: bool(seen))
                x, y = seen[-1]
                key, sign = ("ArrowRight", 1) if x < 500 else ("ArrowLeft", -1)
                await ann.locator("#arena").click()
                await ann.keyboard.down(key)
                await anyio.sleep(0.6)
                await ann.keyboard.up(key)
                # Every move the page sent is confirmed: where it shows ann, bob sees her.
                await expect(ann.locator("#game-meta")).to_have_attribute("data-unconfirmed", "0")
                shown = (float(await row.get_attribute("data-x") or 0), y)
                assert sign * (shown[0] - x) >= 60  # 0.6 s held: a move every 50 ms, 10 each
                await eventually(lambda: seen[-1] == shown)
                await expect(row).to_have_attribute("data-y", f"{y:g}")

                # bob moves over gRPC: the page follows (delta states).
                bob_row = ann.locator("#scores tr[data-player=bob]")
                start = float(await bob_row.get_attribute("data-y") or 0)
                step = 5 if start < 500 else -5
                await bob.act("move", dx="0", dy=str(step))
                await expect(bob_row).to_have_attribute("data-y", f"{start + step:g}")
                # Space attacks the nearest player: the server's verdict shows in the events.
                await ann.locator("#arena").press(" ")
                events = ann.locator("#events li", has_text=re.compile(r"^ann (hit bob|missed)$"))
                await expect(events).to_have_count(1)
                tasks.cancel_scope.cancel()
            for _, log in pages.opened:
                assert log.errors == []


async def test_a_page_passes_its_access_token_and_shows_a_refusal(
    pages: Pages, tmp_path: Path
) -> None:
    secret = "browser-test-secret-" * 3
    token = Authenticator(secret).mint("ann")
    with web_serve(tmp_path / "auth.db", "--auth-secret", secret) as server:
        ann = await pages.open(server.url(f"user=ann&room=lobby&access_token={token}"))
        await expect(ann.locator("#chat-status")).to_have_text("connected")
        await say(ann, "signed in")
        await expect(ann.locator("#messages li.message:not(.pending)")).to_have_count(1)

        eve = await pages.open(server.url("user=eve&room=lobby"))
        status = eve.locator("#chat-status")
        await expect(status).to_have_attribute("data-state", "failed")  # fatal: no retry
        await expect(status).to_contain_text("UNAUTHENTICATED")


async def test_the_app_mounted_under_a_prefix_finds_its_endpoints(pages: Pages) -> None:
    """The ASGI app in a Starlette app at /rt: the page, its files and its calls live there."""
    service = InterplayASGI(
        lambda: Runtime(MemoryBackend(), settings=Settings(rate=0)), web_root=default_web_root()
    )
    app = Starlette(routes=[Mount("/rt", app=service)], lifespan=service.lifespan)
    async with uvicorn_serving(app) as port:
        base = f"http://127.0.0.1:{port}/rt/"
        ann = await pages.open(f"{base}?user=ann&room=lobby")
        bob = await pages.open(f"{base}?user=bob&room=lobby")
        await expect(bob.locator("#chat-status")).to_have_text("connected")
        await say(ann, "mounted")
        await expect(bob.locator("#messages li.message", has_text="mounted")).to_have_count(1)
        for _, log in pages.opened:
            assert log.errors == []
