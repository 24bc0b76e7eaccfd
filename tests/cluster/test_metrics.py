"""Metrics of a cluster: two web processes and a worker add up in one scrape of either, read
as one tenant's series (the cluster labels them by tenant), so other tests' calls, ended or
still running, count elsewhere."""

import functools

from tests.cluster.support import WAIT, Cluster, member_of_a_new_tenant
from tests.e2e.metrics_support import Scrape, scraped
from tests.e2e.support import ServerProcess, raw_client, result_of, wait_until

CALLS = "mcp_tool_call_duration_seconds_count"
HANDOFFS = "mcp_worker_handoff_lag_seconds_count"
# Per tenant: two connections, each with two tool calls answered, echo run by the web process
# and process_batch by the worker.
EXPECTED = (2, 4, 2, 2)


def tenant_totals(answer: Scrape, tenant: str) -> tuple[float, ...]:
    """The tenant's open connections, calls answered, echo and process_batch calls done."""
    return (
        answer.value("mcp_connections_open", transport="websocket", tenant=tenant),
        answer.value("mcp_requests_total", method="tools/call", outcome="ok", tenant=tenant),
        answer.value(CALLS, tool="echo", status="succeeded", tenant=tenant),
        answer.value(CALLS, tool="process_batch", status="succeeded", tenant=tenant),
    )


async def test_two_web_processes_and_a_worker_add_up_in_one_scrape(cluster: Cluster) -> None:
    slug, token = member_of_a_new_tenant(cluster, "metrics")
    web1, web2 = cluster.web
    handoffs_before = scraped(web1).value(HANDOFFS)
    async with raw_client(web1, token) as first, raw_client(web2, token) as second:
        for client in (first, second):
            assert result_of(await client.call_tool("echo", {"text": "x"}))["content"]
            batch = result_of(await client.call_tool("process_batch", {"count": 1}))
            assert batch["structuredContent"]["processed"] == 1
        # Either scrape sees every process's counts (a process's request counts reach the
        # files within a heartbeat round).
        for web in (web1, web2):
            wait_until(
                functools.partial(_adds_up, web, slug),
                WAIT,
                f"the scrape of web {web.port} to add up every process",
            )
        answer = scraped(web1)
    # The worker claimed both batches (hand-offs carry no tenant: other tests' add to them).
    assert answer.value(HANDOFFS) >= handoffs_before + 2
    # Bounded labels: the tenant's slug, never its user, token or connection.
    values = answer.label_values()
    assert slug in values
    assert f"{slug}-u" not in values
    assert not any(token.removeprefix("mcp_") in value for value in values)
    assert {name for name, labels, _ in answer.samples() if labels.get("tenant") == slug} <= {
        "mcp_connections_open",
        "mcp_requests_total",
        "mcp_refusals_total",
        *(f"mcp_tool_call_duration_seconds{suffix}" for suffix in ("_bucket", "_count", "_sum")),
    }


def _adds_up(web: ServerProcess, tenant: str) -> bool:
    return tenant_totals(scraped(web), tenant) == EXPECTED
