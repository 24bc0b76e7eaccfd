"""Durable tasks, heartbeat, broadcasts and goodbyes on one process (inline execution)."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from pytest_django.fixtures import Settings

from mcp_server.cluster.session_messages import WEB_GROUP, Broadcast
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.runtime.history import HistoryWriter
from tests.ws.conftest import TIMEOUT, Client, serving, ws_connect

pytestmark = pytest.mark.django_db(transaction=True)

RELATED = "io.modelcontextprotocol/related-task"
LONG = {"count": 100_000, "item_ms": 5}


async def _until(client: Client, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        message = await client.receive()
        if predicate(message):
            return dict(message)


def _response(request_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("id") == request_id and "method" not in m


async def _send(client: Client, method: str, params: dict[str, Any]) -> int:
    client._next_id += 1
    await client.send({"jsonrpc": "2.0", "id": client._next_id, "method": method, "params": params})
    return client._next_id


async def _start_task(
    client: Client, arguments: dict[str, Any], token: str | int | None = None
) -> str:
    params: dict[str, Any] = {
        "name": "process_batch",
        "arguments": arguments,
        "task": {"ttl": 5000},
    }
    if token is not None:
        params["_meta"] = {"progressToken": token}
    response = await _until(client, _response(await _send(client, "tools/call", params)))
    task = response["result"]["task"]
    assert task["status"] == "working"
    assert task["ttl"] == 5000
    return str(task["taskId"])


async def test_capability_and_tool_task_support(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        result = await client.initialize()
        assert result["capabilities"]["tasks"] == {
            "list": {},
            "cancel": {},
            "requests": {"tools": {"call": {}}},
        }
        tools = (await client.request("tools/list"))["result"]["tools"]
        support = {t["name"]: t["execution"]["taskSupport"] for t in tools}
        assert support["process_batch"] == support["process_images"] == "optional"
        assert support["add"] == "forbidden"


async def test_task_runs_reports_and_answers(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        task_id = await _start_task(client, {"count": 20, "item_ms": 1}, token="tok")
        status = await _until(client, lambda m: m.get("method") == "notifications/tasks/status")
        assert status["params"]["taskId"] == task_id
        assert status["params"]["status"] == "completed"
        assert "pollInterval" not in status["params"]
        got = (await client.request("tasks/get", {"taskId": task_id}))["result"]
        assert got["status"] == "completed"
        result = (await client.request("tasks/result", {"taskId": task_id}))["result"]
        assert result["structuredContent"]["processed"] == 20
        assert result["_meta"][RELATED] == {"taskId": task_id}


async def test_progress_names_the_task(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        task_id = await _start_task(client, {"count": 50, "item_ms": 2}, token=7)
        progress = await _until(client, lambda m: m.get("method") == "notifications/progress")
        assert progress["params"]["progressToken"] == 7
        assert progress["params"]["_meta"][RELATED] == {"taskId": task_id}


async def test_task_outlives_its_connection(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        task_id = await _start_task(client, {"count": 200, "item_ms": 2})
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        request_id = await _send(
            client, "tasks/result", {"taskId": task_id, "_meta": {"progressToken": "new"}}
        )
        response = await _until(client, _response(request_id))
        assert response["result"]["structuredContent"]["processed"] == 200


async def test_cancel_is_immediate_and_sticky(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        task_id = await _start_task(client, LONG, token="p")
        await _until(client, lambda m: m.get("method") == "notifications/progress")
        request_id = await _send(client, "tasks/cancel", {"taskId": task_id})
        cancelled = await _until(client, _response(request_id))
        assert cancelled["result"]["status"] == "cancelled"
        assert cancelled["result"]["statusMessage"] == "The task was cancelled."
        again = await _until(
            client, _response(await _send(client, "tasks/cancel", {"taskId": task_id}))
        )
        assert again["error"]["code"] == -32602
        outcome = await _until(
            client, _response(await _send(client, "tasks/result", {"taskId": task_id}))
        )
        assert outcome["error"]["data"] == {
            "status": "cancelled",
            "taskStatus": "cancelled",
            "operationId": task_id,
            "taskId": task_id,
        }


async def test_tasks_list_pages_newest_first(
    token_path: Callable[..., str], settings: Settings, history: HistoryWriter
) -> None:
    settings.MCP_TASKS_PAGE_SIZE = 2
    async with serving(history) as runtime, ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        ids = [await _start_task(client, {"count": 1, "item_ms": 0}) for _ in range(3)]
        first = await _until(client, _response(await _send(client, "tasks/list", {})))
        page = first["result"]
        assert [t["taskId"] for t in page["tasks"]] == ids[::-1][:2]
        second = await _until(
            client, _response(await _send(client, "tasks/list", {"cursor": page["nextCursor"]}))
        )
        assert [t["taskId"] for t in second["result"]["tasks"]] == ids[:1]
        assert "nextCursor" not in second["result"]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tasks/get", {}),
        ("tasks/get", {"taskId": 5}),
        ("tasks/get", {"taskId": "not-a-uuid"}),
        ("tasks/result", {"taskId": "01a201d3-1a26-71f7-a8f4-dbd2cea8d816"}),
        ("tasks/cancel", {"taskId": ""}),
        ("tasks/list", {"cursor": "bogus"}),
        ("tasks/list", {"cursor": 3}),
        ("tools/call", {"name": "process_batch", "arguments": {"count": 1}, "task": 5}),
        ("tools/call", {"name": "process_batch", "arguments": {"count": 1}, "task": {"ttl": -1}}),
        ("tools/call", {"name": "process_batch", "arguments": {"count": 1}, "task": {"ttl": "x"}}),
    ],
)
async def test_bad_task_requests_are_invalid_params(
    runtime: ProcessRuntime, token_path: Callable[..., str], method: str, params: dict[str, Any]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        reply = await client.request(method, params)
        assert reply["error"]["code"] == -32602, reply
        assert await client.request("ping") == {"jsonrpc": "2.0", "id": 3, "result": {}}


async def test_forbidden_task_support_is_method_not_found(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        reply = await client.request(
            "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "task": {}}
        )
        assert reply["error"]["code"] == -32601
        assert "does not support tasks" in reply["error"]["message"]


async def test_idle_connection_is_pinged_and_closed_when_silent(
    token_path: Callable[..., str], settings: Settings, history: HistoryWriter
) -> None:
    settings.MCP_CLIENT_PING_INTERVAL = 0.2
    settings.MCP_CLIENT_PING_TIMEOUT = 0.3
    async with serving(history) as runtime, ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        ping = await client.receive()
        assert ping == {"jsonrpc": "2.0", "id": "server-ping-1", "method": "ping"}
        await client.send({"jsonrpc": "2.0", "id": ping["id"], "result": {}})
        second = await client.receive()
        assert second["id"] == "server-ping-2"
        # No answer this time: the server gives up and says why.
        code, reason = await client.closed_with()
        assert code == 4408
        assert reason == "no reply to ping within 0.3 s"


async def test_client_pings_are_answered_while_a_call_runs(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        await _send(client, "tools/call", {"name": "process_batch", "arguments": LONG})
        ping_id = await _send(client, "ping", {})
        assert await _until(client, _response(ping_id)) == {
            "jsonrpc": "2.0",
            "id": ping_id,
            "result": {},
        }


async def test_broadcast_reaches_matching_connections(
    runtime: ProcessRuntime, token_path: Callable[..., str], issued: Any
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        layer = get_channel_layer()
        tenant_id = await sync_to_async(lambda: issued.token.user.membership.tenant_id)()
        await layer.group_send(
            WEB_GROUP, Broadcast(level="warning", data="other tenant", tenant_id=-1).encode()
        )
        await layer.group_send(
            WEB_GROUP, Broadcast(level="warning", data="yours", tenant_id=tenant_id).encode()
        )
        message = await client.receive()
        assert message == {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "warning", "data": "yours", "logger": "broadcast"},
        }


async def test_shutdown_says_goodbye_and_interrupts_inline_tasks(
    runtime: ProcessRuntime,
    token_path: Callable[..., str],
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        task_id = await _start_task(client, LONG, token="s")
        await _until(client, lambda m: m.get("method") == "notifications/progress")
        await asyncio.wait_for(runtime.shut_down_web(), TIMEOUT)
        notice = await _until(client, lambda m: m.get("method") == "notifications/message")
        assert notice["params"]["data"]["reason"] == "shutdown"
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()
        got = (await client.request("tasks/get", {"taskId": task_id}))["result"]
        assert got["status"] == "failed"
        assert "shut down" in got["statusMessage"]
