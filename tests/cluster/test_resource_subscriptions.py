"""A subscription to a run's resources on one web process hears, coalesced, of the run a
worker runs for another web process, up to its end; another tenant's run is unknown."""

import json
from typing import Any

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import LONG_BATCH, WAIT, Cluster, next_matching
from tests.e2e.support import RawClient, error_of, raw_client, result_of


def _is_updated(uri: str) -> Any:
    return lambda m: (
        m.get("method") == "notifications/resources/updated" and (m["params"] == {"uri": uri})
    )


async def _summary(client: RawClient, uri: str) -> dict[str, Any]:
    contents = result_of(await client.request("resources/read", {"uri": uri}))["contents"]
    return dict(json.loads(contents[0]["text"]))


async def test_a_subscriber_on_another_web_process_hears_of_a_workers_run(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    web0, web1 = cluster.web
    async with (
        raw_client(web0, cluster_accounts.alice) as starter,
        raw_client(web1, cluster_accounts.alice_second) as watcher,
        raw_client(web1, cluster_accounts.bob) as stranger,
    ):
        params = {"name": "process_batch", "arguments": LONG_BATCH, "task": {}}
        task = result_of(await starter.request("tools/call", params))["task"]
        run_uri = f"mcp-realtime://runs/{task['taskId']}"
        errors_uri = f"{run_uri}/errors"
        for uri in (run_uri, errors_uri):
            assert result_of(await watcher.request("resources/subscribe", {"uri": uri})) == {}
            refused = error_of(await stranger.request("resources/subscribe", {"uri": uri}))
            assert refused["code"] == -32002

        # Progress is persisted about once a second; each write is one update, not one per item.
        seen: list[float] = []
        while len(seen) < 2:
            await next_matching(watcher, _is_updated(run_uri), WAIT)
            summary = await _summary(watcher, run_uri)
            assert summary["status"] in ("queued", "running")
            seen.append(summary["progress"])
        assert seen[-1] > 0

        cancelled = result_of(await starter.request("tasks/cancel", {"taskId": task["taskId"]}))
        assert cancelled["status"] == "cancelled"
        await next_matching(watcher, _is_updated(errors_uri), WAIT)

        async def ended() -> bool:
            return (await _summary(watcher, run_uri))["status"] == "cancelled"

        while not await ended():
            await next_matching(watcher, _is_updated(run_uri), WAIT)
        assert result_of(await watcher.request("resources/unsubscribe", {"uri": run_uri})) == {}
