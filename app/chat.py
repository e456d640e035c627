"""``interplay chat``: a terminal chat on the reconnecting ``ChatClient``.

prompt_toolkit keeps the input line at the bottom while messages print above it
(``patch_stdout``) and draws a status line under it: the connection state, who is typing, the
room, and why the last connection ended while it reconnects. Plain lines go to the current room;
``/join R``, ``/leave [R]``, ``/who``, ``/quit``.

Whatever goes wrong is a line in the conversation, never a traceback: a message the client
refuses at once (too long, a room name over the limit), one the server refuses (a room outside
the token's claims: the refusal's SYSTEM notice; a refused ``/join`` leaves you where you were),
a connection lost (and found again), and a fatal end (``! disconnected: …``, exit code 1).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from html import escape

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
    reason: str = ""  # why the last connection ended, while reconnecting
    typing: dict[tuple[str, str], float] = field(default_factory=dict)  # (room, user) -> until
    previous: str = ""  # the room before a /join, to go back to if the join is refused

    def toolbar(self) -> HTML:
        now = time.monotonic()
        typing = sorted(
            u for (r, u), until in self.typing.items() if r == self.room and until > now
        )
        who = f" · {', '.join(typing)} typing…" if typing else ""
        why = (
            f" · {self.reason}"
            if self.reason and self.state is not ConnectionState.CONNECTED
            else ""
        )
        return HTML(
            f"<b>{self.state.value}</b> · #{escape(self.room)} as {escape(self.user)}"
            f"{escape(who)}{escape(why)}"
        )


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


def failure_line(error: BaseException) -> str:
    """A client's fatal error as one line."""
    status = getattr(error, "status", None)
    name = getattr(status, "name", status)
    message = getattr(error, "message", None) or str(error)
    return f"{name} {message}" if name else message


async def run_chat(
    host: str,
    port: int,
    *,
    room: str,
    user: str,
    token: str | None,
    tls: ssl.SSLContext | None = None,
) -> int:
    screen = ChatScreen(user=user, room=room)
    session: PromptSession[str] = PromptSession(bottom_toolbar=screen.toolbar, refresh_interval=0.5)

    def on_state(state: ConnectionState) -> None:
        was, screen.state = screen.state, state
        failure = chat.last_failure
        if state is ConnectionState.RECONNECTING and failure is not None:
            screen.reason = f"{failure.status}: {failure.message}"
            if was is ConnectionState.CONNECTED:
                print(f"! connection lost ({screen.reason}); reconnecting…", flush=True)
        elif state is ConnectionState.CONNECTED and was is ConnectionState.RECONNECTING:
            print("* reconnected", flush=True)
        session.app.invalidate()

    chat = ChatClient(host, port, user=user, token=token, ssl=tls, on_state=on_state)
    async with chat, anyio.create_task_group() as tasks:
        last_typing = 0.0

        def typed(_: object) -> None:
            nonlocal last_typing
            now = time.monotonic()
            if now - last_typing >= TYPING_EVERY and session.default_buffer.text[:1] != "/":
                last_typing = now
                tasks.start_soon(_typing, chat, screen.room)

        session.default_buffer.on_text_changed += typed
        with patch_stdout(raw=True):
            print(HELP)
            try:
                await chat.join(room)
            except Exception as error:  # refused at once: a room name over the limit
                print(f"! {error}", flush=True)
                return 2
            tasks.start_soon(_show, chat, screen, session)
            code = await _prompt(chat, screen, session)
            tasks.cancel_scope.cancel()
    return 1 if chat.error is not None else code


async def _typing(chat: ChatClient, room: str) -> None:
    """A typing indicator, if we are in ``room`` and connected: never an error of its own."""
    if room in chat.rooms.joined() and chat.error is None:
        try:
            await chat.typing(room)
        except Exception:
            return  # the connection just ended: the indicator would be stale anyway


async def _show(chat: ChatClient, screen: ChatScreen, session: PromptSession[str]) -> None:
    try:
        async for message in chat:
            if message.kind is Kind.TYPING:
                screen.typing[(message.room, message.sender)] = time.monotonic() + TYPING_SHOWN
            else:
                screen.typing.pop((message.room, message.sender), None)
                line = render(message, screen.user)
                if line is not None:
                    print(line, flush=True)
                if message.rejection is not None:
                    _after_refusal(chat, screen)
            session.app.invalidate()
    except Exception as error:  # the fatal end: chat.error
        print(f"! disconnected: {failure_line(error)}", flush=True)
        if session.app.is_running:
            session.app.exit(exception=EOFError())


def _after_refusal(chat: ChatClient, screen: ChatScreen) -> None:
    """A refused /join: back to the room we were in."""
    joined = chat.rooms.joined()
    if screen.room not in joined and joined:
        screen.room = screen.previous if screen.previous in joined else joined[0]


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
                screen.previous, screen.room = screen.room, argument
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
            elif screen.room not in chat.rooms.joined():
                print(f"! you are in no room: /join one first (you left #{screen.room})")
            else:
                await chat.send(screen.room, line)
        except Exception as error:  # refused at once, or the call ended: shown, never fatal
            print(f"! {error}", flush=True)
