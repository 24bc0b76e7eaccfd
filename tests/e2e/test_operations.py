"""Long-running operations end to end: progress, cancellation, limits and history."""

import asyncio
import signal
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.websocket import websocket_client
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.history import operations, wait_for_operation
from tests.e2e.support import (
    Deployment,
    RawClient,
    ServerProcess,
    raw_client,
    result_of,
    wait_until,
)

HISTORY_TIMEOUT = 15.0
CALL_TIMEOUT = 30.0
# A server's exit after SIGTERM: its shutdown drain, which with the writer process started
# lazily by the shutdown flush includes that process booting Django (over 15 s when loaded).
EXIT_TIMEOUT = 60.0


def wait_for_status(deployment: Deployment, request_id: str, status: str, **filters: str) -> dict:
    """The history row of a request once it has `status` (fails after a timeout)."""
    return wait_for_operation(
        deployment,
        f"request {request_id} to be {status}",
        HISTORY_TIMEOUT,
        request_id=request_id,
        status=status,
        **filters,
    )


async def send_call(
    client: RawClient,
    request_id: str,
    name: str,
    arguments: dict[str, Any],
    token: str | None = None,
) -> None:
    """Send a tools/call, asking for progress under `token` when given."""
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    await client.send(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    )


async def drain(client: RawClient) -> None:
    """Read frames until the connection closes (each read bounded by a timeout)."""
    while True:
        await client.recv(CALL_TIMEOUT)


async def first_progress(client: RawClient, token: Any) -> dict[str, Any]:
    """Wait for the first progress notification of `token`."""
    while True:
        message = await client.recv(CALL_TIMEOUT)
        is_progress = message.get("method") == "notifications/progress"
        if is_progress and message["params"]["progressToken"] == token:
            return dict(message["params"])
        client.notifications.append(message)


