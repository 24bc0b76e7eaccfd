"""Batched calls (2025-03-26) behave like single ones on a real server (issue 10, §5)."""

import asyncio
import secrets
from typing import Any

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import (
    Deployment,
    RawClient,
    ServerProcess,
    raw_client,
    result_of,
)
from tests.e2e.test_operations import CALL_TIMEOUT, wait_for_status

BATCH_VERSION = "2025-03-26"
# Long enough never to end by itself during a test.
ENDLESS = 600
# The server pings after 2 s of silence and gives up 4 s later; the batched call outlasts both.
PING_INTERVAL = 2
PING_TIMEOUT = 4
OUTLASTS_PINGS = 3 * (PING_INTERVAL + PING_TIMEOUT)


def unique(prefix: str) -> str:
    """A request id no other test of the session uses (history is shared)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def tool_call(request_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A tools/call request message."""
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def cancel(client: RawClient, request_id: str) -> None:
    """notifications/cancelled for `request_id`."""
    await client.notify("notifications/cancelled", {"requestId": request_id, "reason": "test"})


async def test_the_socket_answers_while_a_batched_call_runs(
    server: ServerProcess, accounts: Accounts
) -> None:
    sleeper = unique("batched-sleep")
    async with raw_client(server, accounts.alice, version=BATCH_VERSION) as client:
        await client.send(
            [
                tool_call(sleeper, "sleep", {"seconds": ENDLESS}),
                {"jsonrpc": "2.0", "id": "batched-ping", "method": "ping"},
            ]
        )
        await client.assert_answers_ping()
        await cancel(client, sleeper)
        # Once its call is done, the batch is answered, as one array, without the cancelled call.
        batch = await client.recv(CALL_TIMEOUT)
        assert batch == [{"jsonrpc": "2.0", "id": "batched-ping", "result": {}}]
        await client.assert_answers_ping()


async def test_a_batched_call_is_cancelled_by_its_id(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    sleeper, echo = unique("batched-cancel"), unique("batched-echo")
    async with raw_client(server, accounts.alice, version=BATCH_VERSION) as client:
        await client.send(
            [
                tool_call(sleeper, "sleep", {"seconds": ENDLESS}),
                tool_call(echo, "echo", {"text": "beside it"}),
            ]
        )
        # Cancelled once it runs: a call cancelled before it starts leaves no row at all.
        await asyncio.to_thread(wait_for_status, deployment, sleeper, "running")
        await cancel(client, sleeper)
        batch = await client.recv(CALL_TIMEOUT)
        assert [reply["id"] for reply in batch] == [echo], batch
        assert result_of(batch[0])["content"] == [{"type": "text", "text": "beside it"}]
    row = await asyncio.to_thread(wait_for_status, deployment, sleeper, "cancelled")
    assert row["username"] == "alice"


async def test_a_disconnect_cancels_batched_calls(
    server: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    sleeper = unique("batched-left")
    async with raw_client(server, accounts.alice, version=BATCH_VERSION) as client:
        await client.send([tool_call(sleeper, "sleep", {"seconds": ENDLESS})])
        await asyncio.to_thread(wait_for_status, deployment, sleeper, "running")
    await asyncio.to_thread(wait_for_status, deployment, sleeper, "cancelled")


async def test_a_client_answering_pings_during_a_batch_stays_connected(
    server_factory: ServerFactory, accounts: Accounts
) -> None:
    server = server_factory(
        MCP_CLIENT_PING_INTERVAL=str(PING_INTERVAL), MCP_CLIENT_PING_TIMEOUT=str(PING_TIMEOUT)
    )
    sleeper = unique("batched-pinged")
    answered = 0
    async with raw_client(server, accounts.alice, version=BATCH_VERSION) as client:
        await client.send([tool_call(sleeper, "sleep", {"seconds": OUTLASTS_PINGS})])
        while True:
            message = await client.recv(OUTLASTS_PINGS + CALL_TIMEOUT)
            if isinstance(message, list):
                break
            assert message.get("method") == "ping", message
            await client.send({"jsonrpc": "2.0", "id": message["id"], "result": {}})
            answered += 1
        assert [reply["id"] for reply in message] == [sleeper]
        assert result_of(message[0])["content"][0]["text"] == f"slept {OUTLASTS_PINGS} s"
        assert answered >= 2, "the server did not ping while the batch ran"
        await client.assert_answers_ping()
