"""Notifications over Streamable HTTP on a real server: 2026-07-28 `subscriptions/listen` as a
long-lived SSE response (acknowledgement first, tagged messages, keep-alive comments, bounds,
ended by the client leaving), and the handshake era's resources/subscribe delivered on the
session's GET stream. A server going away ends a listen with its complete response."""

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

from httpx_sse import ServerSentEvent

from mcp_server.client.http import HttpSession
from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import Deployment, ServerProcess, wait_until_async
from tests.http.conftest import Member, http_session
from tests.http.test_streamable_http import WAIT, event_matching, next_event

SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
ACK = "notifications/subscriptions/acknowledged"
LONG_BATCH = {"name": "process_batch", "arguments": {"count": 100_000, "item_ms": 1}}


def take_tools_away(operator: Deployment, member: Member) -> None:
    """Leave the member's tenant `add` alone: tools, prompts and templates lists change."""
    operator.shell(
        "from accounts.models import Tenant; from accounts.services import tenant_update; "
        f"tenant = Tenant.objects.get(slug={member.tenant!r}); "
        "tenant.enabled_tools = ['add']; "
        "tenant_update(tenant=tenant, changed=['enabled_tools'])"
    )


async def acknowledgement(events: AsyncIterator[ServerSentEvent] | None, listen_id: int) -> Any:
    """The first event of a listen, checked to be its acknowledgement; what it honours."""
    assert events is not None, "a listen is answered as an SSE stream"
    first = (await next_event(events, "the acknowledgement")).json()
    assert first["method"] == ACK
    assert first["params"]["_meta"] == {SUBSCRIPTION_ID: listen_id}
    return first["params"]["notifications"]


async def start_run(session: HttpSession) -> str:
    """Start a long run as a (handshake-era) task of `session`'s user; its resource URI."""
    started = await session.request("tools/call", {**LONG_BATCH, "task": {}})
    return f"mcp-realtime://runs/{started['result']['task']['taskId']}"


