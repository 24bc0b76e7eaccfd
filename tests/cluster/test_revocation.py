"""Revoking a token reaches every web process and the worker: its connections on both web
processes close (4401), and the work it started on the worker, a plain call and a durable
task, stops and is recorded cancelled as access revoked; another user is unaffected."""

import secrets
from typing import Any

from tests.cluster.conftest import ClusterAccounts
from tests.cluster.support import (
    LONG_BATCH,
    WAIT,
    Cluster,
    connection_closed,
    is_progress,
    next_matching,
    send_request,
)
from tests.e2e.history import operations
from tests.e2e.support import (
    raw_client,
    result_of,
    token_command,
    user_command,
    wait_until,
)

REVOKED_REASON = "cancelled: access revoked: token revoked"
HISTORY_WAIT = 60.0


def _operations(cluster: Cluster, username: str) -> dict[str, dict[str, Any]]:
    return {row["tool"]: row for row in operations(cluster.deployment, username=username)}


async def test_a_revoked_token_is_cut_off_on_every_process(
    cluster: Cluster, cluster_accounts: ClusterAccounts
) -> None:
    username = f"rev-{secrets.token_hex(3)}"
    _, token = cluster.deployment.run_together(
        [user_command(username, "alpha"), token_command(username, name=f"{username}-1")]
    )
    web0, web1 = cluster.web
    async with (
        raw_client(web0, token) as on_web0,
        raw_client(web1, token) as on_web1,
        raw_client(web1, cluster_accounts.alan) as colleague,
    ):
        await send_request(
            on_web0,
            "tools/call",
            {"name": "sleep", "arguments": {"seconds": 600}, "_meta": {"progressToken": "s"}},
        )
        await next_matching(on_web0, is_progress("s"), WAIT)
        started = result_of(
            await on_web1.request(
                "tools/call",
                {
                    "name": "process_batch",
                    "arguments": LONG_BATCH,
                    "task": {"ttl": 600_000},
                    "_meta": {"progressToken": "t"},
                },
            )
        )
        assert started["task"]["status"] == "working"
        await next_matching(on_web1, is_progress("t"), WAIT)

        cluster.deployment.shell(
            "from accounts.models import ApiToken; from accounts.services import token_revoke; "
            f"token_revoke(token=ApiToken.objects.get(name={username + '-1'!r}))"
        )
        for client in (on_web0, on_web1):
            closed = await connection_closed(client, WAIT)
            assert closed.rcvd is not None, closed
            assert (closed.rcvd.code, closed.rcvd.reason) == (4401, "token revoked")
        await colleague.assert_answers_ping()
        added = result_of(await colleague.call_tool("add", {"a": 1, "b": 1}))
        assert added["structuredContent"] == {"result": 2}

    wait_until(
        lambda: any(
            "access revoked (token revoked): stopping" in w.log_text() for w in cluster.workers
        ),
        WAIT,
        "the worker to stop the revoked token's work",
    )
    found: dict[str, dict[str, Any]] = {}

    def both_cancelled() -> bool:
        found.update(_operations(cluster, username))
        return all(
            found.get(tool, {}).get("status") == "cancelled" for tool in ("sleep", "process_batch")
        )

    wait_until(both_cancelled, HISTORY_WAIT, f"both calls recorded cancelled: {found}")
    assert found["sleep"]["error"] == REVOKED_REASON
    assert {key: found["process_batch"][key] for key in ("status", "error", "is_task")} == {
        "status": "cancelled",
        "error": REVOKED_REASON,
        "is_task": True,
    }
