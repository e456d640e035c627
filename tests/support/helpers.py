"""Shared test helpers: a raw grpclib chat client and small builders."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality
from grpclib.exceptions import StreamTerminatedError
from grpclib.server import Server

from interplay.backends import MemoryBackend
from interplay.core import DocumentHub, MatchHub, RoomHub
from interplay.runtime import AdminAuthenticator, Authenticator, Backend, Runtime, Settings
from interplay.testing.transport.calls import T, msg
from interplay.transports.grpc.codec import WireCodec
from interplay.transports.grpc.generated.chat import ChatMessage
from interplay.transports.grpc.server import ServerSettings, build_server, drain
from interplay.transports.grpc.service import ChatService


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds: for server counters, which have no event to wait on."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 (polling is the point)
            await anyio.sleep(0.005)


class ChatClient:
    """One Chat call, driven through grpclib's raw stream (betterproto2#182 affects the stub)."""

    def __init__(self, stream: Stream[ChatMessage, ChatMessage]) -> None:
        self.stream = stream

    async def send(self, message: ChatMessage) -> None:
        await self.stream.send_message(message)

    async def join(self, user: str, room: str = "lobby", **fields: Any) -> None:
        await self.send(msg(T.JOIN, room, sender_id=user, **fields))

    async def text(self, content: str, room: str = "lobby", **fields: Any) -> None:
        await self.send(msg(T.TEXT, room, content=content, **fields))

    async def recv(self, timeout: float = 5.0) -> ChatMessage | None:
        """The next message; None at the end; GRPCError when the server ended with a status."""
        with anyio.fail_after(timeout):
            try:
                message = await self.stream.recv_message()
                if message is None:
                    self.stream._maybe_raise()  # error trailers with no reset after them
                return message
            except StreamTerminatedError:
                # grpclib's client: the server's RST_STREAM after error trailers cancels a
                # pending read; the trailers themselves arrived first and carry the status.
                self.stream._maybe_raise()
                raise

    async def recv_n(self, n: int, timeout: float = 5.0) -> list[ChatMessage]:
        out = []
        for _ in range(n):
            message = await self.recv(timeout)
            assert message is not None, f"stream ended after {len(out)} of {n} messages"
            out.append(message)
        return out

    async def recv_until(self, predicate: Any, timeout: float = 5.0) -> list[ChatMessage]:
        """Messages up to and including the first that satisfies ``predicate``."""
        out = []
        while True:
            message = await self.recv(timeout)
            assert message is not None, f"stream ended; got {out}"
            out.append(message)
            if predicate(message):
                return out


class _GoAway(Exception):
    """Leaving a call without ending it: grpclib then resets the stream, as a vanishing client."""


@asynccontextmanager
async def open_call(
    channel: Channel, path: str, request: type, reply: type, **kwargs: Any
) -> AsyncIterator[Stream[Any, Any]]:
    """A bidi call; leaving the block without ``stream.end()`` resets it (a broken client)."""
    try:
        async with channel.request(
            path, Cardinality.STREAM_STREAM, request, reply, **kwargs
        ) as stream:
            await stream.send_request()
            yield stream
            if not stream._end_done:
                raise _GoAway
    except _GoAway:
        pass


@asynccontextmanager
async def chat_call(channel: Channel, **kwargs: Any) -> AsyncIterator[ChatClient]:
    async with open_call(
        channel, "/chat.ChatService/Chat", ChatMessage, ChatMessage, **kwargs
    ) as stream:
        yield ChatClient(stream)


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (for servers whose port 0 means "off")."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def interplay_serve(data: Path, *extra: str) -> Iterator[int]:
    with interplay_process(data, *extra) as (port, _):
        yield port


