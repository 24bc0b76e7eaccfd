"""Nothing a tenant sends stops history for anyone: a real server on a real PostgreSQL.

PostgreSQL refuses U+0000 in text and jsonb. One call carrying it used to fail every later
history batch of its process: nobody's runs were recorded, other tenants' tasks stayed
`working` and `tasks/result` from another connection hung.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.support import PG_SERVER_URL
from tests.e2e.history import item_errors, wait_for_operation
from tests.e2e.support import (
    Deployment,
    ServerProcess,
    postgres_deployment,
    raw_client,
    result_of,
    start_server,
    tenant_command,
    token_command,
    user_command,
)
from tests.e2e.templates import DatabaseTemplates

CALL_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def pg_deployment(
    tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates
) -> Iterator[Deployment]:
    """An installation on PostgreSQL with tenants alpha (alice) and beta (bob)."""
    root: Path = tmp_path_factory.mktemp("history-safety")
    with postgres_deployment(root, PG_SERVER_URL, database_templates) as deployment:
        deployment.run_together(
            [
                tenant_command("alpha"),
                tenant_command("beta"),
                user_command("alice", "alpha"),
                user_command("bob", "beta"),
            ]
        )
        yield deployment


@pytest.fixture(scope="module")
def tokens(pg_deployment: Deployment) -> dict[str, str]:
    """A token of alice (tenant alpha) and one of bob (tenant beta)."""
    alice, bob = pg_deployment.run_together(
        [token_command("alice", name="alice"), token_command("bob", name="bob")]
    )
    return {"alice": alice, "bob": bob}


@pytest.fixture(scope="module")
def pg_server(pg_deployment: Deployment) -> Iterator[ServerProcess]:
    """One inline server of the PostgreSQL installation."""
    server = start_server(pg_deployment)
    try:
        yield server
    finally:
        server.stop()


async def test_a_nul_in_one_tenants_call_stops_nobodys_history(
    pg_server: ServerProcess, pg_deployment: Deployment, tokens: dict[str, str]
) -> None:
    text = "before\u0000after"
    async with raw_client(pg_server, tokens["alice"]) as alice:
        await alice.send(
            {
                "jsonrpc": "2.0",
                "id": "nul\u0000id",
                "method": "tools/call",
                "params": {
                    "name": "echo",
                    "arguments": {"text": text},
                    "_meta": {"progressToken": "tok\u0000en"},
                },
            }
        )
        # The wire carries U+0000 as JSON allows: the client gets exactly what it sent.
        echoed = result_of(await alice.recv_response("nul\u0000id", CALL_TIMEOUT))
        assert echoed["content"][0]["text"] == text

    async with raw_client(pg_server, tokens["bob"]) as bob:
        added = result_of(await bob.call_tool("add", {"a": 2, "b": 3}))
        assert added["structuredContent"] == {"result": 5}
        created = result_of(
            await bob.request(
                "tools/call",
                {
                    "name": "process_batch",
                    "arguments": {"count": 5, "item_ms": 1},
                    "task": {"ttl": 60_000},
                },
            )
        )
        task_id = created["task"]["taskId"]

    # Another tenant's call is still recorded.
    added_row = wait_for_operation(
        pg_deployment, "bob's add to be recorded", username="bob", tool="add"
    )
    assert added_row["status"] == "succeeded"
    # Another tenant's task finishes, and tasks/result from another connection answers.
    async with raw_client(pg_server, tokens["bob"]) as other:
        reply = await other.request("tasks/result", {"taskId": task_id})
        assert result_of(reply)["structuredContent"]["processed"] == 5
    task_row = wait_for_operation(pg_deployment, "bob's task to be recorded", id=task_id)
    assert task_row["status"] == "succeeded"

    # The run with U+0000 is recorded too, its U+0000 stored as the escape text \u0000.
    escaped = wait_for_operation(pg_deployment, "alice's echo to be recorded", username="alice")
    assert escaped["status"] == "succeeded"
    assert escaped["request_id"] == "nul\\u0000id"
    assert escaped["arguments"] == {"text": "before\\u0000after"}
    assert escaped["result_summary"] == {"text": "before\\u0000after"}
    assert "history write failed" not in pg_server.log_text()


async def test_a_file_name_that_is_not_utf8_stops_neither_the_reply_nor_history(
    pg_server: ServerProcess, pg_deployment: Deployment, tokens: dict[str, str]
) -> None:
    # os.scandir decodes the byte 0x80 as the lone surrogate U+DC80, which UTF-8 (the wire,
    # PostgreSQL, SQLite) cannot carry: the tool puts it in progress and in an item error.
    folder = pg_deployment.root / "data" / "alpha" / "odd-names"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / os.fsdecode(b"bad\x80.txt")).write_bytes(b"not an image")
    async with raw_client(pg_server, tokens["alice"]) as alice:
        await alice.send(
            {
                "jsonrpc": "2.0",
                "id": "odd",
                "method": "tools/call",
                "params": {
                    "name": "process_images",
                    "arguments": {"directory": "odd-names"},
                    "_meta": {"progressToken": "odd"},
                },
            }
        )
        result = result_of(await alice.recv_response("odd", CALL_TIMEOUT))
        assert result["structuredContent"]["errors"] == 1
        messages = [
            m["params"].get("message", "")
            for m in alice.notifications
            if m.get("method") == "notifications/progress"
        ]
        assert any("bad\\udc80.txt" in message for message in messages), messages
        await alice.assert_answers_ping()
    row = wait_for_operation(
        pg_deployment,
        "the odd-names run to be recorded",
        tool="process_images",
        status="succeeded",
    )
    assert row["result_summary"]["errors"] == 1
    items = item_errors(pg_deployment)
    assert any("bad\\udc80.txt" in item for item in items), items
