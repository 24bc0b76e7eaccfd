"""After a Redis outage the cluster recovers by itself: a web process and a worker on a
`redis-server` of the test's own, which it stops and starts again (empty, as a restarted Redis
without persistence is). Open sockets stay; calls handed to workers and broadcasts cross
processes again once Redis is back; each process logs the outage once."""

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import WAIT, next_matching, start_worker
from tests.e2e.support import (
    Deployment,
    RawClient,
    RedisProcess,
    ServerProcess,
    free_port,
    raw_client,
    result_of,
    start_server,
    wait_until,
)

RECOVERY_TIMEOUT = 60.0

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A running redis-server of this test only."""
    redis = RedisProcess(port=free_port(), root=tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def wait_ready(server: ServerProcess, ready: bool) -> None:
    """Wait (off the event loop) until /readyz says ready, or says not."""
    await asyncio.to_thread(
        wait_until,
        lambda: (server.get_json("/readyz")[0] == 200) is ready,
        RECOVERY_TIMEOUT,
        "readyz 200" if ready else "readyz to report the outage",
    )


async def assert_crosses_processes(
    deployment: Deployment, clients: list[RawClient], text: str
) -> None:
    """A call handed to the worker comes back, and a broadcast reaches every client."""
    product = result_of(await clients[-1].call_tool("multiply", {"a": 6, "b": 7}))
    assert product["structuredContent"] == {"result": 42}
    await asyncio.to_thread(deployment.manage, "broadcast", text)
    for client in clients:
        message = await next_matching(
            client,
            lambda m: (
                m.get("method") == "notifications/message"
                and m["params"].get("logger") == "broadcast"
            ),
            WAIT,
        )
        assert message["params"]["data"] == text


async def test_calls_and_broadcasts_cross_processes_again_after_a_redis_outage(
    cluster_deployment: Deployment,
    cluster_accounts: ClusterAccounts,
    private_redis: RedisProcess,
) -> None:
    deployment = dataclasses.replace(
        cluster_deployment, env={**cluster_deployment.env, "REDIS_URL": private_redis.url}
    )
    web = start_server(deployment)
    worker = start_worker(deployment, {})
    try:
        async with raw_client(web, cluster_accounts.alice) as before:
            await assert_crosses_processes(deployment, [before], "before the outage")
            private_redis.stop()
            await wait_ready(web, False)
            await before.assert_answers_ping()
            private_redis.start()
            await wait_ready(web, True)
            await before.assert_answers_ping()
            async with raw_client(web, cluster_accounts.alan) as after:
                await assert_crosses_processes(deployment, [before, after], "after the outage")
    finally:
        worker.stop()
        web.stop()
    for log in (web.log_text(), worker.log_text()):
        assert log.count("Redis (channel layer) unreachable") == 1, log
        assert log.count("Redis (channel layer) reachable again") == 1, log
        assert "Exception in ASGI application" not in log, log
