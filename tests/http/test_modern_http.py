"""2026-07-28 over Streamable HTTP on a real server: POSTs without a session, each carrying
its `_meta` and the headers that mirror it; the handshake era beside it on the same path."""

import asyncio
import secrets
from typing import Any

import pytest

from mcp_server.client.http import HttpSession
from mcp_server.client.wire import MODERN_VERSION
from tests.e2e.conftest import Accounts
from tests.e2e.history import wait_for_operation
from tests.e2e.support import Deployment, ServerProcess
from tests.http.conftest import http_session
from tests.http.test_streamable_http import event_matching

SERVER_INFO = "io.modelcontextprotocol/serverInfo"


async def test_discover_list_and_a_call_with_progress_need_no_session(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice, initialize=False) as client:
        discovered = await client.modern("server/discover")
        assert discovered.status == 200 and not discovered.streamed
        assert "mcp-session-id" not in discovered.headers
        result = discovered.messages[0]["result"]
        assert result["supportedVersions"] == [MODERN_VERSION]
        assert result["_meta"][SERVER_INFO]["name"] == "mcp-realtime"
        assert (result["resultType"], result["cacheScope"]) == ("complete", "public")

        listed = await client.modern("tools/list")
        tools = listed.messages[0]["result"]["tools"]
        assert {"add", "sleep"} <= {tool["name"] for tool in tools}

        called = await client.modern(
            "tools/call",
            {"name": "sleep", "arguments": {"seconds": 0.5}, "_meta": {"progressToken": "s"}},
        )
        assert called.status == 200 and called.streamed
        assert called.event_ids == [""] * len(called.messages)  # not resumable: no ids
        progress = [m for m in called.messages if m.get("method") == "notifications/progress"]
        assert progress and {p["params"]["progressToken"] for p in progress} == {"s"}
        final = called.messages[-1]
        assert final["result"]["content"][0]["text"] == "slept 0.5 s"
        assert final["result"]["resultType"] == "complete"
        assert "mcp-session-id" not in called.headers


async def test_a_legacy_session_id_is_ignored_on_a_modern_request(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice) as session:
        assert session.session_id
        reply = await session.modern("tools/list", headers={"Mcp-Session-Id": "no-such-session"})
        assert reply.status == 200
        assert reply.messages[0]["result"]["resultType"] == "complete"
        # The session itself is untouched and still of its own era.
        legacy = await session.request("tools/list")
        assert "resultType" not in legacy["result"]


@pytest.mark.parametrize(
    ("headers", "params", "status", "code"),
    [
        ({}, {"_meta": None}, 400, -32602),
        ({"Mcp-Method": "tools/list"}, {}, 400, -32020),
        ({"MCP-Protocol-Version": "v999"}, {}, 400, -32020),
    ],
)
async def test_a_bad_envelope_is_400_with_the_requests_id(
    served: ServerProcess,
    accounts: Accounts,
    headers: dict[str, str],
    params: dict[str, None],
    status: int,
    code: int,
) -> None:
    async with http_session(served, accounts.alice, initialize=False) as client:
        message, mirrored = client.modern_request("server/discover")
        if params.get("_meta", "") is None:
            message["params"].pop("_meta")
        reply = await client.post(message, **{**mirrored, **headers})
        assert reply.status == status
        assert reply.messages[0]["id"] == message["id"]
        assert reply.messages[0]["error"]["code"] == code


async def test_an_unknown_method_is_404_and_an_unsupported_version_400(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice, initialize=False) as client:
        missing = await client.modern("ping")
        assert missing.status == 404
        assert missing.messages[0]["error"]["code"] == -32601

        message, mirrored = client.modern_request("server/discover")
        message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "v999"
        reply = await client.post(message, **{**mirrored, "MCP-Protocol-Version": "v999"})
        assert reply.status == 400
        error = reply.messages[0]["error"]
        assert error["code"] == -32022
        assert error["data"] == {"supported": [MODERN_VERSION], "requested": "v999"}


def sleep_call(client: HttpSession, request_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A long modern tools/call of `sleep` with progress, under `request_id`."""
    params = {"name": "sleep", "arguments": {"seconds": 60}, "_meta": {"progressToken": "p"}}
    message, headers = client.modern_request("tools/call", params)
    message["id"] = request_id
    return message, headers


async def test_closing_a_modern_calls_stream_cancels_the_call(
    served: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    request_id = f"modern-stream-{secrets.token_hex(4)}"
    async with http_session(served, accounts.alice, initialize=False) as client:
        message, headers = sleep_call(client, request_id)
        async with client.stream_post(message, **headers) as (response, events):
            assert response.status_code == 200 and events is not None
            progress = await event_matching(
                events, lambda m: m.get("method") == "notifications/progress", "progress"
            )
            assert progress.id == ""  # nothing to resume from
        # Leaving the block closed the stream.
        what = "the modern call to be cancelled"
        await asyncio.to_thread(
            wait_for_operation, deployment, what, request_id=request_id, status="cancelled"
        )


async def test_leaving_a_modern_json_answer_cancels_the_call(
    served: ServerProcess, accounts: Accounts, deployment: Deployment
) -> None:
    request_id = f"modern-json-{secrets.token_hex(4)}"
    async with http_session(served, accounts.alice, initialize=False) as client:
        message, headers = sleep_call(client, request_id)
        answering = asyncio.ensure_future(
            client.post(message, **{**headers, "Accept": "application/json"})
        )
        await asyncio.to_thread(
            wait_for_operation, deployment, "it to run", request_id=request_id, status="running"
        )
        answering.cancel()  # the client gives up: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await answering
    what = "the modern call to be cancelled"
    await asyncio.to_thread(
        wait_for_operation, deployment, what, request_id=request_id, status="cancelled"
    )


async def test_a_modern_notification_is_accepted_with_202(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice, initialize=False) as client:
        notification = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}}
        reply = await client.post(notification, **{"MCP-Protocol-Version": MODERN_VERSION})
        assert reply.status == 202
        assert reply.messages == []


async def test_get_and_delete_are_not_part_of_2026_07_28(
    served: ServerProcess, accounts: Accounts
) -> None:
    async with http_session(served, accounts.alice, initialize=False) as client:
        headers = client.headers(**{"MCP-Protocol-Version": MODERN_VERSION})
        for method in ("GET", "DELETE"):
            reply = await client.client.request(
                method, client.url, headers={**headers, "Accept": "text/event-stream"}
            )
            assert reply.status_code == 405, method
            assert reply.headers["allow"] == "POST"
