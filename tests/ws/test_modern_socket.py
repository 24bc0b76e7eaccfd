"""2026-07-28 requests over the WebSocket consumer, through the full ASGI stack: a socket that
never sends initialize lists, calls with progress, and discovers."""

from collections.abc import Callable

import pytest

from mcp_server.process_runtime import ProcessRuntime
from tests.ws.conftest import ws_connect
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
