"""Processes that die or are stopped: nothing stays running forever, clients are told."""

import asyncio
import signal

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import (
    LONG_BATCH,
    LOST_AFTER,
    UNCLAIMED_AFTER,
    WAIT,
    Cluster,
    is_progress,
    is_response,
    next_matching,
    send_request,
    sigterm_goodbye,
    start_long_call,
    start_worker,
)
from tests.e2e.support import (
    RawClient,
    error_of,
    raw_client,
    raw_connection,
    result_of,
)

# How long a test waits for a client to hear of a dead worker: the bound, and the slack of a
# loaded machine (how fast it is told is the benchmarks' business, not a timed assertion).
TOLD_WITHIN = max(LOST_AFTER, UNCLAIMED_AFTER) + WAIT


async def test_kill_9_of_the_worker_interrupts_its_operations_and_tells_the_client(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    web1, web2 = cluster.web
    async with raw_client(web1, cluster_accounts.alice) as client:
        call_id = await start_long_call(client, "k")
        task = result_of(
            await client.request(
                "tools/call",
                {"name": "process_batch", "arguments": LONG_BATCH, "task": {}},
            )
        )["task"]
        for worker in cluster.workers:
            worker.kill()
        error = error_of(await next_matching(client, is_response(call_id), TOLD_WITHIN))
        assert error["data"]["status"] == "interrupted", error
        assert "interrupted" in error["message"]
        status = await next_matching(
            client,
            lambda m: (
                m.get("method") == "notifications/tasks/status"
                and m["params"]["taskId"] == task["taskId"]
            ),
            TOLD_WITHIN,
        )
        assert status["params"]["status"] == "failed"
        assert "interrupted" in status["params"]["statusMessage"]
    async with raw_client(web2, cluster_accounts.alice) as client:
        got = result_of(await client.request("tasks/get", {"taskId": task["taskId"]}))
        assert got["status"] == "failed"
        error = error_of(await client.request("tasks/result", {"taskId": task["taskId"]}))
        assert error["data"]["taskId"] == task["taskId"]
        assert error["data"]["status"] == "interrupted"
        assert error["data"]["taskStatus"] == "failed"
    cluster.workers = [start_worker(cluster.deployment, cluster.env)]


async def test_sigterm_of_a_web_process_says_goodbye_and_its_clients_resume_elsewhere(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    web1, web2 = cluster.web
    async with raw_connection(web1.ws_url(cluster_accounts.alice)) as ws:
        client = RawClient(ws)
        await client.initialize()
        task = result_of(
            await client.request(
                "tools/call",
                {
                    "name": "process_batch",
                    "arguments": {"count": 80, "item_ms": 50},
                    "task": {},
                    "_meta": {"progressToken": "t"},
                },
            )
        )["task"]
        await next_matching(client, is_progress("t"), WAIT)
        goodbye = await sigterm_goodbye(client, web1)
        assert "interruptedTasks" not in goodbye  # it runs on the worker
    await asyncio.to_thread(web1.process.wait, WAIT)
    assert web1.process.returncode == 0, web1.log_text()
    async with raw_client(web2, cluster_accounts.alice) as client:
        result = result_of(await client.request("tasks/result", {"taskId": task["taskId"]}))
        assert result["structuredContent"]["processed"] == 80


async def test_sigterm_of_a_worker_lets_short_work_finish_and_interrupts_the_rest(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    """The test cluster's grace is 2 s: a 1 s call finishes, a 100 s one is interrupted."""
    web1 = cluster.web[0]
    async with raw_client(web1, cluster_accounts.alice) as client:
        short_id = await send_request(
            client,
            "tools/call",
            {"name": "process_batch", "arguments": {"count": 20, "item_ms": 50}},
        )
        long_id = await start_long_call(client, "l")
        worker = cluster.workers[0]
        worker.process.send_signal(signal.SIGTERM)
        short = result_of(await next_matching(client, is_response(short_id), WAIT))
        assert short["structuredContent"]["processed"] == 20
        error = error_of(await next_matching(client, is_response(long_id), WAIT))
        assert error["data"]["status"] == "interrupted"
        await asyncio.to_thread(worker.process.wait, WAIT)
        assert worker.process.returncode == 0, worker.log_text()


async def test_a_call_nobody_takes_is_interrupted_within_the_bound(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    for worker in cluster.workers:
        worker.stop()
    # A long tool: short ones (add) run in the web process, workers or not.
    unclaimed = {"name": "process_batch", "arguments": {"count": 2, "item_ms": 3}}
    async with raw_client(cluster.web[1], cluster_accounts.bob) as client:
        call_id = await send_request(client, "tools/call", unclaimed)
        error = error_of(await next_matching(client, is_response(call_id), TOLD_WITHIN))
        assert error["data"]["status"] == "interrupted"
        assert error["message"].endswith("interrupted: no process took it in time")
        # Its entry was taken back from the streams when it was told: the next worker takes
        # the call after it and never runs the one whose client was told it was interrupted.
        worker = start_worker(cluster.deployment, cluster.env)
        cluster.workers = [worker]
        call_id = await send_request(
            client, "tools/call", {"name": "process_batch", "arguments": {"count": 1}}
        )
        result_of(await next_matching(client, is_response(call_id), WAIT))
    (row,) = cluster.deployment.sql(
        "SELECT status, started_at FROM mcp_server_operation "
        "WHERE tool = %s AND arguments ->> 'item_ms' = %s",
        ["process_batch", "3"],
    )
    assert row == {"status": "interrupted", "started_at": None}
