"""Database work of one connection cannot starve another tenant's: a flood of `tasks/result`
queues behind itself, and another tenant's `tasks/list` is answered meanwhile."""

import asyncio
import json
from uuid import uuid4

import pytest

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import RawClient, ServerProcess, raw_client, result_of

FLOOD = 3000
FLOOD_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def roomy(server_factory: ServerFactory) -> ServerProcess:
    """A server whose request bounds let one connection send the whole flood."""
    return server_factory(
        MCP_MAX_IN_FLIGHT_PER_CONNECTION=str(2 * FLOOD),
        MCP_MAX_IN_FLIGHT_PER_USER=str(2 * FLOOD),
        MCP_MAX_IN_FLIGHT_PER_TENANT=str(2 * FLOOD),
        MCP_MESSAGE_RATE_PER_USER="1000000",
        MCP_MESSAGE_BURST_PER_USER=str(10 * FLOOD),
        MCP_MESSAGE_RATE_PER_TENANT="1000000",
        MCP_MESSAGE_BURST_PER_TENANT=str(10 * FLOOD),
    )


async def read_flood(client: RawClient, counter: list[int], all_read: asyncio.Event) -> None:
    """Read the flood's replies (each one query of the database), counting them; `all_read`
    is set when the ping sent after the flood is answered (the server has read every request,
    frames of one connection being handled in order)."""
    while counter[0] < FLOOD:
        reply = await client.recv(FLOOD_TIMEOUT)
        if reply.get("id") == "after-flood":
            all_read.set()
            continue
        assert str(reply.get("id", "")).startswith("flood-"), reply
        assert reply["error"]["message"].startswith("Unknown task"), reply
        counter[0] += 1


async def test_another_tenant_is_answered_before_a_database_flood_drains(
    roomy: ServerProcess, accounts: Accounts
) -> None:
    async with (
        raw_client(roomy, accounts.alice) as flooder,
        raw_client(roomy, accounts.bob) as other_tenant,
    ):
        received = [0]
        all_read = asyncio.Event()
        reader = asyncio.create_task(read_flood(flooder, received, all_read))
        for index in range(FLOOD):
            request = {
                "jsonrpc": "2.0",
                "id": f"flood-{index}",
                "method": "tasks/result",
                "params": {"taskId": str(uuid4())},
            }
            await flooder.ws.send(json.dumps(request))
        await flooder.send({"jsonrpc": "2.0", "id": "after-flood", "method": "ping"})
        await asyncio.wait_for(all_read.wait(), FLOOD_TIMEOUT)
        before = received[0]
        backlog = FLOOD - before
        assert backlog >= FLOOD // 10, f"the flood drained too fast to test ({before} done)"

        answer = await other_tenant.request("tasks/list", {})
        during = received[0] - before
        # Answered (what bob's earlier tests left in his list does not matter here).
        assert isinstance(result_of(answer)["tasks"], list)
        await asyncio.wait_for(reader, FLOOD_TIMEOUT)
        # Old code: one FIFO for everyone, so the answer waited for the whole backlog.
        assert during < backlog // 2, f"{during} of a backlog of {backlog} replies came first"
