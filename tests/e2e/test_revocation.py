"""Access ends when it is taken away: open connections of a revoked or expired token, of a
deactivated user or tenant, are closed (4401/4403 with a reason) and their work is cancelled as
"access revoked"; a tool disabled for a tenant disappears from its open connections.

Two servers of the deployment: `announced` hears of changes only through the channel layer
(Redis, shared with the `manage.py shell` that makes them; its periodic re-check is an hour
away), `rechecked` only through its periodic re-check (no channel layer reaches it, and the
changes bypass the service functions, as a lost announcement would). The shared default
server (the in-memory layer) hears of a change made through its own REST API.
"""

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mcp_server.client.http import HttpSession
from tests.cluster.support import connection_closed, is_progress, next_matching, send_request
from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.history import operations
from tests.e2e.support import (
    Deployment,
    RawClient,
    ServerProcess,
    error_of,
    raw_client,
    refusal,
    result_of,
    wait_until,
)

# The channel layer's key prefix of this module's server and the commands that reach it.
CHANNEL_PREFIX = f"revoke-{secrets.token_hex(4)}"
# Generous: the machine is shared; the guarantee (seconds) is far inside it.
WAIT = 30.0
HISTORY_WAIT = 60.0
# A call that never ends by itself within a test.
LONG_SLEEP = {"seconds": 600}
LONG_BATCH = {"count": 2000, "item_ms": 50}
REVOKED_REASON = "cancelled: access revoked: token revoked"
INACTIVE_REASON = "cancelled: access revoked: account or tenant is inactive"


@pytest.fixture
def channel_env(redis_url: str) -> dict[str, str]:
    """The channel layer shared by the announced server and the commands that make changes."""
    return {"REDIS_URL": redis_url, "MCP_CHANNEL_PREFIX": CHANNEL_PREFIX}


@pytest.fixture
def operator(deployment: Deployment, channel_env: dict[str, str]) -> Deployment:
    """The deployment as seen by an operator whose commands reach the servers' channel layer."""
    return deployment.with_env(channel_env)


@pytest.fixture
def announced(server_factory: ServerFactory, channel_env: dict[str, str]) -> ServerProcess:
    """A server that learns of access changes only from announcements (per-user limit 1, so
    a call still running for a user shows as another call of theirs left waiting)."""
    return server_factory(
        **channel_env, MCP_ACCESS_CHECK_INTERVAL="3600", MCP_MAX_OPERATIONS_PER_USER="1"
    )


@pytest.fixture
def rechecked(server_factory: ServerFactory) -> ServerProcess:
    """A server that learns of access changes only from its periodic re-check."""
    return server_factory(MCP_ACCESS_CHECK_INTERVAL="0.5")


@dataclass(frozen=True)
class Members:
    """A fresh tenant with two users: `first` has two tokens, `other` one."""

    tenant: str
    first: str
    other: str
    first_token: str
    first_second_token: str
    other_token: str
    first_token_name: str


# Tests of this module that take a set of members (each needs accounts of its own).
MEMBER_SETS = 8


@pytest.fixture(scope="module")
def member_pool(deployment: Deployment) -> list[Members]:
    """A fresh tenant with two users per test, made by one `manage.py shell` (the account
    commands are proved by conftest's accounts): a Django boot per module, not six per test."""
    tags = [secrets.token_hex(3) for _ in range(MEMBER_SETS)]
    output = deployment.shell(
        "from datetime import timedelta; from django.utils import timezone; "
        "from accounts.services import tenant_create, token_create, user_create\n"
        f"for tag in {tags!r}:\n"
        "    tenant = tenant_create(slug=f'rv-{tag}')\n"
        "    first = user_create(username=f'rv-{tag}-a', tenant_slug=tenant.slug)\n"
        "    other = user_create(username=f'rv-{tag}-b', tenant_slug=tenant.slug)\n"
        "    soon = timezone.now() + timedelta(days=1)\n"
        "    print(token_create(user=first, name=f'rv-{tag}-a-1', expires_at=soon).raw)\n"
        "    print(token_create(user=first, name=f'rv-{tag}-a-2').raw)\n"
        "    print(token_create(user=other, name=f'rv-{tag}-b-1').raw)\n"
    )
    raws = output.split()[-3 * MEMBER_SETS :]
    assert all(raw.startswith("mcp_") for raw in raws), output
    return [
        Members(
            tenant=f"rv-{tag}",
            first=f"rv-{tag}-a",
            other=f"rv-{tag}-b",
            first_token=raws[3 * index],
            first_second_token=raws[3 * index + 1],
            other_token=raws[3 * index + 2],
            first_token_name=f"rv-{tag}-a-1",
        )
        for index, tag in enumerate(tags)
    ]


@pytest.fixture
def members(member_pool: list[Members]) -> Members:
    """Accounts of this test alone (the changes it makes touch nobody else)."""
    assert member_pool, f"more tests take members than MEMBER_SETS ({MEMBER_SETS})"
    return member_pool.pop()


