"""The official MCP Python SDK client (mcp 1.30.0, its Streamable HTTP transport) against
/mcp, with the bearer header, as agent hosts connect."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import Accounts
from tests.e2e.support import RECV_TIMEOUT, ServerProcess
from tests.http.conftest import mcp_url


@asynccontextmanager
async def sdk_session(
    server: ServerProcess, token: str
) -> AsyncIterator[tuple[ClientSession, types.InitializeResult]]:
    """An initialized SDK ClientSession over Streamable HTTP (it DELETEs the session after)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=300)) as client,
        streamable_http_client(mcp_url(server), http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        initialized = await asyncio.wait_for(session.initialize(), RECV_TIMEOUT)
        yield session, initialized


async def test_the_sdk_lists_and_calls_tools_with_progress(
    served: ServerProcess, accounts: Accounts
) -> None:
    reports: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append(progress)

    async with sdk_session(served, accounts.alice) as (session, initialized):
        assert initialized.protocolVersion == "2025-11-25"
        listed = await session.list_tools()
        assert {"add", "sleep"} <= {tool.name for tool in listed.tools}
        added = await session.call_tool("add", {"a": 20, "b": 22})
        assert added.structuredContent == {"result": 42.0}
        slept = await asyncio.wait_for(
            session.call_tool("sleep", {"seconds": 0.5}, progress_callback=on_progress),
            RECV_TIMEOUT,
        )
        assert not slept.isError
        await session.send_ping()
    assert reports and reports == sorted(reports)
