"""The bad-input matrices of tests/e2e/test_bad_input.py, case by case, at the session.

Each message is answered (or ignored) exactly as JSON-RPC 2.0 and MCP say, and the session
keeps working afterwards. The end-to-end suite sends a sample of each matrix through a real
server; the whole matrix runs here, without sockets or a database.
"""

from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS, INVALID_REQUEST
from mcp_server.session import McpSession
from mcp_server.tools.registry import registry
from tests.ws.session_support import Outbox, initialize, make_session, notification, request

LATEST_VERSION = "2025-11-25"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


async def session_at(version: str | None = LATEST_VERSION, **kw: Any) -> tuple[McpSession, Outbox]:
    """A session of the built-in tools, initialized at `version` unless it is None."""
    session, outbox = make_session(registry, **kw)
    if version is not None:
        await initialize(session, outbox, version)
    return session, outbox


async def reply_to(session: McpSession, outbox: Outbox, message: Any) -> Any:
    """The one message the session sends in answer to `message` (it must send exactly one)."""
    sent = len(outbox.messages)
    await session.receive(message)
    await outbox.wait_for(lambda _: len(outbox.messages) > sent)
    await assert_answers_ping(session, outbox, after=sent + 1)
    return outbox.messages[sent]


async def assert_answers_ping(session: McpSession, outbox: Outbox, *, after: int) -> None:
    """The session answers a ping, and sent nothing but that reply past the first `after`."""
    await session.receive(request("still-there", "ping"))
    pong = await outbox.response("still-there")
    assert pong == {"jsonrpc": "2.0", "id": "still-there", "result": {}}
    assert outbox.messages[after:] == [pong], outbox.messages[after:]


def error_code(reply: Any) -> int:
    """The code of an error response (fails on anything else)."""
    assert isinstance(reply, dict) and "result" not in reply, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"], reply
    return int(reply["error"]["code"])


# --- JSON that is not JSON-RPC --------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        pytest.param(42, None, id="number"),
        pytest.param("ping", None, id="string"),
        pytest.param(None, None, id="null"),
        pytest.param({"jsonrpc": "1.0", "id": 7, "method": "ping"}, 7, id="jsonrpc-1.0"),
        pytest.param({"id": 8, "method": "ping"}, 8, id="no-jsonrpc-member"),
        pytest.param({"jsonrpc": "2.0", "id": 9}, 9, id="missing-method"),
        pytest.param({"jsonrpc": "2.0", "id": 10, "method": 5}, 10, id="method-not-a-string"),
        pytest.param({"jsonrpc": "2.0", "id": None, "method": "ping"}, None, id="id-null"),
        pytest.param({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, None, id="id-float"),
        pytest.param({"jsonrpc": "2.0", "id": True, "method": "ping"}, None, id="id-bool"),
        pytest.param({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}, None, id="id-object"),
        pytest.param({"jsonrpc": "2.0", "id": [1], "method": "ping"}, None, id="id-array"),
    ],
)
async def test_json_that_is_not_json_rpc_is_an_invalid_request(
    message: Any, expected_id: Any
) -> None:
    session, outbox = await session_at()
    reply = await reply_to(session, outbox, message)
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == expected_id
    assert error_code(reply) == INVALID_REQUEST


# --- JSON-RPC errors on a live session ------------------------------------------------------


@pytest.mark.parametrize("params", [[1, 2], "text", 3], ids=["array", "string", "number"])
async def test_params_that_are_not_an_object_are_invalid_params(params: Any) -> None:
    session, outbox = await session_at()
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}
    assert error_code(await reply_to(session, outbox, message)) == INVALID_PARAMS


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"name": "add", "arguments": [1, 2]}, id="arguments-array"),
        pytest.param({"name": "add", "arguments": "a=1"}, id="arguments-string"),
        pytest.param({"arguments": {"a": 1, "b": 2}}, id="no-name"),
        pytest.param({"name": 3, "arguments": {}}, id="name-not-a-string"),
    ],
)
async def test_malformed_tools_call_is_invalid_params(params: dict[str, Any]) -> None:
    session, outbox = await session_at()
    reply = await reply_to(session, outbox, request(1, "tools/call", params))
    assert reply["id"] == 1
    assert error_code(reply) == INVALID_PARAMS


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        pytest.param({"a": "x", "b": 2}, "a", id="string-for-number"),
        pytest.param({"a": 1, "b": None}, "b", id="null-for-number"),
        pytest.param({"a": 1}, "b", id="missing"),
        pytest.param({"a": 1, "b": 2, "c": 3}, "c", id="unexpected"),
    ],
)
async def test_wrong_arguments_are_an_error_result(arguments: dict[str, Any], named: str) -> None:
    session, outbox = await session_at()
    message = request(1, "tools/call", {"name": "add", "arguments": arguments})
    result = (await reply_to(session, outbox, message))["result"]
    assert result["isError"] is True
    assert "structuredContent" not in result
    [item] = result["content"]
    assert item["type"] == "text"
    assert named in item["text"]


