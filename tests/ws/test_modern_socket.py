"""2026-07-28 requests over the WebSocket consumer, through the full ASGI stack: a socket that
never sends initialize lists, calls with progress, discovers, and listens beside its
requests."""

from collections.abc import Callable
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from accounts.services import IssuedToken
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.runtime.history import HistoryWriter
from tests.e2e.support import wait_until_async
from tests.ws.conftest import TIMEOUT, serving, ws_connect
from tests.ws.test_modern_session import MODERN, modern_meta

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("history")
async def test_a_socket_without_a_handshake_lists_and_calls_with_progress(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path(), subprotocols=["mcp"]) as (client, _):
        discovered = await client.reply("server/discover", {"_meta": modern_meta()})
        assert discovered["result"]["supportedVersions"] == [MODERN]
        assert discovered["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]

        listed = await client.reply("tools/list", {"_meta": modern_meta()})
        assert {"add", "process_batch"} <= {tool["name"] for tool in listed["result"]["tools"]}
        assert listed["result"]["cacheScope"] == "private"

        params = {
            "name": "process_batch",
            "arguments": {"count": 20, "item_ms": 1},
            "_meta": modern_meta(progressToken="batch"),
        }
        called = await client.reply("tools/call", params)
        assert called["result"]["structuredContent"]["processed"] == 20
        assert called["result"]["resultType"] == "complete"
        progress = [
            message["params"]
            for message in client.notifications
            if message.get("method") == "notifications/progress"
        ]
        assert progress and {report["progressToken"] for report in progress} == {"batch"}
        assert progress[-1]["progress"] == 20


ACK = "notifications/subscriptions/acknowledged"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"


def listen(request_id: str, run: str) -> dict[str, Any]:
    """A subscriptions/listen for the updates of `run`."""
    params = {"notifications": {"resourceSubscriptions": [run]}, "_meta": modern_meta()}
    return {"jsonrpc": "2.0", "id": request_id, "method": "subscriptions/listen", "params": params}


async def test_a_listen_shares_the_socket_with_requests_and_ends_when_cancelled(
    token_path: Callable[..., str], issued: IssuedToken, settings: Settings, history: HistoryWriter
) -> None:
    settings.MCP_LISTENS_PER_CONNECTION = 1
    settings.MCP_RESOURCE_UPDATE_INTERVAL = 0.05
    async with (
        serving(history) as runtime,
        ws_connect(runtime, token_path()) as (starter, _),
        ws_connect(runtime, token_path()) as (client, _),
    ):
        await starter.initialize()
        started = await starter.reply(
            "tools/call",
            {"name": "process_batch", "arguments": {"count": 100_000, "item_ms": 1}, "task": {}},
        )
        task_id = started["result"]["task"]["taskId"]
        run = f"mcp-realtime://runs/{task_id}"
        await client.send(listen("l1", run))
        ack = await client.receive()
        assert ack["method"] == ACK
        assert ack["params"] == {
            "_meta": {SUBSCRIPTION_ID: "l1"},
            "notifications": {"resourceSubscriptions": [run]},
        }
        # Ordinary requests go on beside it; a second listen is past the connection's bound.
        listed = await client.reply("tools/list", {"_meta": modern_meta()})
        assert listed["result"]["tools"]
        refused = await client.reply("subscriptions/listen", listen("x", run)["params"])
        assert refused["error"]["data"]["limit"] == "listens_per_connection"

        def updated(message: dict[str, Any]) -> bool:
            return message.get("method") == "notifications/resources/updated"

        while not any(updated(m) for m in client.notifications):
            client.notifications.append(await client.receive())
        update = next(m for m in client.notifications if updated(m))
        assert update["params"] == {"uri": run, "_meta": {SUBSCRIPTION_ID: "l1"}}

        user_id = issued.token.user_id
        assert runtime.listens.count(user_id) == 1
        await client.send(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "l1"}}
        )
        # Cancelled: no response, and its place is free (the cancel lands before the retry).
        await wait_until_async(
            lambda: runtime.listens.count(user_id) == 0, TIMEOUT, "the cancelled listen to end"
        )
        await client.send(listen("l2", run))
        while (message := await client.receive()).get("method") != ACK:
            assert message.get("id") != "l1", "a cancelled listen got a response"
        assert message["params"]["_meta"] == {SUBSCRIPTION_ID: "l2"}
        await starter.reply("tasks/cancel", {"taskId": task_id})
