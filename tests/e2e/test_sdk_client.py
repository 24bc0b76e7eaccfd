"""The official MCP Python SDK client (mcp 1.30.0, WebSocket transport) against the server."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mcp import ClientSession, types
from mcp.client.session import LoggingFnT
from mcp.client.websocket import websocket_client
from mcp.shared.exceptions import McpError

from tests.e2e.conftest import Accounts
from tests.e2e.support import RECV_TIMEOUT, ServerProcess

BUILTIN_TOOLS = {"add", "subtract", "multiply", "divide", "echo"}


@asynccontextmanager
async def sdk_session(
    server: ServerProcess, token: str, logging_callback: LoggingFnT | None = None
) -> AsyncIterator[tuple[ClientSession, types.InitializeResult]]:
    """An initialized SDK ClientSession over `ws://.../mcp?token=...`."""
    async with (
        websocket_client(server.ws_url(token)) as (read_stream, write_stream),
        ClientSession(read_stream, write_stream, logging_callback=logging_callback) as session,
    ):
        initialized = await asyncio.wait_for(session.initialize(), RECV_TIMEOUT)
        yield session, initialized


def only_text(result: types.CallToolResult) -> str:
    """The text of a result that has exactly one content item, a text one."""
    assert len(result.content) == 1, result
    item = result.content[0]
    assert isinstance(item, types.TextContent), result
    return item.text


async def test_initialize_negotiates_latest_version(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with sdk_session(server, accounts.alice) as (_session, initialized):
        assert initialized.protocolVersion == types.LATEST_PROTOCOL_VERSION == "2025-11-25"
        assert initialized.serverInfo.name == "mcp-realtime"
        assert initialized.serverInfo.title == "MCP Realtime"
        assert initialized.serverInfo.version
        assert initialized.capabilities.tools is not None
        assert initialized.capabilities.logging is not None


async def test_list_tools(server: ServerProcess, accounts: Accounts) -> None:
    async with sdk_session(server, accounts.alice) as (session, _):
        listed = await session.list_tools()
    by_name = {tool.name: tool for tool in listed.tools}
    assert set(by_name) >= BUILTIN_TOOLS
    assert listed.nextCursor is None
    add_schema = by_name["add"].inputSchema
    assert add_schema["type"] == "object"
    assert add_schema["properties"]["a"]["type"] == "number"
    assert add_schema["properties"]["b"]["type"] == "number"
    assert set(add_schema["required"]) == {"a", "b"}
    assert by_name["add"].outputSchema is not None
    assert by_name["echo"].inputSchema["properties"]["text"]["type"] == "string"


async def test_call_add_returns_structured_content(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with sdk_session(server, accounts.alice) as (session, _):
        result = await session.call_tool("add", {"a": 1, "b": 2})
    assert not result.isError
    assert result.structuredContent == {"result": 3}
    assert json.loads(only_text(result)) == {"result": 3}


async def test_divide_by_zero_is_an_error_result(server: ServerProcess, accounts: Accounts) -> None:
    async with sdk_session(server, accounts.alice) as (session, _):
        result = await session.call_tool("divide", {"a": 1, "b": 0})
    assert result.isError is True
    text = only_text(result)
    assert "zero" in text.lower()
    assert result.structuredContent is None


async def test_bad_argument_is_an_error_result_naming_it(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with sdk_session(server, accounts.alice) as (session, _):
        result = await session.call_tool("add", {"a": "x", "b": 2})
        missing = await session.call_tool("add", {"a": 1})
    assert result.isError is True
    text = only_text(result)
    assert "add" in text
    assert '"x"' in text
    assert "number" in text
    assert missing.isError is True
    assert '"b"' in only_text(missing)


async def test_unknown_tool_raises_invalid_params(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with sdk_session(server, accounts.alice) as (session, _):
        with pytest.raises(McpError) as raised:
            await session.call_tool("no_such_tool", {})
        # The session is still usable after the error.
        still = await session.call_tool("add", {"a": 2, "b": 2})
    assert raised.value.error.code == types.INVALID_PARAMS == -32602
    assert "no_such_tool" in raised.value.error.message
    assert still.structuredContent == {"result": 4}


async def test_log_messages_follow_the_logging_level(
    server: ServerProcess, accounts: Accounts
) -> None:
    received: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with sdk_session(server, accounts.alice, logging_callback=on_log) as (session, _):
        # At the default level (info), echo's debug message is not sent. The server sends a
        # call's notifications before its response, and the SDK handles them in order.
        quiet = await session.call_tool("echo", {"text": "first"})
        assert only_text(quiet) == "first"
        assert received == []

        await session.set_logging_level("debug")
        loud = await session.call_tool("echo", {"text": "hello"})
        assert only_text(loud) == "hello"

    assert len(received) == 1, received
    message = received[0]
    assert message.level == "debug"
    assert message.logger == "echo"
    assert message.data == "echoing 5 characters"


# mcp 1.x marks its tasks API deprecated: the 2026-07-28 revision moved tasks out of the core
# specification (an extension to come). 2025-11-25, which clients speak today, has them.
@pytest.mark.filterwarnings("ignore:The experimental tasks API:DeprecationWarning")
async def test_durable_task_through_the_sdk_experimental_tasks_api(
    server: ServerProcess, accounts: Accounts
) -> None:
    """The SDK's own task calls parse what the server sends (CreateTaskResult, Task, results)."""
    async with sdk_session(server, accounts.alice) as (session, initialized):
        assert initialized.capabilities.tasks is not None
        assert initialized.capabilities.tasks.requests is not None
        tasks = session.experimental
        created = await tasks.call_tool_as_task(
            "process_batch", {"count": 30, "item_ms": 1}, ttl=120_000
        )
        assert created.task.status == "working"
        assert created.task.ttl == 120_000
        result = await asyncio.wait_for(
            tasks.get_task_result(created.task.taskId, types.CallToolResult), RECV_TIMEOUT
        )
        assert result.structuredContent is not None
        assert result.structuredContent["processed"] == 30
        got = await tasks.get_task(created.task.taskId)
        assert got.status == "completed"
        listed = await tasks.list_tasks()
        assert created.task.taskId in [task.taskId for task in listed.tasks]
        with pytest.raises(McpError) as ended:
            await tasks.cancel_task(created.task.taskId)
        assert ended.value.error.code == types.INVALID_PARAMS
