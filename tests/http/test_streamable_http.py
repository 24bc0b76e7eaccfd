"""Streamable HTTP at /mcp on one real server (Redis-backed sessions and events): sessions,
JSON and SSE replies, the GET stream, resumption, auth, DNS-rebinding checks, bad input."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent

from mcp_server.client.http import ACCEPT_BOTH, HttpReply, HttpSession
from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import Deployment, ServerProcess, raw_client
from tests.http.conftest import Member, http_session, mcp_url

WAIT = 30.0
PROGRESS_CALL = {"name": "sleep", "arguments": {"seconds": 1.5}, "_meta": {"progressToken": "t"}}
LONG_CALL = {"name": "sleep", "arguments": {"seconds": 600}, "_meta": {"progressToken": "t"}}


@pytest.fixture(scope="module")
def anonymous_tenant(member_pool: list[Member]) -> Member:
    """The tenant of the anonymous server's callers."""
    return member_pool.pop()


@pytest.fixture
def anonymous(
    server_factory: ServerFactory, redis_env: dict[str, str], anonymous_tenant: Member
) -> tuple[ServerProcess, Member]:
    """A server whose anonymous callers act in a tenant of their own (and whose users may
    hold two sessions each)."""
    tenant = anonymous_tenant
    server = server_factory(
        **redis_env, MCP_ANONYMOUS_TENANT=tenant.tenant, MCP_HTTP_SESSIONS_PER_USER="2"
    )
    return server, tenant