# --- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"capabilities": {}, "clientInfo": {"name": "x"}}, id="no-version"),
        pytest.param({"protocolVersion": 20251125}, id="version-not-a-string"),
        pytest.param({"protocolVersion": LATEST_VERSION, "capabilities": []}, id="bad-caps"),
    ],
)
async def test_malformed_initialize_is_invalid_params(params: dict[str, Any]) -> None:
    session, outbox = await session_at(version=None)
    assert error_code(await reply_to(session, outbox, request(1, "initialize", params))) == (
        INVALID_PARAMS
    )
    await initialize(session, outbox)  # the refusal did not spoil the session


@pytest.mark.parametrize(
    ("requested", "negotiated"),
    [*((version, version) for version in HANDSHAKE_VERSIONS), ("1999-01-01", LATEST_VERSION)],
)
async def test_version_negotiation(requested: str, negotiated: str) -> None:
    session, outbox = await session_at(version=None)
    params = {"protocolVersion": requested, "capabilities": {}, "clientInfo": {"name": "x"}}
    result = (await reply_to(session, outbox, request(1, "initialize", params)))["result"]
    assert result["protocolVersion"] == negotiated
    assert result["serverInfo"]["name"]


# --- batches --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", None])
async def test_batch_is_refused_outside_2025_03_26(version: str | None) -> None:
    session, outbox = await session_at(version=version)
    batch = [request("in-batch-1", "ping"), request("in-batch-2", "ping")]
    reply = await reply_to(session, outbox, batch)
    assert isinstance(reply, dict), f"the batch was processed: {reply!r}"
    assert reply["id"] is None
    assert error_code(reply) == INVALID_REQUEST


# --- messages that must get no reply --------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"jsonrpc": "2.0", "id": "never-sent", "result": {}}, id="result"),
        pytest.param(
            {"jsonrpc": "2.0", "id": 424242, "error": {"code": -1, "message": "no"}}, id="error"
        ),
        pytest.param(
            {"jsonrpc": "2.0", "method": "notifications/initialized", "params": [1]},
            id="params-array",
        ),
        pytest.param(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "soon"},
            id="params-string",
        ),
        pytest.param(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}},
            id="cancelled-without-request-id",
        ),
        pytest.param(
            notification("notifications/cancelled", {"requestId": {"nested": True}}),
            id="cancelled-request-id-object",
        ),
        pytest.param(
            notification("notifications/progress", {"x": 1}), id="unexpected-notification"
        ),
        pytest.param(notification("no/such/notification"), id="unknown-method"),
        pytest.param(
            notification("notifications/cancelled", {"requestId": 12345, "reason": "no"}),
            id="cancel-unknown-number",
        ),
        pytest.param(
            notification("notifications/cancelled", {"requestId": "never-issued"}),
            id="cancel-unknown-string",
        ),
    ],
)
async def test_message_that_must_get_no_reply_gets_none(message: dict[str, Any]) -> None:
    session, outbox = await session_at()
    sent = len(outbox.messages)
    await session.receive(message)
    await assert_answers_ping(session, outbox, after=sent)


# --- pagination -----------------------------------------------------------------------------


@pytest.mark.parametrize("cursor", ["not-a-cursor", "", "b2Zmc2V0Ojk5", 2, None])
async def test_invalid_cursor_is_invalid_params(cursor: Any) -> None:
    session, outbox = await session_at(page_size=2)
    reply = await reply_to(session, outbox, request(1, "tools/list", {"cursor": cursor}))
    if cursor is None:
        # An explicit null cursor is the same as none: the first page.
        assert len(reply["result"]["tools"]) == 2
    else:
        assert error_code(reply) == INVALID_PARAMS
