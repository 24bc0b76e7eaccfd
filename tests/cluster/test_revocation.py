"""Revoking a token reaches every web process and the worker: its connections on both web
processes close (4401), and the work it started on the worker, a plain call and a durable
task, stops and is recorded cancelled as access revoked; another user is unaffected. Both web
processes keep the token's lookup (accounts/token_lookups.py) and drop it at once: the next
request and handshake on each is refused."""

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
    on_both,
    send_request,
)
from tests.e2e.history import operations
from tests.e2e.support import (
    raw_client,
    refusal,
    result_of,
    token_command,
    user_command,
    wait_until,
)

REVOKED_REASON = "cancelled: access revoked: token revoked"
HISTORY_WAIT = 60.0


def _revoke(cluster: Cluster, token_name: str) -> None:
    """Revoke a token from a third process (a `manage.py shell` on the cluster's Redis)."""
    cluster.deployment.shell(
        "from accounts.models import ApiToken; from accounts.services import token_revoke; "
        f"token_revoke(token=ApiToken.objects.get(name={token_name!r}))"
    )


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

        _revoke(cluster, f"{username}-1")
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


async def test_a_revoked_token_kept_by_both_web_processes_is_refused_by_each_at_once(
    cluster: Cluster,
) -> None:
    username = f"rvk-{secrets.token_hex(3)}"
    _, token = cluster.deployment.run_together(
        [user_command(username, "alpha"), token_command(username, name=f"{username}-1")]
    )
    web0, web1 = cluster.web
    async with (
        on_both(cluster, token) as (over_http0, over_http1),
        raw_client(web0, token) as on_web0,
        raw_client(web1, token) as on_web1,
    ):
        # Used on both processes, over both transports: each keeps the token's Principal.
        for session in (over_http0, over_http1):
            assert (await session.request("ping"))["result"] == {}
        _revoke(cluster, f"{username}-1")
        for server, socket, session in ((web0, on_web0, over_http0), (web1, on_web1, over_http1)):
            # The close says the announcement reached this process (it forgets the token first).
            closed = await connection_closed(socket, WAIT)
            assert closed.rcvd is not None, closed
            assert (closed.rcvd.code, closed.rcvd.reason) == (4401, "token revoked")
            refused = await session.post({"jsonrpc": "2.0", "id": 99, "method": "ping"})
            assert refused.status == 401, refused
            assert refused.messages[0]["error"]["message"] == "token revoked"
            status, body, _ = await refusal(server.ws_url(token))
            assert (status, body["error"]) == (401, "token revoked")
