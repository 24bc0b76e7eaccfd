"""A tenant's new tool set reaches its open connections on both web processes: each gets
`notifications/tools/list_changed` and lists and calls from the new set; a new call of a tool
taken away is refused, a call already running goes on; the REST tool list follows."""

import secrets
from typing import Any

from tests.cluster.support import (
    WAIT,
    Cluster,
    is_progress,
    is_response,
    next_matching,
    set_tool_set,
    start_long_call,
)
from tests.e2e.support import (
    RawClient,
    error_of,
    raw_client,
    result_of,
    tenant_command,
    token_command,
    user_command,
)

NOT_ENABLED = "Tool 'process_batch' is not enabled for your tenant"


def _is_list_changed(message: dict[str, Any]) -> bool:
    return message.get("method") == "notifications/tools/list_changed"


async def _names(client: RawClient) -> set[str]:
    return {tool["name"] for tool in result_of(await client.request("tools/list"))["tools"]}


async def test_a_new_tool_set_reaches_both_web_processes(cluster: Cluster) -> None:
    slug = f"tools-{secrets.token_hex(3)}"
    deployment = cluster.deployment
    first, second = deployment.run_together(
        [
            tenant_command(slug),
            user_command(f"{slug}-a", slug),
            user_command(f"{slug}-b", slug),
            token_command(f"{slug}-a", name=f"{slug}-a"),
            token_command(f"{slug}-b", name=f"{slug}-b"),
        ]
    )[3:]
    web0, web1 = cluster.web
    async with raw_client(web0, first) as on_web0, raw_client(web1, second) as on_web1:
        every = await _names(on_web0)
        assert {"process_batch", "text_stats", "add"} <= every
        running = await start_long_call(on_web0, "long")

        set_tool_set(cluster, slug, ["add", "text_stats"], [])
        for client in (on_web0, on_web1):
            await next_matching(client, _is_list_changed, WAIT)
            assert await _names(client) == {"add", "text_stats"}
        refused = error_of(await on_web1.call_tool("process_batch", {"count": 1, "item_ms": 0}))
        assert refused == {"code": -32602, "message": NOT_ENABLED}
        added = result_of(await on_web1.call_tool("add", {"a": 2, "b": 3}))
        assert added["structuredContent"] == {"result": 5}
        status, listed = web1.get_json("/api/tools/", second)
        assert status == 200, listed
        assert [tool["name"] for tool in listed["tools"]] == ["add", "text_stats"]
        # The call accepted before the change goes on: it still reports progress.
        on_web0.notifications = [m for m in on_web0.notifications if not is_progress("long")(m)]
        await next_matching(on_web0, is_progress("long"), WAIT)

        # Every tool but two: tools the server gains later would be on for this tenant.
        set_tool_set(cluster, slug, None, ["process_batch", "echo"])
        for client in (on_web0, on_web1):
            await next_matching(client, _is_list_changed, WAIT)
            assert await _names(client) == every - {"process_batch", "echo"}
        status, listed = web0.get_json("/api/tools/", first)
        assert {tool["name"] for tool in listed["tools"]} == every - {"process_batch", "echo"}
        refused = error_of(await on_web0.call_tool("process_batch", {"count": 1, "item_ms": 0}))
        assert refused["message"] == NOT_ENABLED

        await on_web0.notify("notifications/cancelled", {"requestId": running})
        await on_web0.send({"jsonrpc": "2.0", "id": "after", "method": "ping"})
        await next_matching(on_web0, is_response("after"), WAIT)