def operations_of(deployment: Deployment, username: str, tool: str) -> list[dict[str, Any]]:
    """The history rows of a user's calls of `tool` (status, error, is_task)."""
    return [
        {key: row[key] for key in ("status", "error", "is_task")}
        for row in operations(deployment, username=username, tool=tool)
    ]


def wait_for_operation(
    deployment: Deployment, username: str, tool: str, status: str
) -> dict[str, Any]:
    """Wait until the user's one call of `tool` has `status` in history; its row."""
    found: list[dict[str, Any]] = []

    def ended() -> bool:
        found[:] = operations_of(deployment, username, tool)
        return len(found) == 1 and found[0]["status"] == status

    wait_until(ended, HISTORY_WAIT, f"{username}'s {tool} to be {status} (rows: {found})")
    return found[0]


async def start_sleep(client: RawClient) -> int:
    """Start a long `sleep` call; its request id, once it runs."""
    request_id = await send_request(
        client,
        "tools/call",
        {"name": "sleep", "arguments": LONG_SLEEP, "_meta": {"progressToken": "z"}},
    )
    await next_matching(client, is_progress("z"), WAIT)
    return request_id


async def assert_closed(client: RawClient, code: int, reason: str) -> None:
    """The server closes the connection with `code` and `reason` (within the wait)."""
    closed = await connection_closed(client, WAIT)
    assert closed.rcvd is not None, f"closed without a close frame: {closed!r}"
    assert (closed.rcvd.code, closed.rcvd.reason) == (code, reason)


async def assert_still_served(client: RawClient) -> None:
    """A connection that must be unaffected answers a ping and a call."""
    await client.assert_answers_ping()
    result = result_of(await client.call_tool("add", {"a": 2, "b": 3}))
    assert result["structuredContent"] == {"result": 5}


# --- announcements -------------------------------------------------------------------------


async def test_on_the_in_memory_layer_a_kept_token_revoked_by_rest_is_refused_at_once(
    server: ServerProcess, members: Members
) -> None:
    over_http = HttpSession(f"{server.http_url}/mcp", members.first_token)
    try:
        await over_http.initialize()
        async with raw_client(server, members.first_token) as socket:
            # Used over both transports: the server keeps the token's Principal.
            assert (await over_http.request("ping"))["result"] == {}
            status, listed = server.get_json("/api/tokens/", members.first_second_token)
            assert status == 200, listed
            [token_id] = [
                t["id"] for t in listed["results"] if t["name"] == members.first_token_name
            ]
            async with httpx.AsyncClient() as client:
                revoked = await client.delete(
                    f"{server.http_url}/api/tokens/{token_id}/",
                    headers={"Authorization": f"Bearer {members.first_second_token}"},
                )
            assert revoked.status_code == 204, revoked.text
            await assert_closed(socket, 4401, "token revoked")
        refused = await over_http.post({"jsonrpc": "2.0", "id": 99, "method": "ping"})
        assert refused.status == 401, refused
        assert refused.messages[0]["error"]["message"] == "token revoked"
        status, body, _ = await refusal(server.ws_url(members.first_token))
        assert (status, body["error"]) == (401, "token revoked")
    finally:
        await over_http.close()


async def test_revoked_token_closes_its_socket_and_cancels_its_call(
    announced: ServerProcess, operator: Deployment, members: Members
) -> None:
    async with (
        raw_client(announced, members.first_token) as revoked,
        raw_client(announced, members.other_token) as colleague,
    ):
        await start_sleep(revoked)
        operator.shell(
            "from accounts.models import ApiToken; from accounts.services import token_revoke; "
            f"token_revoke(token=ApiToken.objects.get(name={members.first_token_name!r}))"
        )
        await assert_closed(revoked, 4401, "token revoked")
        # Another user of the same tenant keeps working.
        await assert_still_served(colleague)
    row = wait_for_operation(operator, members.first, "sleep", "cancelled")
    assert row["error"] == REVOKED_REASON


async def test_task_of_a_revoked_token_is_stopped(
    announced: ServerProcess, operator: Deployment, members: Members
) -> None:
    async with raw_client(announced, members.first_token) as client:
        started = result_of(
            await client.request(
                "tools/call",
                {"name": "process_batch", "arguments": LONG_BATCH, "task": {"ttl": 600_000}},
            )
        )
        task_id = started["task"]["taskId"]
    # The task outlives its connection; revoking the token that started it stops it.
    operator.shell(
        "from accounts.models import ApiToken; from accounts.services import token_revoke; "
        f"token_revoke(token=ApiToken.objects.get(name={members.first_token_name!r}))"
    )
    async with raw_client(announced, members.first_second_token) as same_user:
        # The user may run one call at a time on this server: this one runs only once the
        # task has really stopped (else it would wait behind it for a hundred seconds).
        await assert_still_served(same_user)
        task = result_of(await same_user.request("tasks/get", {"taskId": task_id}))
        assert task["status"] == "cancelled"
        assert task["statusMessage"] == "The task was cancelled (access revoked: token revoked)."
    row = wait_for_operation(operator, members.first, "process_batch", "cancelled")
    assert row == {"status": "cancelled", "error": REVOKED_REASON, "is_task": True}