async def test_sdk_client_gets_progress_through_its_callback(
    server: ServerProcess, accounts: Accounts
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with (
        websocket_client(server.ws_url(accounts.alice)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(
            "process_batch", {"count": 400, "item_ms": 1}, progress_callback=on_progress
        )
    assert not result.isError
    assert result.structuredContent is not None
    assert result.structuredContent["processed"] == 400
    progress = [p for p, _, _ in seen]
    assert progress[-1] == 400
    assert all(b > a for a, b in zip(progress, progress[1:], strict=False))
    assert all(total == 400 for _, total, _ in seen)
    assert any(message and "items/s" in message for _, _, message in seen)
    # Coalesced: 400 reports, at most ~10 a second plus the first and the last.
    assert len(seen) < 100


async def test_cancel_stops_the_call_without_a_response(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await send_call(client, "to-cancel", "sleep", {"seconds": 60}, token="tc")
        await first_progress(client, "tc")
        await client.notify(
            "notifications/cancelled", {"requestId": "to-cancel", "reason": "changed my mind"}
        )
        # No response for the cancelled id; progress frames may still be in flight before the
        # cancel landed, so read until the ping's reply.
        await client.send({"jsonrpc": "2.0", "id": "after", "method": "ping"})
        while True:
            message = await client.recv()
            assert message.get("id") != "to-cancel", message
            if message.get("id") == "after":
                break
        row = wait_for_status(deployment, "to-cancel", "cancelled")
        assert row["tool"] == "sleep"
        assert row["progress"] < 60


async def test_disconnect_cancels_in_flight_calls(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await send_call(client, "orphan", "sleep", {"seconds": 60}, token="orphan")
        await first_progress(client, "orphan")
    wait_for_status(deployment, "orphan", "cancelled")


async def test_two_clients_run_operations_at_the_same_time(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    async def run(token: str, request_id: str) -> dict[str, Any]:
        async with raw_client(server, token) as client:
            await send_call(client, request_id, "process_batch", {"count": 300, "item_ms": 2})
            return result_of(await client.recv_response(request_id, CALL_TIMEOUT))

    first, second = await asyncio.gather(run(accounts.alice, "pair-a"), run(accounts.bob, "pair-b"))
    assert first["structuredContent"]["processed"] == 300
    assert second["structuredContent"]["processed"] == 300
    row_a = wait_for_status(deployment, "pair-a", "succeeded")
    row_b = wait_for_status(deployment, "pair-b", "succeeded")
    assert row_a["username"] == "alice"
    assert row_b["username"] == "bob"
    # They overlapped: each started before the other finished.
    assert row_a["started_at"] < row_b["finished_at"]
    assert row_b["started_at"] < row_a["finished_at"]


async def test_a_per_user_limit_queues_the_next_call_and_runs_it_later(
    server_factory: ServerFactory, accounts: Accounts, deployment: Deployment
) -> None:
    limited = server_factory(MCP_MAX_OPERATIONS_PER_USER="1")
    async with raw_client(limited, accounts.alice) as client:
        await send_call(client, "holder", "sleep", {"seconds": 60}, token="holder")
        await first_progress(client, "holder")
        await send_call(
            client, "queued", "process_batch", {"count": 20, "item_ms": 1}, token="queued"
        )
        notice = await first_progress(client, "queued")
        assert notice["message"] == "queued, position 1"
        await client.notify("notifications/cancelled", {"requestId": "holder"})
        result = result_of(await client.recv_response("queued", CALL_TIMEOUT))
        assert result["structuredContent"]["processed"] == 20
        final = [
            m["params"]
            for m in client.notifications
            if m.get("method") == "notifications/progress"
            and m["params"]["progressToken"] == "queued"
        ]
        assert final[-1]["progress"] == 20


async def test_history_rows_for_success_and_tool_errors(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    async with raw_client(server, accounts.bob) as client:
        await send_call(client, "hist-ok", "add", {"a": 2, "b": 3})
        await client.recv_response("hist-ok")
        await send_call(client, "hist-err", "divide", {"a": 1, "b": 0})
        await client.recv_response("hist-err")
    ok = wait_for_status(deployment, "hist-ok", "succeeded", username="bob")
    failed = wait_for_status(deployment, "hist-err", "failed", username="bob")
    assert ok["tool"] == "add"
    assert "Division by zero" in failed["error"]


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_a_clean_shutdown_flushes_history(
    deployment: Deployment, accounts: Accounts, server_factory: ServerFactory, writer: str
) -> None:
    # A flush interval longer than the test: only the shutdown flush can write the row.
    lazy = server_factory(MCP_HISTORY_FLUSH_INTERVAL="3600", MCP_HISTORY_WRITER=writer)
    request_id = f"before-shutdown-{writer}"
    async with raw_client(lazy, accounts.bob) as client:
        await send_call(client, request_id, "multiply", {"a": 6, "b": 7})
        result_of(await client.recv_response(request_id))
    assert not operations(deployment, request_id=request_id)
    lazy.process.send_signal(signal.SIGTERM)
    wait_until(lambda: not lazy.is_alive(), EXIT_TIMEOUT, "the server to exit")
    rows = operations(deployment, request_id=request_id)
    assert [row["status"] for row in rows] == ["succeeded"]


async def test_a_server_shutdown_interrupts_its_calls_and_closes_with_1012(
    deployment: Deployment, accounts: Accounts, server_factory: ServerFactory
) -> None:
    doomed = server_factory(MCP_SERVER_TITLE="doomed")
    async with raw_client(doomed, accounts.bob) as client:
        await send_call(client, "at-shutdown", "sleep", {"seconds": 60}, token="bye")
        await first_progress(client, "bye")
        doomed.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            await drain(client)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
    wait_until(lambda: not doomed.is_alive(), EXIT_TIMEOUT, "the server to exit")
    (row,) = operations(deployment, request_id="at-shutdown")
    assert row["status"] == "interrupted"