async def test_a_listen_streams_only_what_it_asked_for_tagged_with_its_id(
    served: ServerProcess, operator: Deployment, member: Member
) -> None:
    async with (
        http_session(served, member.token, initialize=False) as client,
        client.subscribe({"toolsListChanged": True}) as (tools_id, response, tools),
        client.subscribe({"promptsListChanged": True}) as (prompts_id, _, prompts),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "mcp-session-id" not in response.headers
        assert await acknowledgement(tools, tools_id) == {"toolsListChanged": True}
        assert await acknowledgement(prompts, prompts_id) == {"promptsListChanged": True}
        take_tools_away(operator, member)
        assert tools is not None and prompts is not None
        changed = (await next_event(tools, "the tools list change")).json()
        assert changed == {
            "jsonrpc": "2.0",
            "method": "notifications/tools/list_changed",
            "params": {"_meta": {SUBSCRIPTION_ID: tools_id}},
        }
        # The prompts listen hears of the prompts (process_directory needed process_images),
        # never of the tools.
        changed = (await next_event(prompts, "the prompts list change")).json()
        assert changed["method"] == "notifications/prompts/list_changed"
        assert changed["params"]["_meta"] == {SUBSCRIPTION_ID: prompts_id}


async def test_a_listen_hears_of_a_subscribed_run_as_it_progresses(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as starter:
        run = await start_run(starter)
        missing = "mcp-realtime://runs/00000000-0000-0000-0000-000000000000"
        async with starter.subscribe({"resourceSubscriptions": [run, missing]}) as (
            listen_id,
            _,
            events,
        ):
            assert await acknowledgement(events, listen_id) == {"resourceSubscriptions": [run]}
            assert events is not None
            updated = await event_matching(
                events,
                lambda m: m.get("method") == "notifications/resources/updated",
                "a run update",
            )
            assert updated.json()["params"] == {"uri": run, "_meta": {SUBSCRIPTION_ID: listen_id}}
        task_id = run.rsplit("/", 1)[-1]
        assert (await starter.request("tasks/cancel", {"taskId": task_id}))["result"]


async def test_an_idle_listen_gets_keep_alive_comments_and_ends_when_its_client_leaves(
    server_factory: ServerFactory, redis_env: dict[str, str], accounts: Accounts
) -> None:
    server = server_factory(
        MCP_LISTEN_KEEPALIVE_SECONDS="0.2", MCP_LISTENS_PER_USER="1", **redis_env
    )
    async with http_session(server, accounts.alice, initialize=False) as client:
        message, mirrored = client.modern_request(
            "subscriptions/listen", {"notifications": {"toolsListChanged": True}}
        )
        async with client.stream_post(message, **mirrored) as (response, _):
            lines = response.aiter_lines()

            async def comment() -> str:
                while not (line := await anext(lines)).startswith(":"):
                    pass
                return line

            assert (await asyncio.wait_for(comment(), WAIT)).startswith(": keep-alive")
            # The user's one listen is open: another is refused.
            async with client.subscribe({"toolsListChanged": True}) as (_, refused, events):
                assert events is None
                error = (await refused.aread()).decode()
                assert '"listens_per_user"' in error
        # The client left: the listen ends, and its place is free again (which nothing
        # announces: a new listen is tried until it is accepted).

        async def accepted() -> bool:
            async with client.subscribe({"toolsListChanged": True}) as (listen_id, _, events):
                if events is None:
                    return False
                await acknowledgement(events, listen_id)
                return True

        await wait_until_async(accepted, WAIT, "the listen's place to be freed")


async def test_a_listen_needs_an_event_stream_and_a_valid_filter(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice, initialize=False) as client:
        message, mirrored = client.modern_request("subscriptions/listen", {"notifications": {}})
        json_only = await client.post(message, **{**mirrored, "Accept": "application/json"})
        assert json_only.status == 406
        bad = await client.modern("subscriptions/listen", {"notifications": {"taskIds": "x"}})
        assert bad.messages[0]["error"]["code"] == -32602


async def test_resources_subscribe_on_an_http_session_reaches_its_get_stream(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        run = await start_run(session)
        # Subscribed before the GET stream opens: the stream watches what the record holds.
        assert (await session.request("resources/subscribe", {"uri": run}))["result"] == {}
        async with session.listen() as (_, events):
            await event_matching(
                events,
                lambda m: (
                    m.get("method") == "notifications/resources/updated"
                    and m["params"] == {"uri": run}
                ),
                "a run update on the GET stream",
            )
            # Subscribed while it is open: the stream watches it from then on.
            errors = f"{run}/errors"
            assert (await session.request("resources/subscribe", {"uri": errors}))["result"] == {}
            # The stream hears of the new subscription through its channel, as it hears of
            # the run's updates: once a later update arrived, it watches the error log too.
            await event_matching(
                events,
                lambda m: (
                    m.get("method") == "notifications/resources/updated"
                    and m["params"] == {"uri": run}
                ),
                "a later run update on the GET stream",
            )
            task_id = run.rsplit("/", 1)[-1]
            assert (await session.request("tasks/cancel", {"taskId": task_id}))["result"]
            await event_matching(
                events,
                lambda m: (
                    m.get("method") == "notifications/resources/updated"
                    and m["params"] == {"uri": errors}
                ),
                "the run's end on its error log",
            )


async def test_a_server_going_away_ends_its_listens_with_their_complete_response(
    server_factory: ServerFactory, redis_env: dict[str, str], accounts: Accounts
) -> None:
    # A server of its own (servers are shared by env): this one is stopped.
    server = server_factory(MCP_SERVER_TITLE="going away", **redis_env)
    async with (
        http_session(server, accounts.alice, initialize=False) as client,
        client.subscribe({"toolsListChanged": True}) as (listen_id, _, events),
    ):
        await acknowledgement(events, listen_id)
        assert events is not None
        server.process.send_signal(signal.SIGTERM)

        async def rest() -> list[dict[str, Any]]:
            return [event.json() async for event in events if event.data]

        last = (await asyncio.wait_for(rest(), WAIT))[-1]
        assert last["id"] == listen_id
        assert last["result"]["resultType"] == "complete"
        assert last["result"]["_meta"][SUBSCRIPTION_ID] == listen_id
