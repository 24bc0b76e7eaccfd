"""Durable tasks across web processes: start on one, resume on the other."""

import pytest

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import (
    WAIT,
    Cluster,
    is_progress,
    is_response,
    next_matching,
    send_request,
)
from tests.e2e.support import error_of, raw_client, result_of

BATCH = {"count": 60, "item_ms": 50}  # about 3 s of work, reporting progress on every item


def _task_call(token: str) -> dict:
    return {
        "name": "process_batch",
        "arguments": BATCH,
        "task": {"ttl": 600_000},
        "_meta": {"progressToken": token},
    }


async def test_task_started_on_web1_resumes_on_web2(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    web1, web2 = cluster.web
    async with raw_client(web1, cluster_accounts.alice) as client:
        created = result_of(await client.request("tools/call", _task_call("first")))["task"]
        assert created["status"] == "working"
        assert created["ttl"] == 600_000
        task_id = created["taskId"]
        first = await next_matching(client, is_progress("first"), WAIT)
        meta = first["params"]["_meta"]["io.modelcontextprotocol/related-task"]
        assert meta == {"taskId": task_id}
    # The client left; the task runs on in the worker.
    async with raw_client(web2, cluster_accounts.alice_second) as client:
        listed = result_of(await client.request("tasks/list", {}))["tasks"]
        assert listed[0]["taskId"] == task_id  # newest first
        assert listed[0]["status"] == "working"
        got = result_of(await client.request("tasks/get", {"taskId": task_id}))
        assert got["status"] == "working"
        assert got["pollInterval"] > 0
        request_id = await send_request(
            client, "tasks/result", {"taskId": task_id, "_meta": {"progressToken": "again"}}
        )
        again = await next_matching(client, is_progress("again"), WAIT)
        assert again["params"]["total"] == BATCH["count"]
        response = await next_matching(client, is_response(request_id), WAIT)
        result = result_of(response)
        assert result["structuredContent"]["processed"] == BATCH["count"]
        assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
        # The final progress came before the response, and the status notification too.
        finals = [m for m in client.notifications if m.get("method") == "notifications/progress"]
        assert finals[-1]["params"]["progress"] == BATCH["count"]
        statuses = [
            m["params"]
            for m in client.notifications
            if m.get("method") == "notifications/tasks/status"
        ]
        assert statuses[-1]["status"] == "completed"
        assert statuses[-1]["taskId"] == task_id
        done = result_of(await client.request("tasks/get", {"taskId": task_id}))
        assert done["status"] == "completed"
        # A finished task answers tasks/result at once, from history.
        again_result = result_of(await client.request("tasks/result", {"taskId": task_id}))
        assert again_result["structuredContent"] == result["structuredContent"]


async def test_original_progress_token_continues_when_none_is_given(
    cluster: Cluster, cluster_accounts: ClusterAccounts
):
    web1, web2 = cluster.web
    async with raw_client(web1, cluster_accounts.alice) as client:
        created = result_of(await client.request("tools/call", _task_call("orig")))["task"]
    async with raw_client(web2, cluster_accounts.alice) as client:
        request_id = await send_request(client, "tasks/result", {"taskId": created["taskId"]})
        progress = await next_matching(client, is_progress("orig"), WAIT)
        assert progress["params"]["progress"] > 0
        result_of(await next_matching(client, is_response(request_id), WAIT))


async def test_another_users_task_is_unknown(cluster: Cluster, cluster_accounts: ClusterAccounts):
    web1, web2 = cluster.web
    async with raw_client(web1, cluster_accounts.alice) as client:
        created = result_of(await client.request("tools/call", _task_call("mine")))["task"]
    task_id = created["taskId"]
    # alan is in the same tenant, bob in another: neither sees alice's task.
    for token in (cluster_accounts.alan, cluster_accounts.bob):
        async with raw_client(web2, token) as other:
            unknown = error_of(await other.request("tasks/get", {"taskId": "0" * 8 + task_id[8:]}))
            for method in ("tasks/get", "tasks/result", "tasks/cancel"):
                error = error_of(await other.request(method, {"taskId": task_id}))
                assert error["code"] == unknown["code"] == -32602
                assert error["message"] == f"Unknown task: {task_id}"
            listed = result_of(await other.request("tasks/list", {}))["tasks"]
            assert task_id not in [t["taskId"] for t in listed]
    async with raw_client(web2, cluster_accounts.alice) as client:
        result_of(await client.request("tasks/result", {"taskId": task_id}))


@pytest.mark.parametrize("task", [None, {"ttl": 1000}])
async def test_task_support_is_enforced(
    cluster: Cluster, cluster_accounts: ClusterAccounts, task: dict | None
):
    async with raw_client(cluster.web[0], cluster_accounts.bob) as client:
        params: dict = {"name": "add", "arguments": {"a": 1, "b": 2}}
        if task is not None:
            params["task"] = task
            assert error_of(await client.request("tools/call", params))["code"] == -32601
        else:
            assert result_of(await client.request("tools/call", params))["structuredContent"]
