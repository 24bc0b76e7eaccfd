"""Requests in flight are bounded per connection, user and tenant: the excess is refused at
once with a JSON-RPC error naming the bound, never queued, and nobody else notices."""

from typing import Any

import pytest

from tests.e2e.conftest import ALPHA, Accounts, ServerFactory
from tests.e2e.support import (
    Deployment,
    RawClient,
    ServerProcess,
    raw_client,
    result_of,
    token_command,
    user_command,
)
from tests.e2e.test_operations import send_call

LIMIT_EXCEEDED = -32001
PER_CONNECTION, PER_USER, PER_TENANT = 20, 30, 40
# Long enough that an admitted (running or queued) call cannot answer during the test.
SLEEP = {"seconds": 600}


@pytest.fixture(scope="module")
def bounded(server_factory: ServerFactory) -> ServerProcess:
    """A server with small in-flight bounds (and the usual four running per connection)."""
    return server_factory(
        MCP_MAX_IN_FLIGHT_PER_CONNECTION=str(PER_CONNECTION),
        MCP_MAX_IN_FLIGHT_PER_USER=str(PER_USER),
        MCP_MAX_IN_FLIGHT_PER_TENANT=str(PER_TENANT),
    )


@pytest.fixture(scope="module")
def alpha_colleague(deployment: Deployment, accounts: Accounts) -> str:
    """A token of a second user of alice's tenant."""
    _, token = deployment.run_together(
        [
            user_command("inflight-erin", ALPHA),
            token_command("inflight-erin", name="inflight-erin-main"),
        ]
    )
    return str(token)


async def sleep_calls(client: RawClient, prefix: str, count: int) -> None:
    """Send `count` long `sleep` calls without waiting for anything."""
    for index in range(count):
        await send_call(client, f"{prefix}-{index}", "sleep", SLEEP)


async def refusals(client: RawClient, count: int) -> list[dict[str, Any]]:
    """The next `count` frames, each an in-flight refusal; their errors."""
    errors = []
    for _ in range(count):
        reply = await client.recv()
        assert "error" in reply, f"expected a refusal, got {reply!r}"
        assert reply["error"]["code"] == LIMIT_EXCEEDED, reply
        errors.append(reply["error"])
    return errors


async def test_excess_requests_are_refused_at_once_per_connection_user_and_tenant(
    bounded: ServerProcess, accounts: Accounts, alpha_colleague: str
) -> None:
    async with (
        raw_client(bounded, accounts.alice) as first,
        raw_client(bounded, accounts.alice) as second,
        raw_client(bounded, alpha_colleague) as colleague,
        raw_client(bounded, accounts.bob) as other_tenant,
    ):
        # One connection: the 5 past its bound are answered now, the 20 admitted keep waiting.
        await sleep_calls(first, "conn", PER_CONNECTION + 5)
        errors = await refusals(first, 5)
        assert {e["data"]["limit"] for e in errors} == {"in_flight_per_connection"}
        assert errors[0]["data"]["maximum"] == PER_CONNECTION
        assert "in flight" in errors[0]["message"]
        await first.assert_answers_ping()

        # The same user on a second connection: 10 more reach the user's bound of 30.
        await sleep_calls(second, "user", 15)
        errors = await refusals(second, 5)
        assert {e["data"]["limit"] for e in errors} == {"in_flight_per_user"}
        await second.assert_answers_ping()

        # Another user of the tenant: 10 more reach the tenant's bound of 40.
        await sleep_calls(colleague, "tenant", 15)
        errors = await refusals(colleague, 5)
        assert {e["data"]["limit"] for e in errors} == {"in_flight_per_tenant"}
        await colleague.assert_answers_ping()

        # A user of another tenant is unaffected.
        result = result_of(await other_tenant.call_tool("add", {"a": 1, "b": 2}))
        assert result["structuredContent"]["result"] == 3
        await other_tenant.assert_answers_ping()
