"""Streamable HTTP across two web processes and a worker on PostgreSQL and Redis: any process
serves any request of a session, a stream dropped at one is resumed at the other, a cancel or
a DELETE sent to one reaches the call or the stream the other holds."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from httpx_sse import ServerSentEvent

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import WAIT, Cluster, on_both

SLEEP = {"name": "sleep", "arguments": {"seconds": 3}, "_meta": {"progressToken": "s"}}
LONG_SLEEP = {"name": "sleep", "arguments": {"seconds": 600}, "_meta": {"progressToken": "s"}}


def call(request_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """A `tools/call` request."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def progress_event(events: AsyncIterator[ServerSentEvent]) -> ServerSentEvent:
    """The first progress notification of a stream, within WAIT seconds."""

    async def first() -> ServerSentEvent:
        async for event in events:
            if event.data and event.json().get("method") == "notifications/progress":
                return event
        raise AssertionError("the stream ended before any progress")

    return await asyncio.wait_for(first(), WAIT)


async def rest_of(events: AsyncIterator[ServerSentEvent]) -> list[ServerSentEvent]:
    """Every further event of a stream until the server ends it, within WAIT seconds."""

    async def collect() -> list[ServerSentEvent]:
        return [event async for event in events]

    return await asyncio.wait_for(collect(), WAIT)


async def test_a_session_started_on_one_process_is_served_by_the_other(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with on_both(cluster, cluster_accounts.alice) as (here, there):
        listed = await there.request("tools/list")
        assert any(tool["name"] == "add" for tool in listed["result"]["tools"])
        added = await there.request("tools/call", {"name": "add", "arguments": {"a": 4, "b": 5}})
        assert added["result"]["structuredContent"] == {"result": 9.0}
        assert (await here.request("ping"))["result"] == {}


async def test_a_stream_dropped_at_one_process_is_resumed_at_the_other(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with on_both(cluster, cluster_accounts.alice) as (here, there):
        async with here.stream_post(call(1, SLEEP)) as (_, events):
            assert events is not None
            last_seen = (await progress_event(events)).id
        async with there.listen(last_event_id=last_seen) as (response, resumed):
            assert response.status_code == 200
            rest = await rest_of(resumed)
    assert rest and rest[-1].json()["id"] == 1
    assert rest[-1].json()["result"]["content"][0]["text"].startswith("slept 3")
    assert last_seen not in [event.id for event in rest]


async def test_a_cancel_posted_to_the_other_process_stops_the_call(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with (
        on_both(cluster, cluster_accounts.alan) as (here, there),
        here.stream_post(call(7, LONG_SLEEP)) as (_, events),
    ):
        assert events is not None
        await progress_event(events)
        assert await there.notify("notifications/cancelled", {"requestId": 7}) == 202
        rest = await rest_of(events)
    assert not [event for event in rest if event.data and event.json().get("id") == 7]


async def test_delete_at_one_process_ends_the_get_stream_at_the_other(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with on_both(cluster, cluster_accounts.bob) as (here, there):
        async with here.listen() as (response, events):
            assert response.status_code == 200
            primed = await asyncio.wait_for(anext(events), WAIT)
            assert primed.id
            assert await there.delete() == 204
            assert await rest_of(events) == []
        assert (await here.post({"jsonrpc": "2.0", "id": 3, "method": "ping"})).status == 404
