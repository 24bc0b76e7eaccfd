"""Metrics of a cluster: two web processes and a worker add up in one scrape of either."""

import functools

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import WAIT, Cluster
from tests.e2e.metrics_support import Scrape, scraped
from tests.e2e.support import ServerProcess, raw_client, result_of, wait_until

CALLS = "mcp_tool_call_duration_seconds_count"


def totals(answer: Scrape) -> tuple[float, ...]:
    return (
        answer.value("mcp_connections_open", transport="websocket"),
        answer.value("mcp_requests_total", method="tools/call", outcome="ok"),
        answer.value(CALLS, tool="echo", status="succeeded"),
        answer.value(CALLS, tool="process_batch", status="succeeded"),
        answer.value("mcp_worker_handoff_lag_seconds_count"),
    )


async def test_two_web_processes_and_a_worker_add_up_in_one_scrape(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    web1, web2 = cluster.web
    wait_until(functools.partial(_settled, cluster), WAIT, "the calls of earlier tests to end")
    before = totals(scraped(web1))
    async with (
        raw_client(web1, cluster_accounts.alice) as first,
        raw_client(web2, cluster_accounts.bob) as second,
    ):
        for client in (first, second):
            assert result_of(await client.call_tool("echo", {"text": "x"}))["content"]
            batch = result_of(await client.call_tool("process_batch", {"count": 1}))
            assert batch["structuredContent"]["processed"] == 1
        # Each web process answered two calls and ran echo, the worker ran both batches:
        # either scrape sees all (a process's request counts reach the files within a
        # heartbeat round).
        for web in (web1, web2):
            wait_until(
                functools.partial(_adds_up, web, before),
                WAIT,
                f"the scrape of web {web.port} to add up every process",
            )


def _adds_up(web: ServerProcess, before: tuple[float, ...]) -> bool:
    now = totals(scraped(web))
    return tuple(value - then for value, then in zip(now, before, strict=True)) == (2, 4, 2, 2, 2)


def _settled(cluster: Cluster) -> bool:
    """Whether every call of earlier tests is counted: a scrape first writes the scraped web
    process's own buffered counts; a worker writes its counts at its heartbeat round, the
    round that also samples how many calls it runs, so once no process runs or queues a
    call, the worker's counts are written too."""
    for web in cluster.web:
        scraped(web)
    answer = scraped(cluster.web[0])
    return answer.value("mcp_operations_running") == 0 and answer.value("mcp_queue_depth") == 0
