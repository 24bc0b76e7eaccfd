"""Messages between processes: broadcasts, cancellation, many clients at once."""

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import (
    LONG_BATCH,
    WAIT,
    Cluster,
    is_progress,
    is_response,
    next_matching,
    rest_api,
    send_request,
    start_long_call,
)
from tests.e2e.support import RawClient, error_of, raw_client, result_of, wait_until


def _is_broadcast(message: dict[str, Any]) -> bool:
    return message.get("method") == "notifications/message" and (
        message["params"].get("logger") == "broadcast"
    )


async def _next_broadcast(client: RawClient) -> str:
    message = await next_matching(client, _is_broadcast, WAIT)
    return str(message["params"]["data"])


async def test_broadcast_reaches_every_web_process_and_respects_the_tenant(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    web1, web2 = cluster.web
    async with AsyncExitStack() as stack:
        alice_1 = await stack.enter_async_context(raw_client(web1, cluster_accounts.alice))
        alan_2 = await stack.enter_async_context(raw_client(web2, cluster_accounts.alan))
        bob_2 = await stack.enter_async_context(raw_client(web2, cluster_accounts.bob))
        everyone = (alice_1, alan_2, bob_2)
        await asyncio.to_thread(
            cluster.deployment.manage,
            "broadcast",
            "Server restarts in 5 minutes",
            "--level",
            "warning",
        )
        for client in everyone:
            message = await next_matching(client, _is_broadcast, WAIT)
            assert message["params"]["data"] == "Server restarts in 5 minutes"
            assert message["params"]["level"] == "warning"
        await broadcast(cluster, "alpha only", "--tenant", "alpha")
        await broadcast(cluster, "alan only", "--user", "alan")
        # A marker to everyone last: what came before it is what each client was sent.
        await broadcast(cluster, "marker")
        assert await _broadcasts_until(alice_1, "marker") == ["alpha only"]
        assert await _broadcasts_until(alan_2, "marker") == ["alpha only", "alan only"]
        assert await _broadcasts_until(bob_2, "marker") == []


async def broadcast(cluster: Cluster, *args: str) -> None:
    """Run `manage.py broadcast ARGS` as an operator would."""
    await asyncio.to_thread(cluster.deployment.manage, "broadcast", *args)


async def _broadcasts_until(client: RawClient, marker: str) -> list[str]:
    texts = []
    while (text := await _next_broadcast(client)) != marker:
        texts.append(text)
    return texts


async def test_tasks_cancel_from_web2_stops_a_task_started_on_web1(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    web1, web2 = cluster.web
    async with raw_client(web1, cluster_accounts.alice) as starter:
        task = result_of(
            await starter.request(
                "tools/call",
                {
                    "name": "process_batch",
                    "arguments": LONG_BATCH,
                    "task": {},
                    "_meta": {"progressToken": "c"},
                },
            )
        )["task"]
        await next_matching(starter, is_progress("c"), WAIT)
        async with raw_client(web2, cluster_accounts.alice_second) as canceller:
            cancelled = result_of(
                await canceller.request("tasks/cancel", {"taskId": task["taskId"]})
            )
            assert cancelled["status"] == "cancelled"
            again = error_of(await canceller.request("tasks/cancel", {"taskId": task["taskId"]}))
            assert again["code"] == -32602
            assert "already ended" in again["message"]
        status = await next_matching(
            starter, lambda m: m.get("method") == "notifications/tasks/status", WAIT
        )
        assert status["params"]["status"] == "cancelled"
        # The worker stopped it: its history row is cancelled well short of the total.
        error = error_of(await starter.request("tasks/result", {"taskId": task["taskId"]}))
        assert error["data"]["status"] == "cancelled"
    run = rest_api(web2, cluster_accounts.alice, f"/api/runs/{task['taskId']}/")
    assert run["status"] == "cancelled"
    assert run["progress"] < LONG_BATCH["count"]


async def test_rest_cancel_in_worker_mode_stops_a_call_and_answers_its_client(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    web1, web2 = cluster.web
    async with raw_client(web1, cluster_accounts.alice) as client:
        call_id = await start_long_call(client, "r")
        runs: list[dict[str, Any]] = []

        def running() -> bool:
            runs[:] = rest_api(web2, cluster_accounts.alice, "/api/runs/?status=running")["results"]
            return bool(runs)

        await asyncio.to_thread(wait_until, running, WAIT, "the run to show as running")
        outcome = await asyncio.to_thread(
            rest_api, web2, cluster_accounts.alice, f"/api/runs/{runs[0]['id']}/cancel/", "POST"
        )
        assert outcome["outcome"] == "cancelling"
        error = error_of(await next_matching(client, is_response(call_id), WAIT))
        assert error["data"]["status"] == "cancelled"
        await client.assert_answers_ping()


async def test_200_clients_over_two_web_processes_get_every_response_and_final_progress(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    tokens = [cluster_accounts.alice, cluster_accounts.alan, cluster_accounts.bob]
    count = 20

    async def one(index: int) -> tuple[dict[str, Any], float]:
        server = cluster.web[index % 2]
        async with raw_client(server, tokens[index % 3]) as client:
            token = f"p{index}"
            request_id = await send_request(
                client,
                "tools/call",
                {
                    "name": "process_batch",
                    "arguments": {"count": count, "item_ms": 20},
                    "_meta": {"progressToken": token},
                },
            )
            response = await next_matching(client, is_response(request_id), 120)
            progress = [
                m["params"]["progress"]
                for m in client.notifications
                if m.get("method") == "notifications/progress"
            ]
            assert progress == sorted(set(progress)), progress
            return result_of(response), max(progress, default=0)

    outcomes = await asyncio.gather(*(one(i) for i in range(200)))
    assert [r["structuredContent"]["processed"] for r, _ in outcomes] == [count] * 200
    assert [final for _, final in outcomes] == [count] * 200
