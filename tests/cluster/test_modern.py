"""2026-07-28 requests whose calls run on a worker: progress and the logs a request asked for
(and only those) come back through the web process that holds the request, over WebSocket
and over Streamable HTTP without a session."""

import asyncio
import secrets
from typing import Any

from mcp_server.client.http import HttpSession
from mcp_server.client.session import McpConnection
from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import WAIT, Cluster
from tests.cluster.test_placement import _ran_on, _runner
from tests.e2e.support import start_server

# echo logs at debug; it is short, so it runs on a worker only when told to.
ECHO_ON_WORKERS = "echo=worker"


async def test_a_modern_call_on_a_worker_logs_only_as_its_request_asked(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    placed = await asyncio.to_thread(
        start_server, cluster.deployment, {**cluster.env, "MCP_TOOL_PLACEMENT": ECHO_ON_WORKERS}
    )
    heard: list[tuple[str, dict[str, Any]]] = []
    text = f"far-{secrets.token_hex(3)}"
    try:
        connection = await McpConnection.open(
            placed.ws_url(),
            token=cluster_accounts.alice,
            on_notification=lambda method, params: heard.append((method, params)),
            modern=True,
        )
        try:
            echo = {"name": "echo", "arguments": {"text": text}}
            quiet = await asyncio.wait_for(connection.request("tools/call", echo), WAIT)
            assert quiet["content"] == [{"type": "text", "text": text}]
            echo["arguments"] = {"text": text + "!"}
            told = await asyncio.wait_for(
                connection.request("tools/call", echo, log_level="debug"), WAIT
            )
            assert told["resultType"] == "complete"
        finally:
            await connection.close()
    finally:
        placed.stop()
    # The log of the second call arrives before its response; the first asked for none.
    logs = [params["data"] for method, params in heard if method == "notifications/message"]
    assert logs == [f"echoing {len(text) + 1} characters"]
    worker = _runner(cluster.workers[0].process.pid)
    assert await asyncio.to_thread(_ran_on, cluster, "echo", {"text": text}) == worker


async def test_a_modern_http_call_on_a_worker_streams_its_progress(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    client = HttpSession(f"{cluster.web[0].http_url}/mcp", cluster_accounts.alice)
    try:
        reply = await asyncio.wait_for(
            client.modern(
                "tools/call",
                {
                    "name": "process_batch",
                    "arguments": {"count": 6, "item_ms": 30},
                    "_meta": {"progressToken": "far"},
                },
            ),
            WAIT,
        )
    finally:
        await client.close()
    assert reply.status == 200 and reply.streamed
    assert "mcp-session-id" not in reply.headers
    progress = [m["params"] for m in reply.messages if m.get("method") == "notifications/progress"]
    assert progress and {report["progressToken"] for report in progress} == {"far"}
    assert reply.messages[-1]["result"]["structuredContent"]["processed"] == 6
