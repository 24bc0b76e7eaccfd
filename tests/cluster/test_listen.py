"""Notifications that reach a listener on one web process from anywhere in the cluster (two
web processes and a worker, PostgreSQL and Redis): 2026-07-28 listens over HTTP and WebSocket
on one process hear of a tenant's new tool set and of a run started through the other; a
handshake-era HTTP session's resources/subscribe, POSTed to one process, is delivered on its
GET stream held by the other."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from httpx_sse import ServerSentEvent

from mcp_server.client.http import HttpSession
from tests.cluster.support import (
    LONG_BATCH,
    WAIT,
    Cluster,
    member_of_a_new_tenant,
    next_matching,
    set_tool_set,
)
from tests.cluster.test_streamable_http import on_both
from tests.e2e.support import raw_client

SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
ACK = "notifications/subscriptions/acknowledged"
TOOLS_CHANGED = "notifications/tools/list_changed"
UPDATED = "notifications/resources/updated"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


async def event_where(
    events: AsyncIterator[ServerSentEvent], wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first message of an SSE stream `wanted` accepts, within WAIT seconds."""

    async def first() -> dict[str, Any]:
        async for event in events:
            if event.data and wanted(event.json()):
                return dict(event.json())
        raise AssertionError("the stream ended first")

    return await asyncio.wait_for(first(), WAIT)


async def start_run(session: HttpSession) -> str:
    """A long run started as a task through `session`; its resource URI."""
    params = {"name": "process_batch", "arguments": LONG_BATCH, "task": {}}
    started = await session.request("tools/call", params)
    return f"mcp-realtime://runs/{started['result']['task']['taskId']}"


async def cancel_run(session: HttpSession, uri: str) -> None:
    """Cancel the run of `uri`: the task is cancelled in history before the answer, and the
    worker stops the run when the cancel reaches it (nothing later waits for that: the
    other tests' calls are their tenants' own, tests/cluster/test_metrics' too)."""
    task_id = uri.rsplit("/", 1)[-1]
    cancelled = (await session.request("tasks/cancel", {"taskId": task_id}))["result"]
    assert cancelled["status"] == "cancelled", cancelled


async def test_listens_on_one_web_process_hear_of_changes_made_through_the_other(
    cluster: Cluster,
) -> None:
    slug, token = member_of_a_new_tenant(cluster, "listen")
    web0, web1 = cluster.web
    starter = HttpSession(f"{web1.http_url}/mcp", token)
    listener = HttpSession(f"{web0.http_url}/mcp", token)
    try:
        await starter.initialize()
        run = await start_run(starter)
        asked = {"toolsListChanged": True, "resourceSubscriptions": [run]}
        async with (
            listener.subscribe(asked) as (listen_id, _, events),
            raw_client(web0, token) as socket,
        ):
            assert events is not None
            ack = await event_where(events, lambda m: True)
            assert ack["method"] == ACK
            assert ack["params"]["notifications"] == asked
            # The same listen over WebSocket, beside it on web0.
            await socket.send(
                {
                    "jsonrpc": "2.0",
                    "id": "ws-listen",
                    "method": "subscriptions/listen",
                    "params": {"notifications": asked, "_meta": MODERN_META},
                }
            )
            ws_ack = await next_matching(socket, lambda m: m.get("method") == ACK, WAIT)
            assert ws_ack["params"]["_meta"] == {SUBSCRIPTION_ID: "ws-listen"}

            # A run started through web1 progresses (on a worker): the update reaches web0.
            updated = await event_where(events, lambda m: m.get("method") == UPDATED)
            assert updated["params"] == {"uri": run, "_meta": {SUBSCRIPTION_ID: listen_id}}
            ws_updated = await next_matching(socket, lambda m: m.get("method") == UPDATED, WAIT)
            assert ws_updated["params"] == {"uri": run, "_meta": {SUBSCRIPTION_ID: "ws-listen"}}

            # An operator's edit of the tenant's tool set reaches both listens.
            set_tool_set(cluster, slug, ["add", "process_batch"], [])
            changed = await event_where(events, lambda m: m.get("method") == TOOLS_CHANGED)
            assert changed["params"] == {"_meta": {SUBSCRIPTION_ID: listen_id}}
            # (the socket's handshake era hears of it too, untagged)
            ws_changed = await next_matching(
                socket,
                lambda m: m.get("method") == TOOLS_CHANGED and "_meta" in m["params"],
                WAIT,
            )
            assert ws_changed["params"] == {"_meta": {SUBSCRIPTION_ID: "ws-listen"}}
        await cancel_run(starter, run)
    finally:
        await starter.close()
        await listener.close()


async def test_a_subscribe_posted_to_one_process_reaches_the_get_stream_on_the_other(
    cluster: Cluster,
) -> None:
    _, token = member_of_a_new_tenant(cluster, "subscribe")
    async with on_both(cluster, token) as (here, there):
        run = await start_run(here)
        async with there.listen() as (_, events):
            primed = await asyncio.wait_for(anext(events), WAIT)
            assert primed.id and not primed.data
            assert (await here.request("resources/subscribe", {"uri": run}))["result"] == {}
            updated = await event_where(events, lambda m: m.get("method") == UPDATED)
            assert updated["params"] == {"uri": run}
            assert (await here.request("resources/unsubscribe", {"uri": run}))["result"] == {}
        await cancel_run(here, run)
