"""A finished HTTP request and a closed WebSocket connection are freed by reference counting
alone: none of the project's objects is left in a reference cycle for the garbage collector
(whose full collections walk the whole heap: docs/BENCHMARKS.md, "Garbage collection and
memory per connection"). Automatic collection is off while they run; a collection afterwards
keeps what it found unreachable (gc.DEBUG_SAVEALL) for the test to look at."""

import asyncio
import contextlib
import gc
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
import uvicorn
import websockets
from channels.testing import HttpCommunicator

from accounts.services import IssuedToken
from config.asgi import router
from mcp_server.lifespan import RuntimeLifespan
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.protocol.modern import MODERN_VERSION
from mcp_server.uvicorn_websocket import McpHttpToolsProtocol, McpWebSocketProtocol
from tests.support import wait_until
from tests.ws.conftest import TIMEOUT, ws_connect

ROUNDS = 10
PROJECT_PACKAGES = ("mcp_server", "accounts", "config")


@contextmanager
def unreachable_objects(packages: Sequence[str] = PROJECT_PACKAGES) -> Iterator[Counter[str]]:
    """Collect, run the block with automatic collection off, then count by type what a
    collection finds unreachable among objects of types defined in `packages`."""
    found: Counter[str] = Counter()
    gc.collect()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        for garbage in gc.garbage:
            kind = type(garbage)
            if kind.__module__.split(".")[0] in packages:
                found[f"{kind.__module__}.{kind.__qualname__}"] += 1
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _request(request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


ADD = {"name": "add", "arguments": {"a": 1, "b": 2}}
HELLO = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "pytest", "version": "1"},
}


class HttpClient:
    """POSTs to /mcp through the full ASGI stack, as one authenticated client."""

    def __init__(self, runtime: ProcessRuntime, token: str) -> None:
        self.app = RuntimeLifespan(router, runtime=runtime)
        self.token = token
        self.session_id: str | None = None

    async def send(
        self, message: dict[str, Any], *, accept: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> dict[str, Any]:
        """One request and its whole response (status, headers, body)."""
        headers = [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {self.token}".encode()),
            (b"content-type", b"application/json"),
            (b"accept", accept),
            *extra,
        ]
        if self.session_id is not None:
            headers.append((b"mcp-session-id", self.session_id.encode()))
            headers.append((b"mcp-protocol-version", b"2025-11-25"))
        communicator = HttpCommunicator(
            self.app, "POST", "/mcp", body=orjson.dumps(message), headers=headers
        )
        response = await communicator.get_response(timeout=TIMEOUT)
        await communicator.wait(timeout=TIMEOUT)
        return response

    async def initialize(self) -> None:
        """Start a session (its id is sent with every request after)."""
        self.session_id = None
        started = await self.send(_request(0, "initialize", HELLO), accept=b"application/json")
        self.session_id = dict(started["headers"])[b"mcp-session-id"].decode()
        notified = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.send(notified, accept=b"application/json"))["status"] == 202

    async def requests_of_each_kind(self, request_id: int) -> None:
        """A call answered as JSON, one streamed as SSE, a list, and a 2026-07-28 call."""
        both = b"application/json, text/event-stream"
        called = await self.send(_request(request_id, "tools/call", ADD), accept=both)
        assert orjson.loads(called["body"])["result"]["structuredContent"] == {"result": 3}
        streamed = await self.send(
            _request(request_id + 1, "tools/call", ADD), accept=b"text/event-stream"
        )
        assert b'"structuredContent":{"result":3' in streamed["body"]
        listed = await self.send(_request(request_id + 2, "tools/list", {}), accept=both)
        assert listed["status"] == 200
        modern = {
            **ADD,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        }
        mirrored = [
            (b"mcp-method", b"tools/call"),
            (b"mcp-name", b"add"),
            (b"mcp-protocol-version", MODERN_VERSION.encode()),
        ]
        session_id, self.session_id = self.session_id, None
        try:
            stateless = await self.send(
                _request(request_id + 3, "tools/call", modern), accept=both, extra=mirrored
            )
        finally:
            self.session_id = session_id
        assert orjson.loads(stateless["body"])["result"]["structuredContent"] == {"result": 3}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("history")
