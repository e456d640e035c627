"""``interplay chat``: a terminal chat on the reconnecting ``ChatClient``.

prompt_toolkit keeps the input line at the bottom while messages print above it
(``patch_stdout``) and draws a status line under it: the connection state, who is typing, the
room. Plain lines go to the current room; ``/join R``, ``/leave [R]``, ``/who``, ``/quit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import HTML
from prompt_toolkit.patch_stdout import patch_stdout

from interplay.core import Kind, RoomMessage
from interplay.transports.grpc.client import ChatClient, ConnectionState

HELP = "commands: /join ROOM, /leave [ROOM], /who, /quit; anything else is said in the room"
TYPING_SHOWN = 3.0  # seconds a typing indicator stays in the status line
TYPING_EVERY = 2.0  # seconds between our own TYPING messages while we type


@dataclass
class ChatScreen:
    """What the status line shows; updated by the receiving task, read by the prompt."""

    user: str
    room: str
    state: ConnectionState = ConnectionState.CONNECTING
    typing: dict[tuple[str, str], float] = field(default_factory=dict)  # (room, user) -> until

    def toolbar(self) -> HTML:
        now = time.monotonic()
        typing = sorted(
            u for (r, u), until in self.typing.items() if r == self.room and until > now
        )
        who = f" · {', '.join(typing)} typing…" if typing else ""
        return HTML(f"<b>{self.state.value}</b> · #{self.room} as {self.user}{who}")


def render(message: RoomMessage, me: str) -> str | None:
    """One line for the scrollback, or None for what only moves the status line."""
    stamp = time.strftime("%H:%M", time.localtime(message.timestamp / 1000 or time.time()))
    if message.kind is Kind.TEXT:
        return f"{stamp} #{message.room} {message.sender}: {message.content}"
    if message.kind is Kind.JOIN:
        return (
            None if message.sender == me else f"{stamp} #{message.room} * {message.sender} joined"
        )
    if message.kind is Kind.LEAVE:
        return f"{stamp} #{message.room} * {message.sender} left"
    if message.kind is Kind.SYSTEM:
        return f"{stamp} #{message.room} ! {message.content}"
    return None


async def run_chat(host: str, port: int, *, room: str, user: str, token: str | None) -> int:
    screen = ChatScreen(user=user, room=room)
    session: PromptSession[str] = PromptSession(bottom_toolbar=screen.toolbar, refresh_interval=0.5)

    def on_state(state: ConnectionState) -> None:
        screen.state = state
        session.app.invalidate()

    async with (
        ChatClient(host, port, user=user, token=token, on_state=on_state) as chat,
        anyio.create_task_group() as tasks,
    ):
        last_typing = 0.0

        def typed(_: object) -> None:
            nonlocal last_typing
            now = time.monotonic()
            if now - last_typing >= TYPING_EVERY and session.default_buffer.text[:1] != "/":
                last_typing = now
                tasks.start_soon(chat.typing, screen.room)

        session.default_buffer.on_text_changed += typed
        await chat.join(room)
        with patch_stdout(raw=True):
            print(HELP)
            tasks.start_soon(_show, chat, screen, session)
            code = await _prompt(chat, screen, session)
            tasks.cancel_scope.cancel()
    return code


async def _show(chat: ChatClient, screen: ChatScreen, session: PromptSession[str]) -> None:
    async for message in chat:
        if message.kind is Kind.TYPING:
            screen.typing[(message.room, message.sender)] = time.monotonic() + TYPING_SHOWN
        else:
            screen.typing.pop((message.room, message.sender), None)
            line = render(message, screen.user)
            if line is not None:
                print(line, flush=True)
        session.app.invalidate()
    if chat.error is not None:
        print(f"! disconnected: {chat.error.status.name} {chat.error.message}", flush=True)


async def _prompt(chat: ChatClient, screen: ChatScreen, session: PromptSession[str]) -> int:
    while True:
        try:
            line = (await session.prompt_async(lambda: f"#{screen.room}> ")).strip()
        except (EOFError, KeyboardInterrupt):
            return 0
        if not line:
            continue
        command, _, argument = line.partition(" ")
        argument = argument.strip()
        try:
            if command == "/quit":
                return 0
            if command == "/join" and argument:
                await chat.join(argument)
                screen.room = argument
            elif command == "/leave":
                left = argument or screen.room
                await chat.leave(left)
                print(f"* you left #{left}", flush=True)
                others = sorted(r for r in chat.rooms.joined() if r != left)
                if left == screen.room and others:
                    screen.room = others[0]
            elif command == "/who":
                print(f"#{screen.room}: {', '.join(sorted(chat.members(screen.room)))}")
            elif command.startswith("/"):
                print(HELP)
            else:
                await chat.send(screen.room, line)
        except Exception as error:  # a refused command is shown, never fatal to the UI
            print(f"! {error}", flush=True)
