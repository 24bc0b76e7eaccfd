"""The tasks extension (2026-07-28) across two web processes and a worker, on PostgreSQL and
Redis: a task created through one web process is followed (tasks/get, and a listen's
notifications/tasks) and cancelled through the other, and another user's task id is an
unknown one everywhere."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from httpx_sse import ServerSentEvent

from mcp_server.client.http import HttpSession
from mcp_server.protocol.tasks import TASKS_EXTENSION
from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import WAIT, Cluster, on_both
from tests.e2e.support import read_until

WITH_TASKS: dict[str, Any] = {"extensions": {TASKS_EXTENSION: {}}}
BATCH = {"count": 40, "item_ms": 50}  # about 2 s on the worker
LONG = {"count": 100_000, "item_ms": 5}


async def answer(client: HttpSession, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The one response to a 2026-07-28 request declaring the tasks extension."""
    reply = await client.modern(method, params, capabilities=WITH_TASKS)
    (response,) = [message for message in reply.messages if "method" not in message]
    return response


async def create(client: HttpSession, arguments: dict[str, Any]) -> str:
    """Start process_batch; the id of the task the server made of it."""
    call = {"name": "process_batch", "arguments": arguments, "_meta": {"progressToken": "p"}}
    created = (await answer(client, "tools/call", call))["result"]
    assert (created["resultType"], created["status"]) == ("task", "working")
    return str(created["taskId"])


async def until_ended(client: HttpSession, task_id: str) -> dict[str, Any]:
    """Poll tasks/get until the task has ended (within WAIT seconds), as its client does."""

    async def task() -> dict[str, Any]:
        return dict((await answer(client, "tasks/get", {"taskId": task_id}))["result"])

    return await read_until(
        task,
        lambda got: got["status"] in ("completed", "failed", "cancelled"),
        WAIT,
        f"task {task_id} to end",
    )


async def test_a_task_made_on_one_web_process_is_followed_on_the_other(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with on_both(cluster, cluster_accounts.alice, initialize=False) as (here, there):
        task_id = await create(here, BATCH)
        # Committed before the answer: the other process finds it at once.
        first = (await answer(there, "tasks/get", {"taskId": task_id}))["result"]
        assert first["taskId"] == task_id
        assert first["status"] in ("working", "completed")
        done = await until_ended(there, task_id)
    assert done["status"] == "completed"
    assert done["result"]["structuredContent"]["processed"] == BATCH["count"]


async def next_task_notice(events: AsyncIterator[ServerSentEvent] | None) -> dict[str, Any]:
    """The next notifications/tasks of a listen's stream (within WAIT seconds)."""
    assert events is not None, "a listen is answered as an SSE stream"

    async def first() -> dict[str, Any]:
        async for event in events:
            message = event.json() if event.data else None
            if message is not None and message.get("method") == "notifications/tasks":
                return dict(message["params"])
        raise AssertionError("the listen ended")

    return await asyncio.wait_for(first(), WAIT)


async def test_a_listen_on_the_other_process_hears_the_task_end(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with on_both(cluster, cluster_accounts.alice, initialize=False) as (here, there):
        task_id = await create(here, BATCH)
        asked = {"taskIds": [task_id]}
        async with there.subscribe(asked, capabilities=WITH_TASKS) as (_, response, events):
            assert response.headers["content-type"].startswith("text/event-stream")
            now = await next_task_notice(events)
            assert (now["taskId"], now["status"]) == (task_id, "working")
            done = await next_task_notice(events)
    assert (done["taskId"], done["status"]) == (task_id, "completed")
    assert done["result"]["structuredContent"]["processed"] == BATCH["count"]


async def test_a_cancel_through_the_other_process_stops_the_task(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with on_both(cluster, cluster_accounts.alice, initialize=False) as (here, there):
        task_id = await create(here, LONG)
        ack = (await answer(there, "tasks/cancel", {"taskId": task_id}))["result"]
        assert ack["resultType"] == "complete"
        assert not {"taskId", "status"} & set(ack)
        assert (await until_ended(here, task_id))["status"] == "cancelled"


async def test_another_users_task_id_is_unknown_on_every_process(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with on_both(cluster, cluster_accounts.alice, initialize=False) as (here, _):
        task_id = await create(here, LONG)
        try:
            async with on_both(cluster, cluster_accounts.bob, initialize=False) as (
                bob_here,
                bob_there,
            ):
                for client in (bob_here, bob_there):
                    for method in ("tasks/get", "tasks/cancel", "tasks/update"):
                        params = {"taskId": task_id, "inputResponses": {}}
                        error = (await answer(client, method, params))["error"]
                        assert error == {"code": -32602, "message": f"Unknown task: {task_id}"}
            still = (await answer(here, "tasks/get", {"taskId": task_id}))["result"]
            assert still["status"] == "working"
        finally:
            await answer(here, "tasks/cancel", {"taskId": task_id})
