"""Fan-out across real workers: one web process and two `runoperations` workers (one pool
process each) on Redis and PostgreSQL. One call's chunks run on both workers; another
tenant's chunks take their turn with a long call's; a cancel stops them all; `kill -9` of a
worker mid-call re-runs its chunks for an idempotent tool (`process_images`) and interrupts a
tool that is not (`fan_out_marks`)."""

import asyncio
import contextlib
import functools
import json
import secrets
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import (
    LOST_AFTER,
    WAIT,
    WORKER_START_TIMEOUT,
    Cluster,
    WorkerProcess,
    is_progress,
    is_response,
    next_matching,
    send_request,
    start_worker,
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

FANOUT_APPS = "example_tools,tests.cluster.fanout_app"
IMAGES = 4000
IN_FLIGHT = 64
CHUNKS_READY_LINE = "takes chunks from the dispatch streams"
# A dead worker's chunks are noticed within the bound; the slack of a loaded machine on top.
TOLD_WITHIN = LOST_AFTER + WAIT


@pytest.fixture(scope="module")
def fanout_deployment(cluster_deployment: Deployment, cluster_accounts: ClusterAccounts):
    """The cluster's installation with the fan-out fixture tool, on a channel prefix of its
    own (no other test's worker takes these chunks), and demo images for alpha."""
    deployment = cluster_deployment.with_env(
        {
            "MCP_TOOL_APPS": FANOUT_APPS,
            "MCP_CHANNEL_PREFIX": f"test-{secrets.token_hex(4)}",
            "MCP_FANOUT_PROCESSES": "1",
            # Many chunks of a call wait in its stream at once: what the fair order is about.
            "MCP_FANOUT_CHUNKS_IN_FLIGHT": str(IN_FLIGHT),
        }
    )
    deployment.manage(
        "make_demo_images", "--tenant", "alpha", "--count", str(IMAGES), "--dir", "fan"
    )
    return deployment


def _chunk_worker(deployment: Deployment) -> WorkerProcess:
    """A worker whose pool runs: it takes chunks."""
    worker = start_worker(deployment, {})
    worker.managed.wait_log_line(CHUNKS_READY_LINE, WORKER_START_TIMEOUT)
    return worker


@pytest.fixture(scope="module")
def fanout_cluster(fanout_deployment: Deployment) -> Iterator[Cluster]:
    """One web process and two workers."""
    cluster = Cluster(deployment=fanout_deployment, env={})
    try:
        cluster.web = [start_server(fanout_deployment, {})]
        cluster.workers = [_chunk_worker(fanout_deployment) for _ in range(2)]
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def two_workers(fanout_cluster: Cluster) -> Cluster:
    """The cluster with two live workers (a worker a previous test killed is replaced)."""
    alive = [worker for worker in fanout_cluster.workers if worker.is_alive()]
    while len(alive) < 2:
        alive.append(_chunk_worker(fanout_cluster.deployment))
    fanout_cluster.workers = alive
    return fanout_cluster


def _row(deployment: Deployment, tool: str) -> dict[str, Any]:
    rows = deployment.sql(
        "SELECT id, status, runner, message, error, error_count FROM mcp_server_operation "
        "WHERE tool = %s ORDER BY queued_at DESC LIMIT 1",
        [tool],
    )
    assert rows, f"no {tool} call in history"
    return rows[0]


def _latest_status(deployment: Deployment, tool: str) -> str | None:
    """The status of the latest `tool` call in history (None: none yet)."""
    query = "SELECT status FROM mcp_server_operation WHERE tool = %s ORDER BY queued_at DESC"
    rows = deployment.sql(query + " LIMIT 1", [tool])
    return rows[0]["status"] if rows else None


def _row_written(deployment: Deployment, tool: str) -> Callable[[], bool]:
    """A predicate: the running `tool` call has its row (a plain call on a worker gets it at
    its worker's first history round; the module's earlier calls have ended)."""
    query = "SELECT 1 FROM mcp_server_operation WHERE tool = %s AND status = 'running'"
    return lambda: bool(deployment.sql(query, [tool]))


def _logged(worker: WorkerProcess, text: str) -> Callable[[], bool]:
    return lambda: text in worker.log_text()


def _pid(worker: WorkerProcess) -> str:
    return f":{worker.process.pid}"


def _other_worker(cluster: Cluster, tool: str) -> WorkerProcess:
    """The worker that does not run the running call itself (only some of its chunks)."""

    def running_on() -> list[str]:
        rows = cluster.deployment.sql(
            "SELECT runner FROM mcp_server_operation WHERE tool = %s AND status = 'running'",
            [tool],
        )
        return [row["runner"] for row in rows]

    def claimed() -> bool:
        return any(r.endswith(_pid(w)) for r in running_on() for w in cluster.workers)

    wait_until(claimed, WAIT, "a worker claimed the call")
    (runner,) = running_on()
    (other,) = [w for w in cluster.workers if not runner.endswith(_pid(w))]
    return other


async def _images_call(client: RawClient, token: str) -> int:
    return await send_request(
        client,
        "tools/call",
        {
            "name": "process_images",
            "arguments": {"directory": "fan", "thumbnail_size": 32},
            "_meta": {"progressToken": token},
        },
    )


def _check_every_image_accounted_for(
    cluster: Cluster, summary: dict[str, Any], token: str
) -> dict[str, Any]:
    assert summary["total"] == IMAGES
    assert summary["succeeded"] + summary["errors"] == IMAGES
    row = _row(cluster.deployment, "process_images")
    assert row["status"] == "succeeded"
    assert row["error_count"] == summary["errors"]
    status, logged = cluster.web[0].get_json(summary["error_log"], token)
    assert status == 200
    assert len(logged) == summary["errors"], "an item error recorded twice or lost"
    output = cluster.deployment.root / "data" / "alpha" / summary["thumbnails"]
    assert len(list(output.glob("*.jpg"))) == summary["succeeded"]
    assert not list(output.glob(".*.tmp"))
    return row


async def test_one_process_images_runs_its_chunks_on_both_workers(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await _images_call(client, "p")
        response = await next_matching(client, is_response(call_id), 4 * WAIT)
        summary = result_of(response)["structuredContent"]
    row = _check_every_image_accounted_for(two_workers, summary, cluster_accounts.alice)
    # History's last message names the processes that ran chunks: both workers.
    for worker in two_workers.workers:
        assert _pid(worker) + " (" in row["message"], row["message"]
    assert "re-run" not in row["message"]


async def test_cancel_stops_every_chunk_on_every_worker(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await send_request(
            client,
            "tools/call",
            {
                "name": "fan_out_marks",
                "arguments": {"count": 2000, "item_ms": 200},
                "_meta": {"progressToken": "c"},
            },
        )
        await next_matching(client, is_progress("c"), WAIT)
        deployment = two_workers.deployment
        # Cancelled once each worker has run a chunk of it (and so holds some: 400 chunks,
        # eight in flight), not at its first progress, which may come before the second
        # worker's first take. A chunk runs 1 s: a worker holds none only if its loop took
        # no chunk for two of them, which a loaded machine did to 100 ms chunks.
        wait_until(_row_written(deployment, "fan_out_marks"), WAIT, "its row")
        operation = str(_row(deployment, "fan_out_marks")["id"])
        marks = deployment.root / "fanout-marks" / operation
        for worker in two_workers.workers:
            wait_until(
                functools.partial(_marked_by, marks, worker), WAIT, "each worker to run a chunk"
            )
        await client.notify("notifications/cancelled", {"requestId": call_id, "reason": "enough"})
        wait_until(
            lambda: _latest_status(deployment, "fan_out_marks") == "cancelled",
            WAIT,
            "the call cancelled in history",
        )
        # Each worker stops the chunks it held (running ones at their next item).
        for worker in two_workers.workers:
            wait_until(
                _logged(worker, f"of operation {operation} cancelled"),
                WAIT,
                "a worker's chunks of the call cancelled",
            )
        # Its progress sent before the cancel (newest every interval) may still be on the way.
        await client.assert_answers_ping(passing=is_progress("c"))

        async def through_both_pools() -> int:
            # Four chunks, two at most held by a worker: each worker's one pool process runs
            # one of them, which it starts only once the chunk it ran before has stopped.
            after = await client.request(
                "tools/call", {"name": "fan_out_marks", "arguments": {"count": 20, "item_ms": 1}}
            )
            assert json.loads(result_of(after)["content"][0]["text"])["done"] == 20
            return len(list(marks.iterdir()))

        ran = await through_both_pools()
        assert ran < 2000 / 2
        # Nothing of it runs on once its chunks have stopped.
        assert await through_both_pools() == ran


async def test_another_tenants_chunks_take_their_turn_with_a_long_calls(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    deployment = two_workers.deployment
    async with (
        raw_client(two_workers.web[0], cluster_accounts.alice) as alice,
        raw_client(two_workers.web[0], cluster_accounts.bob) as bob,
    ):
        # Alpha's call: 400 chunks of 100 ms, 64 of them out at once, 4 held by the workers.
        long_id = await send_request(
            alice,
            "tools/call",
            {
                "name": "fan_out_marks",
                "arguments": {"count": 2000, "item_ms": 20},
                "_meta": {"progressToken": "long"},
            },
        )
        await next_matching(alice, is_progress("long"), WAIT)
        wait_until(_row_written(deployment, "fan_out_marks"), WAIT, "the long call's row")
        long_op = str(_row(deployment, "fan_out_marks")["id"])
        marks = deployment.root / "fanout-marks" / long_op
        before = len(list(marks.iterdir()))
        # Beta's four chunks are taken at the workers' next takes, ahead of the 60 of alpha's
        # that waited first (first in, first out, they would wait for 300 of alpha's items).
        short = await bob.request(
            "tools/call", {"name": "fan_out_marks", "arguments": {"count": 20, "item_ms": 1}}
        )
        ran_meanwhile = len(list(marks.iterdir())) - before
        assert json.loads(result_of(short)["content"][0]["text"])["done"] == 20
        assert ran_meanwhile < 100, f"{ran_meanwhile} of alpha's items ran while beta's waited"
        await alice.notify("notifications/cancelled", {"requestId": long_id, "reason": "done"})
        status = "SELECT status FROM mcp_server_operation WHERE id = %s"
        wait_until(
            lambda: deployment.sql(status, [long_op])[0]["status"] == "cancelled",
            WAIT,
            "the long call cancelled",
        )


async def test_kill_9_of_a_worker_mid_process_images_reruns_its_chunks(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await _images_call(client, "k")
        victim = _other_worker(two_workers, "process_images")
        progress = await next_matching(client, is_progress("k"), WAIT)
        while progress["params"]["progress"] == 0:  # "found N files": no chunk done yet
            progress = await next_matching(client, is_progress("k"), WAIT)
        assert progress["params"]["progress"] < IMAGES / 2
        victim.kill()
        response = await next_matching(client, is_response(call_id), 4 * WAIT + TOLD_WITHIN)
        summary = result_of(response)["structuredContent"]
    row = _check_every_image_accounted_for(two_workers, summary, cluster_accounts.alice)
    assert "re-run after their worker was lost: chunks " in row["message"], row["message"]


async def test_sigterm_of_a_worker_mid_process_images_lets_its_chunks_finish(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await _images_call(client, "t")
        leaving = _other_worker(two_workers, "process_images")
        progress = await next_matching(client, is_progress("t"), WAIT)
        while progress["params"]["progress"] == 0:
            progress = await next_matching(client, is_progress("t"), WAIT)
        leaving.process.send_signal(signal.SIGTERM)
        response = await next_matching(client, is_response(call_id), 4 * WAIT)
        summary = result_of(response)["structuredContent"]
    await asyncio.to_thread(leaving.process.wait, WAIT)
    assert leaving.process.returncode == 0, leaving.log_text()
    row = _check_every_image_accounted_for(two_workers, summary, cluster_accounts.alice)
    # Its chunks ended within the grace period: none was lost, none ran twice.
    assert "re-run" not in row["message"], row["message"]


async def test_kill_9_of_a_worker_mid_fan_out_of_another_tool_interrupts_the_call(
    two_workers: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    async with raw_client(two_workers.web[0], cluster_accounts.alice) as client:
        call_id = await send_request(
            client,
            "tools/call",
            {
                "name": "fan_out_marks",
                # Five seconds a chunk: a worker that has marked the first item of its first
                # chunk still holds that chunk for four seconds.
                "arguments": {"count": 200, "item_ms": 1000},
                "_meta": {"progressToken": "n"},
            },
        )
        victim = _other_worker(two_workers, "fan_out_marks")
        await next_matching(client, is_progress("n"), WAIT)
        # Killed only once it holds a chunk (its first item is marked): a worker still
        # waiting for its first chunk, or between two with items of 20 ms (as this test had,
        # and a fresh-clone CI hit), loses nothing, and the call would just go on.
        wait_until(_row_written(two_workers.deployment, "fan_out_marks"), WAIT, "its row")
        operation = str(_row(two_workers.deployment, "fan_out_marks")["id"])
        marks = two_workers.deployment.root / "fanout-marks" / operation
        wait_until(
            lambda: _marked_by(marks, victim), WAIT, "the other worker to run a chunk of the call"
        )
        victim.kill()
        error = error_of(await next_matching(client, is_response(call_id), TOLD_WITHIN))
    assert error["data"]["status"] == "interrupted", error
    assert "was lost with its worker" in error["message"], error
    # History is written within its flush interval of the response.
    deployment = two_workers.deployment
    wait_until(
        lambda: _row(deployment, "fan_out_marks")["status"] == "interrupted",
        WAIT,
        "the call interrupted in history",
    )
    row = _row(deployment, "fan_out_marks")
    assert f"was lost with its worker {victim_name(row, victim)}" in row["error"]


def _marked_by(marks: Path, worker: WorkerProcess) -> bool:
    """Whether one of the call's items was marked by a pool process of `worker`."""
    pid = str(worker.process.pid)
    for item in marks.iterdir() if marks.is_dir() else ():
        with contextlib.suppress(OSError):  # being written: an empty mark is read again later
            if item.read_text() == pid:
                return True
    return False


def victim_name(row: dict[str, Any], victim: WorkerProcess) -> str:
    """The killed worker as history names it (host:pid, the host being the coordinator's)."""
    host = row["runner"].rsplit(":", 1)[0]
    return f"{host}:{victim.process.pid}"
