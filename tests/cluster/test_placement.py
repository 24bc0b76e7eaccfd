"""Placement in a cluster: short tools run in the web process that holds the connection, long
ones on a worker (history names the process); an operator's override moves one, and a task
it keeps local stops with its web process, as the goodbye says; a bad override stops start-up."""

import asyncio
import secrets
import socket
from typing import Any

from mcp_server.processes import run_command
from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import (
    LONG_BATCH,
    WAIT,
    Cluster,
    is_progress,
    next_matching,
    sigterm_goodbye,
)
from tests.e2e.support import (
    PROJECT_DIR,
    PYTHON,
    RawClient,
    error_of,
    raw_client,
    raw_connection,
    result_of,
    start_server,
    wait_until,
)

OVERRIDE = "add=worker,process_batch=local"


def _runner(pid: int) -> str:
    """How history names the process `pid` of this machine."""
    return f"{socket.gethostname()}:{pid}"


def _ran_on(cluster: Cluster, tool: str, arguments: dict[str, Any]) -> str:
    """The process that ran the call of `tool` with `arguments`, once history has its row."""
    rows: list[dict[str, Any]] = []

    def recorded() -> bool:
        rows[:] = cluster.deployment.sql(
            "SELECT runner, status FROM mcp_server_operation WHERE tool = %s AND arguments = %s",
            [tool, arguments],
        )
        return bool(rows) and rows[0]["status"] == "succeeded"

    wait_until(recorded, WAIT, f"history's row of {tool}({arguments})")
    assert len(rows) == 1, rows
    return str(rows[0]["runner"])


def _unique_add() -> dict[str, Any]:
    return {"a": secrets.randbelow(10**9), "b": 1}


async def test_by_default_add_runs_in_the_web_process_and_process_batch_on_the_worker(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    web1 = cluster.web[0]
    add = _unique_add()
    batch = {"count": 2, "item_ms": secrets.randbelow(1000) / 1000}
    async with raw_client(web1, cluster_accounts.alice) as client:
        added = result_of(await client.call_tool("add", add))
        assert added["structuredContent"] == {"result": add["a"] + 1}
        processed = result_of(await client.call_tool("process_batch", batch))
        assert processed["structuredContent"]["processed"] == 2
    assert await asyncio.to_thread(_ran_on, cluster, "add", add) == _runner(web1.process.pid)
    on_worker = _runner(cluster.workers[0].process.pid)
    assert await asyncio.to_thread(_ran_on, cluster, "process_batch", batch) == on_worker


async def test_an_override_moves_tools_and_a_local_task_stops_with_its_web_process(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    moved = await asyncio.to_thread(
        start_server, cluster.deployment, {**cluster.env, "MCP_TOOL_PLACEMENT": OVERRIDE}
    )
    try:
        add = _unique_add()
        async with raw_connection(moved.ws_url(cluster_accounts.alice)) as ws:
            client = RawClient(ws)
            await client.initialize()
            assert result_of(await client.call_tool("add", add))["structuredContent"]
            task = result_of(
                await client.request(
                    "tools/call",
                    {
                        "name": "process_batch",
                        "arguments": LONG_BATCH,
                        "task": {},
                        "_meta": {"progressToken": "here"},
                    },
                )
            )["task"]
            await next_matching(client, is_progress("here"), WAIT)
            goodbye = await sigterm_goodbye(client, moved)
            assert goodbye["interruptedTasks"] == [task["taskId"]]
            assert "1 running on this server are interrupted" in goodbye["message"]
        await asyncio.to_thread(moved.process.wait, WAIT)
        on_worker = _runner(cluster.workers[0].process.pid)
        assert await asyncio.to_thread(_ran_on, cluster, "add", add) == on_worker
        rows = cluster.deployment.sql(
            "SELECT runner, status FROM mcp_server_operation WHERE id = %s", [task["taskId"]]
        )
        assert rows == [{"runner": _runner(moved.process.pid), "status": "interrupted"}]
        async with raw_client(cluster.web[1], cluster_accounts.alice) as other:
            error = error_of(await other.request("tasks/result", {"taskId": task["taskId"]}))
            assert error["data"]["status"] == "interrupted"
    finally:
        moved.stop()


def test_a_bad_override_stops_start_up_naming_it(cluster: Cluster) -> None:
    env = {**cluster.deployment.env, "MCP_TOOL_PLACEMENT": "add=worker,ad=local"}
    done = run_command([PYTHON, "manage.py", "serve", "--port", "0"], env=env, cwd=PROJECT_DIR)
    assert done.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: MCP_TOOL_PLACEMENT: no tool is called 'ad'"
    ) in done.stderr, done.stderr