async def test_http_requests_leave_nothing_of_the_project_in_cycles(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    client = HttpClient(runtime, issued.raw)
    await client.initialize()
    await client.requests_of_each_kind(1)  # first-use caches fill here, not below
    with unreachable_objects() as found:
        await client.initialize()
        for round_number in range(1, ROUNDS + 1):
            await client.requests_of_each_kind(round_number * 10)
    assert found == {}


async def _websocket_conversation(runtime: ProcessRuntime, token: str) -> None:
    async with ws_connect(runtime, f"/mcp?token={token}", subprotocols=["mcp"]) as (
        client,
        (accepted, _),
    ):
        assert accepted
        await client.initialize()
        assert (await client.reply("ping"))["result"] == {}
        await client.reply("logging/setLevel", {"level": "debug"})
        added = await client.reply("tools/call", ADD)
        assert added["result"]["structuredContent"] == {"result": 3}
        echo = {"name": "echo", "arguments": {"text": "hi"}}
        assert "result" in await client.reply("tools/call", echo)
        assert client.notifications  # echo's log came through the session's listener


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("history")
async def test_closed_websocket_sessions_leave_nothing_of_the_project_in_cycles(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    await _websocket_conversation(runtime, issued.raw)
    with unreachable_objects() as found:
        for _ in range(ROUNDS):
            await _websocket_conversation(runtime, issued.raw)
    assert found == {}


async def _accept_then_close(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI application that accepts a WebSocket and closes once it hears a message."""
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    if (await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.close", "code": 1000})


async def test_uvicorn_upgrades_leave_no_protocol_in_cycles() -> None:
    """The HTTP protocol that hands a connection to the WebSocket protocol is let go of
    (mcp_server/uvicorn_websocket.py), as `manage.py serve` configures uvicorn."""
    config = uvicorn.Config(
        _accept_then_close,
        http=McpHttpToolsProtocol,
        ws=McpWebSocketProtocol,
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    url = f"ws://127.0.0.1:{listening.getsockname()[1]}/"
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        await wait_until(lambda: server.started, what="uvicorn to start")

        async def one_connection() -> None:
            async with websockets.connect(url) as client:
                await client.send("bye")
                with contextlib.suppress(websockets.ConnectionClosed):
                    await client.recv()

        async with websockets.connect(url):
            # An open connection keeps nothing of its handshake's response.
            await wait_until(lambda: len(server.server_state.connections) == 1, what="it")
            (protocol,) = server.server_state.connections
            assert isinstance(protocol, McpWebSocketProtocol)
            await wait_until(lambda: protocol.handshake_complete, what="the handshake")
            assert protocol.response is None
        await one_connection()
        with unreachable_objects(("uvicorn", "httptools", *PROJECT_PACKAGES)) as collected:
            for _ in range(ROUNDS):
                await one_connection()
            # The server's side of the last close has run (its protocol is unregistered).
            await wait_until(lambda: not server.server_state.connections, what="the closes")
        assert collected == {}
    finally:
        server.should_exit = True
        await serving
        listening.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("history")
async def test_http_answers_leave_no_generator_for_a_task_to_close(
    runtime: ProcessRuntime, issued: IssuedToken
) -> None:
    """A reader that stopped at the response closed what it read from: a generator left
    suspended is closed by a task of its own (asyncio's finalizer hook), one per request."""
    client = HttpClient(runtime, issued.raw)
    await client.initialize()
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    closers: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if type(coro).__name__ == "async_generator_athrow":
            closers.append(repr(coro))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        await client.requests_of_each_kind(10)
        gc.collect()  # the hook makes its task as the generator is freed, before this returns
    finally:
        loop.set_task_factory(previous)
    assert closers == []