async def test_deactivated_user_is_closed_with_4403(
    announced: ServerProcess, operator: Deployment, members: Members
) -> None:
    async with (
        raw_client(announced, members.first_token) as first,
        raw_client(announced, members.first_second_token) as first_again,
        raw_client(announced, members.other_token) as colleague,
    ):
        await start_sleep(first)
        # What the stock user admin does: save the whole user.
        operator.shell(
            "from django.contrib.auth import get_user_model; "
            f"user = get_user_model().objects.get(username={members.first!r}); "
            "user.is_active = False; user.save()"
        )
        await assert_closed(first, 4403, "account or tenant is inactive")
        await assert_closed(first_again, 4403, "account or tenant is inactive")
        await assert_still_served(colleague)
    row = wait_for_operation(operator, members.first, "sleep", "cancelled")
    assert row["error"] == INACTIVE_REASON


async def test_deactivated_tenant_is_closed_with_4403(
    announced: ServerProcess, operator: Deployment, members: Members, accounts: Accounts
) -> None:
    async with (
        raw_client(announced, members.first_token) as first,
        raw_client(announced, members.other_token) as colleague,
        raw_client(announced, members.first_second_token) as first_again,
        raw_client(announced, accounts.bob) as other_tenant,
    ):
        # What the tenant admin's change form does.
        operator.shell(
            "from accounts.models import Tenant; from accounts.services import tenant_update; "
            f"tenant = Tenant.objects.get(slug={members.tenant!r}); tenant.is_active = False; "
            "tenant_update(tenant=tenant, changed=['is_active'])"
        )
        for client in (first, colleague, first_again):
            await assert_closed(client, 4403, "account or tenant is inactive")
        await assert_still_served(other_tenant)


async def test_disabled_tool_disappears_from_open_connections(
    announced: ServerProcess, operator: Deployment, members: Members
) -> None:
    async with raw_client(announced, members.first_token, version=None) as client:
        hello = await client.initialize()
        assert hello["capabilities"]["tools"]["listChanged"] is True
        assert result_of(await client.call_tool("echo", {"text": "hi"}))["content"]
        operator.shell(
            "from accounts.models import Tenant; from accounts.services import tenant_update; "
            f"tenant = Tenant.objects.get(slug={members.tenant!r}); "
            "tenant.enabled_tools = ['add', 'multiply']; "
            "tenant_update(tenant=tenant, changed=['enabled_tools'])"
        )
        changed = await next_matching(
            client, lambda m: m.get("method") == "notifications/tools/list_changed", WAIT
        )
        assert changed == {
            "jsonrpc": "2.0",
            "method": "notifications/tools/list_changed",
            "params": {},
        }
        listed = result_of(await client.request("tools/list"))["tools"]
        assert sorted(tool["name"] for tool in listed) == ["add", "multiply"]
        refused = error_of(await client.call_tool("echo", {"text": "hi"}))
        assert refused == {"code": -32602, "message": "Tool 'echo' is not enabled for your tenant"}
        await assert_still_served(client)


# --- the periodic re-check ------------------------------------------------------------------


async def test_token_that_expires_while_connected_is_closed(
    rechecked: ServerProcess, deployment: Deployment, members: Members
) -> None:
    async with (
        raw_client(rechecked, members.first_token) as expiring,
        raw_client(rechecked, members.first_second_token) as same_user,
    ):
        await expiring.assert_answers_ping()
        deployment.expire_token(members.first_token_name)
        await assert_closed(expiring, 4401, "token expired")
        await assert_still_served(same_user)


async def test_changes_without_an_announcement_are_caught_by_the_recheck(
    rechecked: ServerProcess, deployment: Deployment, members: Members
) -> None:
    async with (
        raw_client(rechecked, members.first_token) as revoked,
        raw_client(rechecked, members.other_token) as colleague,
    ):
        await start_sleep(revoked)
        # Straight to the database: nothing is announced (as when the message is lost).
        deployment.revoke_token(members.first_token_name)
        await assert_closed(revoked, 4401, "token revoked")
        deployment.set_enabled_tools(members.tenant, ["add"])
        await next_matching(
            colleague, lambda m: m.get("method") == "notifications/tools/list_changed", WAIT
        )
        refused = error_of(await colleague.call_tool("echo", {"text": "hi"}))
        assert refused["message"] == "Tool 'echo' is not enabled for your tenant"
        await assert_still_served(colleague)
    row = wait_for_operation(deployment, members.first, "sleep", "cancelled")
    assert row["error"] == REVOKED_REASON
