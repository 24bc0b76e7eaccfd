"""After `kill -9` mid-operation, the restarted process marks the orphaned run interrupted
within MCP_OPERATION_LOST_AFTER by itself: its liveness duties (heartbeat, reaper, recovery)
run from start, not from the first WebSocket connection. Nobody connects after the restart;
the test reads the database directly.

On SQLite, or on PostgreSQL when DATABASE_URL names it.
"""

from typing import Any

import pytest

from tests.e2e.conftest import Accounts
from tests.e2e.history import operations
from tests.e2e.support import (
    Deployment,
    ServerProcess,
    raw_client,
    start_server,
    start_server_on_port,
    wait_until,
)

# Short, so the test waits seconds (production's default is 15).
LOST_AFTER = "3"
ENV = {"MCP_OPERATION_LOST_AFTER": LOST_AFTER}
# The bound plus a start-up and generous slack for a loaded machine.
REAPED_WITHIN = 60.0
WAIT = 30.0

pytestmark = pytest.mark.timeout(300)


def _run_of(server: ServerProcess, token: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
    """The one run with these arguments, read through the REST API (no WebSocket)."""
    status, runs = server.get_json("/api/runs/?tool=process_batch", token)
    assert status == 200, runs
    ours = [run for run in runs["results"] if run["arguments"] == arguments]
    assert len(ours) <= 1, ours
    return ours[0] if ours else None


def _recorded(deployment: Deployment, run_id: str) -> dict[str, Any]:
    """The run's row, read from the database."""
    (row,) = operations(deployment, id=run_id)
    return row


async def test_a_killed_servers_run_is_interrupted_after_restart_without_any_connection(
    deployment: Deployment, accounts: Accounts
) -> None:
    # Arguments no other test uses: about 100 s of work, it never ends by itself here.
    arguments = {"count": 2000, "item_ms": 51}
    server = start_server(deployment, ENV)
    try:
        async with raw_client(server, accounts.alice) as client:
            await client.send(
                {
                    "jsonrpc": "2.0",
                    "id": client.next_id(),
                    "method": "tools/call",
                    "params": {
                        "name": "process_batch",
                        "arguments": arguments,
                        "_meta": {"progressToken": "crash"},
                    },
                }
            )
            assert (await client.recv(WAIT))["method"] == "notifications/progress"
            run: dict[str, Any] = {}

            def running() -> bool:
                run.update(_run_of(server, accounts.alice, arguments) or {})
                return run.get("status") == "running"

            wait_until(running, WAIT, "the run to be recorded running")
            wait_until(
                lambda: _recorded(deployment, run["id"])["heartbeat_at"] is not None,
                WAIT,
                "its first heartbeat",
            )
            server.kill()
    finally:
        server.stop()
    restarted = start_server_on_port(deployment, server.port, ENV)
    try:
        wait_until(
            lambda: _recorded(deployment, run["id"])["status"] == "interrupted",
            REAPED_WITHIN,
            "the orphaned run to be marked interrupted",
        )
        status, detail = restarted.get_json(f"/api/runs/{run['id']}/", accounts.alice)
        assert status == 200, detail
        assert detail["error"] == "interrupted: its process stopped responding", detail
        assert "WebSocket" not in restarted.log_text()
    finally:
        restarted.stop()