def call(request_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """A `tools/call` request."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def answer_of(reply: HttpReply, request_id: int) -> dict[str, Any]:
    """The response to `request_id` that `reply` carried."""
    response = reply.response(request_id)
    assert response is not None, reply.messages
    return response


def error_of(reply: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC error of an HTTP refusal (it carries no request id)."""
    body = reply.json()
    assert body["id"] is None, body
    return dict(body["error"])


async def next_event(events: AsyncIterator[ServerSentEvent], what: str) -> ServerSentEvent:
    """The next event of a stream, within WAIT seconds."""
    try:
        return await asyncio.wait_for(anext(events), WAIT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def event_matching(
    events: AsyncIterator[ServerSentEvent], wanted: Any, what: str
) -> ServerSentEvent:
    """The first event whose message `wanted` accepts."""
    while True:
        event = await next_event(events, what)
        if event.data and wanted(event.json()):
            return event


async def drained(events: AsyncIterator[ServerSentEvent], what: str) -> None:
    """Read a stream to its end (the server ended it), within WAIT seconds."""

    async def to_the_end() -> None:
        async for _ in events:
            pass

    try:
        await asyncio.wait_for(to_the_end(), WAIT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# --- sessions -----------------------------------------------------------------------------


async def test_initialize_mints_an_unguessable_session_id(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice, initialize=False) as one:
        hello = await one.initialize()
        assert hello["protocolVersion"] == "2025-11-25"
        assert hello["capabilities"]["tools"] == {"listChanged": True}
        async with http_session(served, accounts.alice) as other:
            assert one.session_id and other.session_id
            assert one.session_id != other.session_id
            assert len(one.session_id) >= 40
            assert all(0x21 <= ord(c) <= 0x7E for c in one.session_id)


async def test_requests_are_answered_as_json_or_sse_by_accept_and_call(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        listed = await session.post({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
        assert listed.status == 200 and not listed.streamed
        assert listed.headers["content-type"] == "application/json"
        assert any(t["name"] == "add" for t in listed.messages[0]["result"]["tools"])
        # A short tool that answers before it sends anything else: plain JSON.
        added = await session.post(call(8, {"name": "add", "arguments": {"a": 2, "b": 3}}))
        assert added.status == 200 and not added.streamed
        assert answer_of(added, 8)["result"]["structuredContent"] == {"result": 5.0}
        # A short one that sends something first (echo logs at debug) streams after all.
        level = {"jsonrpc": "2.0", "id": 11, "method": "logging/setLevel"}
        assert (await session.post({**level, "params": {"level": "debug"}})).status == 200
        echoed = await session.post(call(12, {"name": "echo", "arguments": {"text": "hi"}}))
        assert echoed.streamed
        methods = [m.get("method") for m in echoed.messages]
        assert methods[0] == "notifications/message" and echoed.messages[-1] == echoed.response(12)
        # A long one streams at once, even when it sends nothing before its response.
        batch = {"name": "process_batch", "arguments": {"count": 1, "item_ms": 0}}
        batched = await session.post(call(10, batch))
        assert batched.streamed
        # The priming event first (an id, no data), then the response, the stream's last.
        assert len(batched.event_ids) == 2 and all(batched.event_ids)
        assert answer_of(batched, 10)["result"]["structuredContent"]["processed"] == 1
        json_only = await session.post(
            call(9, {"name": "add", "arguments": {"a": 1, "b": 1}}), Accept="application/json"
        )
        assert not json_only.streamed
        assert answer_of(json_only, 9)["result"]["structuredContent"] == {"result": 2.0}


async def test_a_call_with_progress_streams_it_before_the_response(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        reply = await session.post(call(1, PROGRESS_CALL))
    progress = [m for m in reply.messages if m.get("method") == "notifications/progress"]
    assert progress and all(p["params"]["progressToken"] == "t" for p in progress)
    values = [p["params"]["progress"] for p in progress]
    assert values == sorted(set(values))
    assert reply.messages[-1] == reply.response(1)
    assert reply.messages[-1]["result"]["content"][0]["text"] == "slept 1.5 s"
    assert len(set(reply.event_ids)) == len(reply.event_ids)


async def test_notifications_and_responses_are_accepted_with_202(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        assert await session.notify("notifications/roots/list_changed") == 202
        answer = await session.post({"jsonrpc": "2.0", "id": "s-1", "result": {}})
        assert answer.status == 202 and answer.messages == []


async def test_delete_ends_the_session_then_it_is_404(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        async with session.listen() as (response, events):
            assert response.status_code == 200
            await next_event(events, "the priming event")
            assert await session.delete() == 204
            await drained(events, "the end of the GET stream")
        gone = await session.post({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert gone.status == 404
        assert "initialize" in gone.messages[0]["error"]["message"]
        assert await session.delete() == 404


async def test_a_missing_session_is_400_and_another_users_session_404(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with httpx.AsyncClient() as client:
        missing = await client.post(
            mcp_url(served),
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Authorization": f"Bearer {accounts.alice}", "Accept": ACCEPT_BOTH},
        )
    assert missing.status_code == 400
    assert "Mcp-Session-Id" in error_of(missing)["message"]
    async with (
        http_session(served, accounts.alice) as alices,
        http_session(served, accounts.bob, initialize=False) as bobs,
    ):
        bobs.session_id, bobs.protocol_version = alices.session_id, alices.protocol_version
        stolen = await bobs.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert stolen.status == 404


async def test_an_unsupported_protocol_version_is_400(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        for version in ("1999-01-01", "not-a-version"):
            reply = await session.post(
                {"jsonrpc": "2.0", "id": 1, "method": "ping"}, **{"MCP-Protocol-Version": version}
            )
            assert reply.status == 400, version
            assert "MCP-Protocol-Version" in reply.messages[0]["error"]["message"]
        # A supported revision other than the session's is not refused (the transport spec
        # refuses only invalid or unsupported ones; the conformance suite sends 2025-03-26 on
        # extra streams): the session's own revision governs the request.
        reply = await session.post(
            {"jsonrpc": "2.0", "id": 2, "method": "ping"}, **{"MCP-Protocol-Version": "2025-03-26"}
        )
        assert reply.status == 200
        assert reply.messages[0]["result"] == {}
        assert (await session.request("ping"))["result"] == {}


# --- the GET stream and resumption ---------------------------------------------------------


async def test_the_get_stream_gets_broadcasts(
    served: ServerProcess, operator: Deployment, member: Member
) -> None:
    async with http_session(served, member.token) as session, session.listen() as listened:
        response, events = listened
        assert response.headers["content-type"].startswith("text/event-stream")
        primed = await next_event(events, "the priming event")
        assert primed.id and not primed.data
        operator.manage("broadcast", "maintenance at noon", "--tenant", member.tenant)
        notice = await event_matching(
            events, lambda m: m.get("method") == "notifications/message", "the broadcast"
        )
        assert notice.json()["params"]["data"] == "maintenance at noon"
        assert notice.id and notice.id != primed.id


async def test_the_get_stream_announces_a_changed_tool_list(
    served: ServerProcess, operator: Deployment, member: Member
) -> None:
    async with http_session(served, member.token) as session:
        async with session.listen() as (_, events):
            await next_event(events, "the priming event")
            operator.shell(
                "from accounts.models import Tenant; from accounts.services import tenant_update; "
                f"tenant = Tenant.objects.get(slug={member.tenant!r}); "
                "tenant.enabled_tools = ['add']; "
                "tenant_update(tenant=tenant, changed=['enabled_tools'])"
            )
            await event_matching(
                events,
                lambda m: m.get("method") == "notifications/tools/list_changed",
                "the list change",
            )
        listed = await session.request("tools/list")
        assert [tool["name"] for tool in listed["result"]["tools"]] == ["add"]


async def test_a_dropped_response_stream_is_resumed_with_last_event_id(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        seen: list[str] = []
        async with session.stream_post(call(1, PROGRESS_CALL)) as (_, events):
            assert events is not None
            seen.append((await next_event(events, "the priming event")).id)
            progress = await event_matching(
                events, lambda m: m.get("method") == "notifications/progress", "progress"
            )
            seen.append(progress.id)
        # The client left; the call goes on. Resume after the last event it saw.
        async with session.listen(last_event_id=seen[-1]) as (response, resumed):
            assert response.status_code == 200
            rest = [event async for event in resumed]
        assert rest and rest[-1].json()["id"] == 1
        assert rest[-1].json()["result"]["content"][0]["text"] == "slept 1.5 s"
        ids = [event.id for event in rest]
        assert not set(ids) & set(seen) and len(set(ids)) == len(ids)
        unknown = await session.client.get(
            session.url, headers=session.headers(**{"Last-Event-ID": "nonsense"})
        )
        assert unknown.status_code == 400


async def test_notifications_cancelled_stops_a_streamed_call(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        async with session.stream_post(call(41, LONG_CALL)) as (_, events):
            assert events is not None
            await event_matching(
                events, lambda m: m.get("method") == "notifications/progress", "progress"
            )
            status = await session.notify(
                "notifications/cancelled", {"requestId": 41, "reason": "changed my mind"}
            )
            assert status == 202
            rest = [event async for event in events]
        answered = [e for e in rest if e.data and e.json().get("id") == 41]
        assert not answered, "a cancelled call answered"
        assert (await session.request("ping"))["result"] == {}


# --- authentication and admission -----------------------------------------------------------


async def test_no_or_a_bad_token_is_401_with_a_bearer_challenge(
    served: ServerProcess, accounts: Accounts
) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    async with httpx.AsyncClient() as client:
        bare = await client.post(mcp_url(served), json=initialize)
        bad = await client.post(
            mcp_url(served), json=initialize, headers={"Authorization": "Bearer mcp_nope"}
        )
        revoked = await client.post(
            mcp_url(served),
            json=initialize,
            headers={"Authorization": f"Bearer {accounts.alice_revoked}"},
        )
        in_url = await client.post(f"{mcp_url(served)}?token={accounts.alice}", json=initialize)
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="mcp"'
    for refused in (bad, revoked, in_url):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer realm=")
    assert error_of(revoked)["message"] == "token revoked"
    assert "URL" in error_of(in_url)["message"]
    assert accounts.alice not in served.log_text()


async def test_a_revoked_token_is_refused_and_its_live_session_ended(
    served: ServerProcess, operator: Deployment, member: Member
) -> None:
    async with http_session(served, member.token) as session:
        async with (
            session.listen() as (_, events),
            session.stream_post(call(3, LONG_CALL)) as (_, calling),
        ):
            await next_event(events, "the priming event")
            assert calling is not None
            await event_matching(
                calling, lambda m: m.get("method") == "notifications/progress", "progress"
            )
            operator.shell(
                "from accounts.models import ApiToken; from accounts.services import token_revoke; "
                f"token_revoke(token=ApiToken.objects.get(name={member.token_name!r}))"
            )
            # The GET stream ends, and so does the call's: cancelled as revoked.
            await drained(events, "the end of the revoked session's stream")
            await drained(calling, "the end of the revoked call's stream")
        refused = await session.post({"jsonrpc": "2.0", "id": 5, "method": "ping"})
        assert refused.status == 401
        assert refused.messages[0]["error"]["message"] == "token revoked"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Origin": "http://evil.example"}, "Origin not allowed"),
        ({"Host": "evil.example"}, "Host not allowed"),
    ],
)
async def test_dns_rebinding_is_refused_with_403(
    served: ServerProcess, accounts: Accounts, headers: dict[str, str], reason: str
) -> None:
    async with httpx.AsyncClient() as client:
        refused = await client.post(
            mcp_url(served),
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"Authorization": f"Bearer {accounts.alice}", **headers},
        )
    assert refused.status_code == 403
    assert error_of(refused)["message"] == reason


async def test_the_servers_own_origin_is_allowed(served: ServerProcess, accounts: Accounts) -> None:
    async with http_session(served, accounts.alice, initialize=False) as session:
        session._headers["Origin"] = served.http_url
        await session.initialize()


async def test_an_oversized_body_is_413_and_malformed_json_a_parse_error(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        padding = b"a" * (1 << 20)
        too_big = await session.post(b'{"jsonrpc":"2.0","id":1,"method":"ping","x":"%s"}' % padding)
        assert too_big.status == 413
        broken = await session.post(b'{"jsonrpc": "2.0", "id": 1,')
        assert broken.status == 400 and broken.messages[0]["error"]["code"] == -32700
        batch = await session.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
        assert batch.status == 400 and batch.messages[0]["error"]["code"] == -32600
        not_rpc = await session.post({"hello": "world"})
        assert not_rpc.status == 400 and not_rpc.messages[0]["error"]["code"] == -32600
        assert (await session.request("ping"))["result"] == {}


async def test_the_anonymous_tenant_serves_without_a_token_only_where_configured(
    anonymous: tuple[ServerProcess, Member], served: ServerProcess
) -> None:
    open_server, _ = anonymous
    async with http_session(open_server, None) as session:
        added = await session.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert added["result"]["structuredContent"] == {"result": 3.0}
    async with httpx.AsyncClient() as client:
        closed = await client.post(
            mcp_url(served),
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        )
    assert closed.status_code == 401


async def test_the_websocket_binding_still_serves_the_same_path(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(served, accounts.alice) as client:
        reply = await client.call_tool("add", {"a": 1, "b": 1})
        assert reply["result"]["structuredContent"] == {"result": 2.0}


async def test_sessions_per_user_are_capped(
    anonymous: tuple[ServerProcess, Member], member: Member
) -> None:
    capped, _ = anonymous
    sessions = [HttpSession(mcp_url(capped), member.token) for _ in range(3)]
    try:
        for session in sessions[:2]:
            await session.initialize()
        with pytest.raises(RuntimeError, match="429"):
            await sessions[2].initialize()
        assert await sessions[0].delete() == 204
        await sessions[2].initialize()
    finally:
        for session in sessions:
            await session.close()
