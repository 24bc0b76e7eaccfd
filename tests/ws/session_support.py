"""An McpSession wired to a private tool registry and an outbox, without sockets or a database."""

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID

from accounts.principal import Principal
from mcp_server.cluster.bus import OperationBus
from mcp_server.executors import LocalExecutor
from mcp_server.identity import ServerIdentity
from mcp_server.listens import ListenCounts
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.limits import FairScheduler, Limits
from mcp_server.runtime.runner import OperationRunner
from mcp_server.session import McpSession
from mcp_server.tools.catalog import ToolCatalog
from mcp_server.tools.registry import ToolRegistry

TIMEOUT = 5

PRINCIPAL = Principal(
    user_id=1,
    username="alice",
    tenant_id=1,
    tenant_slug="acme",
    is_tenant_admin=False,
    enabled_tools=None,
    token_id=1,
)


class DiscardingHistory:
    """A history writer that keeps nothing: these tests are about the session."""

    def keeps(self, operation_id: UUID) -> bool:
        """Every operation's states come here."""
        return True

    def record(self, snapshot: dict[str, Any]) -> None:
        """Drop an operation snapshot."""

    def record_errors(self, rows: list[dict[str, Any]]) -> None:
        """Drop item errors."""


class Outbox:
    """The session's `send`: keeps every outgoing message and lets a test wait for one."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Any], bool]) -> Any:
        """The first message (already sent or still to come) that satisfies `predicate`."""

        async def scan() -> Any:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout=TIMEOUT)

    async def response(self, request_id: Any) -> dict[str, Any]:
        """The response to request `request_id`."""
        found = await self.wait_for(lambda message: is_response(message, request_id))
        assert isinstance(found, dict)
        return found

    def responses(self, request_id: Any) -> list[dict[str, Any]]:
        """Every response to `request_id` sent so far."""
        return [message for message in self.messages if is_response(message, request_id)]


def is_response(message: Any, request_id: Any) -> bool:
    """Whether `message` is a single response to `request_id`."""
    return (
        isinstance(message, dict)
        and "method" not in message
        and type(message.get("id")) is type(request_id)
        and message.get("id") == request_id
    )


def local_executor(runner: OperationRunner) -> LocalExecutor:
    """Runs calls with `runner` in this process, with no channel layer (no tasks)."""
    return LocalExecutor(runner=runner, bus=OperationBus(runner=runner, layer=None, web=True))


def make_session(
    registry: ToolRegistry,
    *,
    page_size: int = 50,
    limits: Limits | None = None,
    client_request_timeout: float = TIMEOUT,
    client_requests_per_connection: int = 16,
    listen_counts: ListenCounts | None = None,
    **identity: Any,
) -> tuple[McpSession, Outbox]:
    """A session whose catalog is every tool of `registry`, its calls run under `limits`
    (`identity`: other ServerIdentity fields, e.g. listen bounds)."""
    outbox = Outbox()
    runner = OperationRunner(
        scheduler=FairScheduler(limits or Limits()),
        writer=DiscardingHistory(),  # type: ignore[arg-type]
        progress_rate=10.0,
        persist_interval=60.0,
    )
    session = McpSession(
        principal=PRINCIPAL,
        catalog=ToolCatalog(tuple(registry)),
        identity=ServerIdentity(
            name="test-server",
            title="Test",
            version="0.0.1",
            tools_page_size=page_size,
            client_request_timeout=client_request_timeout,
            client_requests_per_connection=client_requests_per_connection,
            **identity,
        ),
        executor=local_executor(runner),
        admission=runner.admission,
        connection_id="test-connection",
        send=outbox,
        listen_counts=listen_counts,
    )
    return session, outbox


def request(request_id: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-RPC request."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-RPC notification."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def call(request_id: Any, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tools/call request."""
    return request(request_id, "tools/call", {"name": name, "arguments": arguments or {}})


async def initialize(
    session: McpSession,
    outbox: Outbox,
    version: str = "2025-11-25",
    capabilities: dict[str, Any] | None = None,
) -> None:
    """Run the handshake, the client declaring `capabilities` (none by default)."""
    params = {"protocolVersion": version, "capabilities": capabilities or {}}
    await session.receive(request("init", "initialize", params))
    reply = await outbox.response("init")
    assert "result" in reply, reply
    await session.receive(notification("notifications/initialized"))


class SlowTool:
    """A tool that runs until released, recording how it ended: `slow(ctx)`, or `held()`
    without a context (a short tool that can send nothing before its reply)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None
        self.calls = 0
        self.cancelled = 0
        self.finished = 0

    async def slow(self, ctx: ToolContext) -> str:
        """Wait until the test releases it."""
        return await self.held()

    async def held(self) -> str:
        """Wait until the test releases it (in the task it runs in)."""
        self.task = asyncio.current_task()
        self.calls += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return "released"

    async def wait_started(self, calls: int = 1) -> None:
        """Wait until `calls` calls have started."""

        async def enough() -> None:
            while self.calls < calls:
                self.started.clear()
                await self.started.wait()

        await asyncio.wait_for(enough(), timeout=TIMEOUT)