class ServerLines:
    """A server subprocess's stdout, read line by line by a thread, so that every wait for a
    line has a deadline: a blocking ``readline`` would hang the suite if the server (or one of
    its ``--workers``) never printed, or a forked worker kept the pipe open after the parent."""

    def __init__(self, stream: Any) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")  # end of the output

    def next(self, timeout: float = 30) -> str:
        """The next line; "" once the output has ended. AssertionError after ``timeout``."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the server printed no line within {timeout} s") from None
        if not line:
            self._lines.put("")  # stays ended
        return line


@contextmanager
def interplay_process(
    data: Path, *extra: str, killed: bool = False
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """``interplay serve`` in a subprocess on a free port (or ``--port P`` in ``extra``);
    SIGTERM at the end, exit code 0 (unless the test ``killed`` it). Its stdout lines are
    ``process.lines`` (a ``ServerLines``); its stderr goes to a file, read only in failures,
    so that neither pipe can fill up or block a read. It runs in its own process group, killed
    at the end: a forked worker never outlives its test."""
    exe = shutil.which("interplay") or str(Path(sys.executable).parent / "interplay")
    websocket = () if "--ws-port" in extra else ("--ws-port", "0")  # none unless asked for
    argv = [exe, "serve", "--port", "0", "--data", str(data), "--log-level", "WARNING"]
    with (
        tempfile.TemporaryFile("w+") as stderr,
        subprocess.Popen(
            [*argv, *websocket, *extra],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        ) as process,
    ):

        def said() -> str:
            stderr.seek(0)
            return f"stderr: {stderr.read()}"

        lines = ServerLines(process.stdout)
        process.lines = lines  # type: ignore[attr-defined]
        try:
            line = lines.next()
            match = re.search(r"serving chat.ChatService on 127\.0\.0\.1:(\d+)", line)
            assert match, f"first line {line!r}; {said()}"
            # Up to the ready line (its signal handlers are set: a SIGTERM before it would kill
            # it); the lines before it stay readable as ``process.startup``.
            startup = [line]
            while not line.startswith("interplay: ready"):
                line = lines.next()
                assert line, f"no ready line; {said()}"
                startup.append(line)
            process.startup = startup  # type: ignore[attr-defined]
            yield int(match.group(1)), process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=20)
            except subprocess.TimeoutExpired as expired:
                process.kill()
                raise AssertionError(f"no exit within 20 s of SIGTERM; {said()}") from expired
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # what it forked, if still there
        assert killed or code == 0, said()


PROTOS = Path(__file__).resolve().parents[2] / "protos"


def generate_grpcio_stubs(out: Path) -> tuple[Any, Any]:
    """Google's generated ``chat_pb2`` and ``chat_pb2_grpc`` for protos/chat.proto, made by
    grpcio-tools' protoc in ``out`` (never committed) and imported by their top-level names."""
    proto = PROTOS / "chat.proto"
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"--python_out={out}"]
    subprocess.run([*command, f"--grpc_python_out={out}", str(proto)], check=True, timeout=60)
    sys.path.insert(0, str(out))
    try:
        import chat_pb2  # type: ignore[import-not-found]
        import chat_pb2_grpc  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(out))
    return chat_pb2, chat_pb2_grpc


@dataclass(frozen=True)
class Served:
    server: Server
    service: ChatService
    port: int


@asynccontextmanager
async def runtime_for(
    *,
    settings: Settings | None = None,
    backend: Backend | None = None,
    rooms: RoomHub | None = None,
    documents: DocumentHub | None = None,
    games: MatchHub | None = None,
    auth: Authenticator | None = None,
    admin: AdminAuthenticator | None = None,
) -> AsyncIterator[Runtime]:
    """A running ``Runtime`` over a MemoryBackend (or ``backend``), no chat rate limit unless
    ``settings`` say otherwise."""
    async with Runtime(
        backend if backend is not None else MemoryBackend(),
        rooms=rooms,
        documents=documents,
        games=games,
        settings=settings or Settings(rate=0),
        auth=auth,
        admin=admin,
    ) as runtime:
        yield runtime


@asynccontextmanager
async def channel_for(**runtime: Any) -> AsyncIterator[tuple[ChatService, Channel]]:
    """The service over grpclib's in-memory channel (``ChannelFor``); ``runtime_for``'s
    arguments."""
    from grpclib.testing import ChannelFor

    async with runtime_for(**runtime) as running:
        service = ChatService(running)
        async with ChannelFor([service], codec=WireCodec()) as channel:
            yield service, channel


@asynccontextmanager
async def tcp_server(
    server_settings: ServerSettings | None = None, /, **runtime: Any
) -> AsyncIterator[Served]:
    """``build_server`` on a free TCP port in this process, over ``runtime_for(**runtime)``.
    Drained at the end, which closes every connection before the loop ends (grpclib's close()
    leaves them open, and a transport outliving its loop is a warning)."""
    async with runtime_for(**runtime) as running:
        settings = server_settings or ServerSettings(port=0)
        server, service = build_server(running, settings)
        await server.start("127.0.0.1", 0, ssl=settings.tls)
        assert server._server is not None
        try:
            yield Served(server, service, server._server.sockets[0].getsockname()[1])
        finally:
            await drain(server, service, 5)


@dataclass(frozen=True)
class WebSocketServed:
    server: Any  # websockets' Server
    service: Any  # WebSocketService
    port: int

    @property
    def runtime(self) -> Runtime:
        return self.service.runtime  # type: ignore[no-any-return]

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def websocket_server(
    ws_settings: Any = None, /, *, runtime: Runtime | None = None, **options: Any
) -> AsyncIterator[WebSocketServed]:
    """The WebSocket server on a free port in this process, over ``runtime`` or
    ``runtime_for(**options)``; drained at the end."""
    from interplay.transports.websocket import WebSocketSettings, drain, start

    settings = ws_settings or WebSocketSettings(port=0)
    async with contextlib.AsyncExitStack() as stack:
        if runtime is None:
            runtime = await stack.enter_async_context(runtime_for(**options))
        server, service = await start(runtime, settings)
        try:
            yield WebSocketServed(server, service, server.server.sockets[0].getsockname()[1])
        finally:
            await drain(server, service, 5)


@asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[int]:
    """An ASGI ``app`` served by uvicorn in this loop on a free port, with its lifespan."""
    import asyncio

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done(), timeout=10)
        assert server.started, task.exception() if task.done() else "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
