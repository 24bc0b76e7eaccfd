"""Dispatch across real workers: one web process and two `runoperations` workers with one slot
each, on Redis and PostgreSQL. Work is pulled (a busy worker never holds a call another could
run), the round robin across tenants is the cluster's, and after `kill -9` of a worker its
idempotent call runs again on the other one while any other call is interrupted, never run
twice. A worker whose event loop gets no turn for longer than its stamp lives (busy, starved)
keeps its calls; one whose loop is hung past MCP_WORKER_HUNG_AFTER loses them as if killed."""

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
import redis

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import (
    CLUSTER_REDIS_URL,
    HUNG_AFTER,
    LOST_AFTER,
    WAIT,
    Cluster,
    WorkerProcess,
    is_response,
    next_matching,
    send_request,
)
from tests.e2e.support import (
    Deployment,
    RawClient,
    error_of,
    raw_client,
    result_of,
    start_server,
    wait_until,
)

DISPATCH_APPS = "example_tools,tests.cluster.dispatch_app"
# Long enough never to end within a test by itself.
FOREVER_MS = 600_000
# A dead worker's calls are taken over within the bound; the slack of a loaded machine on top.
TOLD_WITHIN = LOST_AFTER + WAIT


@pytest.fixture(scope="module")
def dispatch_cluster(
    cluster_deployment: Deployment, cluster_accounts: ClusterAccounts
) -> Iterator[Cluster]:
    """One web process and two workers of one slot each, on a channel prefix of their own
    (no other test's worker takes these calls) and metrics of their own (a worker killed
    mid-call leaves its gauges behind, which test_metrics' sums must not see)."""
    metrics = cluster_deployment.root / "metrics-dispatch"
    metrics.mkdir(exist_ok=True)
    deployment = cluster_deployment.with_env(
        {
            "MCP_TOOL_APPS": DISPATCH_APPS,
            "MCP_CHANNEL_PREFIX": f"test-{secrets.token_hex(4)}",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }
    )
    cluster = Cluster(deployment=deployment, env={"MCP_MAX_OPERATIONS": "1"})
    try:
        cluster.web = [start_server(deployment, cluster.env)]
        cluster.ensure_workers(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def two_workers(dispatch_cluster: Cluster) -> Cluster:
    """The cluster with two live workers (one a previous test killed is replaced)."""
    dispatch_cluster.ensure_workers(2)
    return dispatch_cluster


def _marks(cluster: Cluster, operation_id: str) -> dict[int, int]:
    """The runs of one call so far: the pid of each worker that ran it, and when it began."""
    marks = cluster.deployment.root / "dispatch-marks" / operation_id
    runs: dict[int, int] = {}
    for mark in marks.iterdir() if marks.is_dir() else ():
        text = mark.read_text()
        if text:  # an empty mark is being written: read again later
            runs[int(mark.name)] = int(text)
    return runs


def _row(cluster: Cluster, **where: Any) -> list[dict[str, Any]]:
    conditions = " AND ".join(f"{key} = %s" for key in where)
    return cluster.deployment.sql(
        "SELECT id, status, runner, message, error, arguments, started_at, heartbeat_at "
        "FROM mcp_server_operation "
        f"WHERE {conditions} ORDER BY queued_at",
        list(where.values()),
    )


def _status_is(cluster: Cluster, operation_id: Any, status: str) -> Callable[[], bool]:
    """A predicate: history has the operation with `status`."""
    return lambda: _row(cluster, id=operation_id)[0]["status"] == status


def _running(cluster: Cluster, tool: str, ms: int) -> dict[str, Any]:
    """The one running call of `tool` for `ms`, once a worker has begun it."""

    def begun() -> bool:
        rows = [r for r in _row(cluster, tool=tool, status="running") if r["arguments"]["ms"] == ms]
        return len(rows) == 1 and bool(_marks(cluster, str(rows[0]["id"])))

    wait_until(begun, WAIT, f"a worker to begin the {tool} call")
    (row,) = [r for r in _row(cluster, tool=tool, status="running") if r["arguments"]["ms"] == ms]
    return row


def _worker_of(cluster: Cluster, row: dict[str, Any]) -> WorkerProcess:
    (worker,) = [w for w in cluster.workers if row["runner"].endswith(f":{w.process.pid}")]
    return worker


def _ran_on(result: dict[str, Any]) -> int:
    """The pid of the worker whose run of `hold` gave `result`."""
    return int(json.loads(result["content"][0]["text"])["pid"])


async def _call(client: RawClient, tool: str, ms: int, *, task: bool = False) -> int:
    params: dict[str, Any] = {"name": tool, "arguments": {"ms": ms}}
    if task:
        params["task"] = {}
    return await send_request(client, "tools/call", params)


async def _cancel(client: RawClient, request_id: int) -> None:
    await client.notify("notifications/cancelled", {"requestId": request_id})


async def test_a_call_runs_on_the_idle_worker_while_the_other_is_busy(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        long_id = await _call(client, "hold", FOREVER_MS)
        held = _running(two_workers, "hold", FOREVER_MS)
        busy = _worker_of(two_workers, held)
        (idle,) = [w for w in two_workers.workers if w is not busy]
        for _ in range(3):  # each would wait forever behind the long call on a hoarding worker
            short_id = await _call(client, "hold", 1)
            answer = result_of(await next_matching(client, is_response(short_id), WAIT))
            assert _ran_on(answer) == idle.process.pid
        await _cancel(client, long_id)
        wait_until(
            _status_is(two_workers, held["id"], "cancelled"),
            WAIT,
            "the long call cancelled",
        )


async def test_a_second_tenant_is_served_next_not_after_the_first_tenants_queue(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with (
        raw_client(two_workers.web[0], cluster_accounts.alice) as alice,
        raw_client(two_workers.web[0], cluster_accounts.bob) as bob,
    ):
        # Both workers busy with alice's first two calls, then five more of hers queued (as
        # tasks: answered once queued), then one of bob's.
        holding = [await _call(alice, "hold", 3000 + n) for n in range(2)]
        for n in range(2):
            _running(two_workers, "hold", 3000 + n)
        queued = []
        for n in range(5):
            request_id = await _call(alice, "hold", 100 + n, task=True)
            queued.append(result_of(await next_matching(alice, is_response(request_id), WAIT)))
        request_id = await _call(bob, "hold", 99, task=True)
        bobs = result_of(await next_matching(bob, is_response(request_id), WAIT))
        for request_id in holding:
            result_of(await next_matching(alice, is_response(request_id), 2 * WAIT))
    tasks = [t["task"]["taskId"] for t in [*queued, bobs]]

    def all_ended() -> bool:
        return all(_row(two_workers, id=t)[0]["status"] == "succeeded" for t in tasks)

    wait_until(all_ended, 2 * WAIT, "every queued call to end")
    began = {t: min(_marks(two_workers, t).values()) for t in tasks}
    order = sorted(tasks, key=began.__getitem__)
    # Round robin across tenants, cluster-wide: at most one more of alice's goes first.
    assert order.index(bobs["task"]["taskId"]) <= 1, order


async def test_kill_9_runs_an_idempotent_call_again_on_the_other_worker(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await _call(client, "hold_idempotent", 4000)
        row = _running(two_workers, "hold_idempotent", 4000)
        victim = _worker_of(two_workers, row)
        (survivor,) = [w for w in two_workers.workers if w is not victim]
        victim.kill()
        response = await next_matching(client, is_response(call_id), TOLD_WITHIN + WAIT)
    assert _ran_on(result_of(response)) == survivor.process.pid
    runs = _marks(two_workers, str(row["id"]))
    assert set(runs) == {victim.process.pid, survivor.process.pid}
    # History is written within its flush interval of the response.
    wait_until(_status_is(two_workers, row["id"], "succeeded"), WAIT, "the run in history")
    (ended,) = _row(two_workers, id=row["id"])
    assert ended["runner"].endswith(f":{survivor.process.pid}"), ended
    assert "runs again here" in survivor.log_text()


async def test_kill_9_interrupts_a_call_that_is_not_idempotent_and_never_runs_it_again(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await _call(client, "hold", FOREVER_MS - 1)
        row = _running(two_workers, "hold", FOREVER_MS - 1)
        victim = _worker_of(two_workers, row)
        victim.kill()
        error = error_of(await next_matching(client, is_response(call_id), TOLD_WITHIN))
    assert error["data"]["status"] == "interrupted", error
    (ended,) = _row(two_workers, id=row["id"])
    assert ended["status"] == "interrupted"  # written before it is told
    assert "is not idempotent" in ended["error"] or "stopped responding" in ended["error"]
    assert set(_marks(two_workers, str(row["id"]))) == {victim.process.pid}


# Longer than a worker's stamp lives (half the bound) and than its rows go unreaped (the bound
# minus two heartbeat rounds); half as long as a hung loop's bound.
HELD_MS = int(LOST_AFTER * 1000)


async def test_a_worker_whose_event_loop_is_held_past_its_stamps_life_keeps_its_call(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await _call(client, "hold_the_loop", HELD_MS)
        response = await next_matching(client, is_response(call_id), HELD_MS / 1000 + TOLD_WITHIN)
    ran_on = _ran_on(result_of(response))

    # History is written within its flush interval of the response.
    def written() -> bool:
        rows = _rows_of(two_workers, "hold_the_loop", HELD_MS)
        return [r["status"] for r in rows] == ["succeeded"]

    wait_until(written, WAIT, "the run in history, succeeded")
    (row,) = _rows_of(two_workers, "hold_the_loop", HELD_MS)
    # Its worker's stamp stayed (the keep-alive thread): nobody took the call over.
    assert set(_marks(two_workers, str(row["id"]))) == {ran_on}
    taken_over = [
        line
        for worker in two_workers.workers
        for line in worker.log_text().splitlines()
        if str(row["id"]) in line and "stopped responding" in line
    ]
    assert not taken_over


async def test_a_worker_whose_event_loop_hangs_past_the_bound_loses_its_call(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await _call(client, "hold_the_loop", FOREVER_MS - 2)
        response = await next_matching(client, is_response(call_id), HUNG_AFTER + TOLD_WITHIN)
    (row,) = _rows_of(two_workers, "hold_the_loop", FOREVER_MS - 2)
    (hung_pid,) = _marks(two_workers, str(row["id"]))
    (hung,) = [w for w in two_workers.workers if w.process.pid == hung_pid]
    try:
        error = error_of(response)
        assert error["data"]["status"] == "interrupted", error
        assert "is not idempotent" in row["error"] or "stopped responding" in row["error"], row
        assert "its event loop has had no turn" in hung.log_text()
    finally:
        hung.kill()  # it would hold its loop for ten minutes


def _entries(cluster: Cluster) -> int:
    """How many calls the cluster's dispatch streams hold (waiting or taken)."""
    prefix = cluster.deployment.env["MCP_CHANNEL_PREFIX"]
    with closing(redis.Redis.from_url(CLUSTER_REDIS_URL)) as client:
        return sum(client.xlen(key) for key in client.scan_iter(f"{prefix}:dispatch:q:*"))


def _rows_of(cluster: Cluster, tool: str, ms: int) -> list[dict[str, Any]]:
    return [r for r in _row(cluster, tool=tool) if r["arguments"]["ms"] == ms]


async def test_a_plain_call_has_one_row_written_with_its_end_and_no_claim(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        answer = result_of(
            await next_matching(client, is_response(await _call(client, "hold", 7)), WAIT)
        )

    def written() -> bool:
        return [r["status"] for r in _rows_of(two_workers, "hold", 7)] == ["succeeded"]

    wait_until(written, WAIT, "the call's row")
    (row,) = _rows_of(two_workers, "hold", 7)
    # Inserted ended by its worker: never stamped alive by a claim or a heartbeat.
    assert row["heartbeat_at"] is None, row
    assert row["started_at"] is not None, row
    assert row["runner"].endswith(f":{_ran_on(answer)}"), row
    assert set(_marks(two_workers, str(row["id"]))) == {_ran_on(answer)}


async def test_a_call_cancelled_before_a_worker_takes_it_never_runs(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        holding = []
        for n in range(2):  # both workers busy
            holding.append(await _call(client, "hold", FOREVER_MS - 30 - n))
            _running(two_workers, "hold", FOREVER_MS - 30 - n)
        waiting_id = await _call(client, "hold", FOREVER_MS - 40)
        # Cancelled once it waits on the streams (sooner, it would never reach them at all).
        wait_until(lambda: _entries(two_workers) == 3, WAIT, "the call put on the streams")
        await _cancel(client, waiting_id)

        def cancelled() -> bool:
            return [r["status"] for r in _rows_of(two_workers, "hold", FOREVER_MS - 40)] == [
                "cancelled"
            ]

        wait_until(cancelled, WAIT, "the waiting call's row, cancelled")
        for request_id in holding:
            await _cancel(client, request_id)
        # The workers are free again and take what comes next, never the cancelled call.
        for n in range(2):
            short_id = await _call(client, "hold", 10 + n)
            result_of(await next_matching(client, is_response(short_id), WAIT))
    (row,) = _rows_of(two_workers, "hold", FOREVER_MS - 40)
    assert row["status"] == "cancelled"
    assert row["started_at"] is None, row
    assert _marks(two_workers, str(row["id"])) == {}


async def test_a_tenant_past_its_queue_bound_is_refused_with_a_clear_error(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    bounded = start_server(
        two_workers.deployment, {**two_workers.env, "MCP_DISPATCH_QUEUE_PER_TENANT": "1"}
    )
    try:
        async with raw_client(bounded, cluster_accounts.alice) as client:
            # One after the other: a call waiting for a worker counts against the bound of 1.
            holding, rows = [], []
            for n in range(2):
                holding.append(await _call(client, "hold", FOREVER_MS - 10 - n))
                rows.append(_running(two_workers, "hold", FOREVER_MS - 10 - n))
            # Both workers busy: one call of alpha's may wait, the next is refused.
            request_id = await _call(client, "hold", 1, task=True)
            waiting = result_of(await next_matching(client, is_response(request_id), WAIT))
            refused_id = await _call(client, "hold", 2)
            error = error_of(await next_matching(client, is_response(refused_id), WAIT))
            assert error["code"] == -32001, error
            assert "wait for a worker (at most 1)" in error["message"], error
            assert error["data"]["limit"] == "dispatch_queue_per_tenant", error
            # Another tenant is not held to alpha's bound.
            async with raw_client(bounded, cluster_accounts.bob) as bob:
                bobs_id = await _call(bob, "hold", 3, task=True)
                result_of(await next_matching(bob, is_response(bobs_id), WAIT))
            for request_id in holding:
                await _cancel(client, request_id)
            for row in rows:
                wait_until(
                    _status_is(two_workers, row["id"], "cancelled"),
                    WAIT,
                    "the long calls cancelled",
                )
            wait_until(
                _status_is(two_workers, waiting["task"]["taskId"], "succeeded"),
                WAIT,
                "the waiting call to run once a worker was free",
            )
    finally:
        bounded.stop()
