"""Our WebSocket client speaking 2026-07-28 to a real server: no initialize, discover, list,
a call with progress, logs only when a request asks, and closing the socket cancels what its
requests still run."""

import asyncio
from typing import Any

import pytest

from mcp_server.client.session import ConnectionLost, McpConnection, RpcError
from mcp_server.client.wire import MODERN_VERSION
from tests.e2e.conftest import Accounts
from tests.e2e.history import wait_for_operation
from tests.e2e.support import Deployment, ServerProcess

CALL_TIMEOUT = 30.0


class Notifications:
    """What the server sent besides responses, with a way to wait for one."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def __call__(self, method: str, params: dict[str, Any]) -> None:
        self.seen.append((method, params))
        self._changed.set()

    def of(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.seen if name == method]

    async def wait_for(self, method: str) -> dict[str, Any]:
        async def first() -> dict[str, Any]:
            while not self.of(method):
                self._changed.clear()
                await self._changed.wait()
            return self.of(method)[0]

        return await asyncio.wait_for(first(), CALL_TIMEOUT)


async def test_discover_list_call_with_progress_and_logs_per_request(
    server: ServerProcess, accounts: Accounts
) -> None:
    heard = Notifications()
    connection = await McpConnection.open(
        server.ws_url(), token=accounts.alice, on_notification=heard, modern=True
    )
    try:
        assert connection.modern and connection.protocol_version == MODERN_VERSION
        assert connection.server_info["name"] == "mcp-realtime"
        assert connection.discovered["supportedVersions"] == [MODERN_VERSION]

        listed = await connection.request("tools/list")
        assert {"echo", "process_batch"} <= {tool["name"] for tool in listed["tools"]}
        assert listed["resultType"] == "complete"

        params = {
            "name": "process_batch",
            "arguments": {"count": 10, "item_ms": 5},
            "_meta": {"progressToken": "batch"},
        }
        batch = await asyncio.wait_for(connection.request("tools/call", params), CALL_TIMEOUT)
        assert batch["structuredContent"]["processed"] == 10
        progress = heard.of("notifications/progress")
        assert progress and {report["progressToken"] for report in progress} == {"batch"}

        # echo logs at debug: only the request asking for debug gets it.
        echo = {"name": "echo", "arguments": {"text": "hi"}}
        await connection.request("tools/call", echo)
        await connection.request("tools/call", echo, log_level="info")
        assert heard.of("notifications/message") == []
        await connection.request("tools/call", echo, log_level="debug")
        assert [m["data"] for m in heard.of("notifications/message")] == ["echoing 2 characters"]

        with pytest.raises(RpcError) as removed:
            await connection.request("ping")
        assert removed.value.code == -32601
    finally:
        await connection.close()


async def test_closing_the_socket_cancels_its_modern_calls(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    heard = Notifications()
    connection = await McpConnection.open(
        server.ws_url(), token=accounts.alice, on_notification=heard, modern=True
    )
    params = {"name": "sleep", "arguments": {"seconds": 60}, "_meta": {"progressToken": "s"}}
    call = asyncio.ensure_future(
        connection.request("tools/call", params, request_id="modern-orphan")
    )
    try:
        await heard.wait_for("notifications/progress")
    finally:
        await connection.close()
    row = wait_for_operation(
        deployment,
        "the modern call to be cancelled",
        request_id="modern-orphan",
        status="cancelled",
    )
    assert row["tool"] == "sleep"
    with pytest.raises(ConnectionLost):
        await call
