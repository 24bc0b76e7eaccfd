import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts.services import IssuedToken
from config.asgi import router
from mcp_server.cluster.database import close_database_connections
from mcp_server.lifespan import RuntimeLifespan
from mcp_server.process_runtime import ProcessRuntime, build_runtime, install_runtime
from mcp_server.runtime.history import HistoryWriter
from tests.accounts.factories import member_token

# Generous: a slow CI machine must not turn a late frame into a failure.
TIMEOUT = 5

Headers = list[tuple[bytes, bytes]]


class Client:
    """A WebsocketCommunicator with JSON-RPC shortcuts."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []

    async def send(self, message: Any) -> None:
        await self.ws.send_json_to(message)

    async def receive(self) -> Any:
        return await self.ws.receive_json_from(timeout=TIMEOUT)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a request and return the next frame (its response or a notification)."""
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.receive()

    async def reply(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its response; notifications before it are kept aside."""
        self._next_id += 1
        request_id = self._next_id
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = await self.receive()
            if message.get("id") == request_id and "method" not in message:
                return dict(message)
            self.notifications.append(message)

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        reply = await self.request(
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "pytest", "version": "1"},
            },
        )
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        result = reply["result"]
        assert isinstance(result, dict)
        return result

    async def closed_with(self) -> tuple[int, str]:
        """Wait for the server to close the socket; its code and reason."""
        message = await self.ws.receive_output(timeout=TIMEOUT)
        assert message["type"] == "websocket.close", message
        return message.get("code", 1000), message.get("reason", "")


@asynccontextmanager
async def ws_connect(
    runtime: ProcessRuntime,
    path: str = "/mcp",
    *,
    headers: Headers | None = None,
    subprotocols: list[str] | None = None,
) -> AsyncIterator[tuple[Client, tuple[bool, Any]]]:
    """Open a WebSocket on the full ASGI stack served with `runtime`; always disconnects at
    the end."""
    communicator = WebsocketCommunicator(
        RuntimeLifespan(router, runtime=runtime),
        path,
        headers=headers or [],
        subprotocols=subprotocols,
    )
    outcome = await communicator.connect(timeout=TIMEOUT)
    try:
        yield Client(communicator), outcome
    finally:
        await communicator.disconnect(timeout=TIMEOUT)


@pytest.fixture(autouse=True)
async def _close_worker_connections() -> AsyncIterator[None]:
    """Close the connections the consumer's database thread opened (CONN_MAX_AGE keeps them).

    Left open, they keep PostgreSQL from dropping the test database at the end of the run.
    """
    yield
    await sync_to_async(connections.close_all)()
    await asyncio.to_thread(close_database_connections)


@pytest.fixture
def history() -> HistoryWriter:
    """The test's own history writer (the runtime's)."""
    return HistoryWriter(interval=0.05)


@asynccontextmanager
async def serving(history: HistoryWriter) -> AsyncIterator[ProcessRuntime]:
    """A process runtime built from settings as they are now, started as the lifespan would
    and installed for the code Django calls into. At the end the tasks a test left running
    (tasks outlive connections) are interrupted and history is flushed."""
    built = build_runtime(web=True, writer=history)
    await built.start()
    previous = install_runtime(built)
    try:
        yield built
    finally:
        await built.bus.interrupt_all()
        await built.stop()
        await asyncio.to_thread(history.stop)
        install_runtime(previous)


@pytest.fixture
async def runtime(
    transactional_db: None, _close_worker_connections: None, history: HistoryWriter
) -> AsyncIterator[ProcessRuntime]:
    """This test's process runtime (see `serving`), stopped before the database is cleaned."""
    async with serving(history) as built:
        yield built


@pytest.fixture
def issued(transactional_db: None) -> IssuedToken:
    """A member of tenant `acme` and a token of theirs."""
    return member_token("alice", tenant_slug="acme")


@pytest.fixture
def token_path(issued: IssuedToken) -> Callable[..., str]:
    def path(prefix: str = "/mcp") -> str:
        return f"{prefix}?token={issued.raw}"

    return path
