"""Malformed and unexpected input over a raw WebSocket: each is answered (or ignored) exactly
as JSON-RPC 2.0 and MCP say, and the same connection keeps working afterwards."""

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import (
    LATEST_VERSION,
    RawClient,
    ServerProcess,
    error_of,
    raw_client,
    result_of,
)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
MAX_MESSAGE_BYTES = 1024 * 1024
BUILTIN_TOOLS = {"add", "subtract", "multiply", "divide", "echo"}


def padded_ping(size: int) -> str:
    """A valid ping request whose text frame is exactly `size` bytes."""
    head, tail = '{"jsonrpc":"2.0","id":"big","method":"ping","params":{"pad":"', '"}}'
    frame = head + "x" * (size - len(head) - len(tail)) + tail
    assert len(frame.encode()) == size
    return frame


async def send_then_receive(client: RawClient, frame: str) -> None:
    """Send `frame` and read the next frame. The server may close the connection while the
    frame is still being sent: then the send itself fails, knowing the close frame it got."""
    await client.ws.send(frame)
    await client.recv()


# --- frames that are not JSON-RPC -----------------------------------------------------------


@pytest.mark.parametrize("frame", ["{not json", '{"jsonrpc": "2.0", "id": 1,', "", "nul\x00l"])
async def test_invalid_json_is_a_parse_error_with_null_id(
    server: ServerProcess, accounts: Accounts, frame: str
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.ws.send(frame)
        reply = await client.recv()
        assert reply["id"] is None
        assert reply["jsonrpc"] == "2.0"
        assert error_of(reply)["code"] == PARSE_ERROR
        await client.assert_answers_ping()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        pytest.param("ping", None, id="string"),
        pytest.param({"jsonrpc": "1.0", "id": 7, "method": "ping"}, 7, id="jsonrpc-1.0"),
    ],
)
async def test_json_that_is_not_json_rpc_is_an_invalid_request(
    server: ServerProcess, accounts: Accounts, message: Any, expected_id: Any
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.send(message)
        reply = await client.recv()
        assert reply["id"] == expected_id
        assert error_of(reply)["code"] == INVALID_REQUEST
        await client.assert_answers_ping()


async def test_binary_frame_is_refused_and_the_connection_stays_usable(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.ws.send(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
        reply = await client.recv()
        assert reply["id"] is None
        assert error_of(reply)["code"] == INVALID_REQUEST
        await client.assert_answers_ping()
        assert result_of(await client.call_tool("add", {"a": 1, "b": 1}))["structuredContent"] == {
            "result": 2
        }


async def test_frame_of_exactly_the_limit_is_accepted(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.ws.send(padded_ping(MAX_MESSAGE_BYTES))
        assert await client.recv_response("big") == {"jsonrpc": "2.0", "id": "big", "result": {}}
        await client.assert_answers_ping()


async def test_frame_over_one_mebibyte_closes_with_1009(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice) as client:
        with pytest.raises(ConnectionClosed) as closed:
            await send_then_receive(client, padded_ping(MAX_MESSAGE_BYTES + 1))
    assert closed.value.rcvd is not None, "the server did not send a close frame"
    assert closed.value.rcvd.code == 1009


# --- JSON-RPC errors on a live session ------------------------------------------------------


async def test_unknown_method_is_method_not_found(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice) as client:
        error = error_of(await client.request("resources/teleport", {}))
        assert error["code"] == METHOD_NOT_FOUND
        assert "resources/teleport" in error["message"]
        await client.assert_answers_ping()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize("params", [[1, 2]], ids=["array"])
async def test_params_that_are_not_an_object_are_invalid_params(
    server: ServerProcess, accounts: Accounts, params: Any
) -> None:
    async with raw_client(server, accounts.alice) as client:
        assert error_of(await client.request("tools/list", params))["code"] == INVALID_PARAMS
        await client.assert_answers_ping()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize(
    "params", [pytest.param({"name": "add", "arguments": [1, 2]}, id="arguments-array")]
)
async def test_malformed_tools_call_is_invalid_params(
    server: ServerProcess, accounts: Accounts, params: dict[str, Any]
) -> None:
    async with raw_client(server, accounts.alice) as client:
        assert error_of(await client.request("tools/call", params))["code"] == INVALID_PARAMS
        await client.assert_answers_ping()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize(
    ("arguments", "named"), [pytest.param({"a": "x", "b": 2}, "a", id="string-for-number")]
)
async def test_wrong_arguments_are_an_error_result(
    server: ServerProcess, accounts: Accounts, arguments: dict[str, Any], named: str
) -> None:
    async with raw_client(server, accounts.alice) as client:
        result = result_of(await client.call_tool("add", arguments))
        assert result["isError"] is True
        assert "structuredContent" not in result
        [item] = result["content"]
        assert item["type"] == "text"
        assert named in item["text"]
        await client.assert_answers_ping()


# --- lifecycle ------------------------------------------------------------------------------


async def test_only_ping_is_answered_before_initialize(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice, version=None) as client:
        await client.assert_answers_ping()
        for method, params in [
            ("tools/list", {}),
            ("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}),
            ("logging/setLevel", {"level": "debug"}),
        ]:
            response = await client.request(method, params)
            assert error_of(response)["code"] == INVALID_REQUEST, (method, response)
        await client.assert_answers_ping()
        # The refusals did not spoil the session: it can still be initialized.
        await client.initialize()
        assert len(result_of(await client.request("tools/list"))["tools"]) >= len(BUILTIN_TOOLS)


async def test_second_initialize_is_refused(server: ServerProcess, accounts: Accounts) -> None:
    async with raw_client(server, accounts.alice) as client:
        response = await client.request(
            "initialize",
            {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "x"}},
        )
        assert error_of(response)["code"] == INVALID_REQUEST
        await client.assert_answers_ping()
        # The first negotiation still holds: 2025-11-25 has no batches.
        await client.send([{"jsonrpc": "2.0", "id": "b", "method": "ping"}])
        assert error_of(await client.recv())["code"] == INVALID_REQUEST


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize(
    "params", [pytest.param({"capabilities": {}, "clientInfo": {"name": "x"}}, id="no-version")]
)
async def test_malformed_initialize_is_invalid_params(
    server: ServerProcess, accounts: Accounts, params: dict[str, Any]
) -> None:
    async with raw_client(server, accounts.alice, version=None) as client:
        assert error_of(await client.request("initialize", params))["code"] == INVALID_PARAMS
        await client.assert_answers_ping()
        await client.initialize()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize(
    ("requested", "negotiated"), [("2024-11-05", "2024-11-05"), ("1999-01-01", LATEST_VERSION)]
)
async def test_version_negotiation(
    server: ServerProcess, accounts: Accounts, requested: str, negotiated: str
) -> None:
    async with raw_client(server, accounts.alice, version=None) as client:
        result = await client.initialize(requested)
        assert result["protocolVersion"] == negotiated
        assert result["serverInfo"]["name"] == "mcp-realtime"
        await client.assert_answers_ping()


# --- batches --------------------------------------------------------------------------------


async def test_batch_is_processed_in_2025_03_26(server: ServerProcess, accounts: Accounts) -> None:
    async with raw_client(server, accounts.alice, version="2025-03-26") as client:
        await client.send(
            [
                {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": 99},
                },
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
                },
                {"jsonrpc": "2.0", "id": "three", "method": "tools/list"},
                {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
            ]
        )
        replies = await client.recv()
        assert isinstance(replies, list), replies
        by_id = {reply["id"]: reply for reply in replies}
        assert len(by_id) == len(replies) == 4, replies
        assert result_of(by_id[1]) == {}
        assert result_of(by_id[2])["structuredContent"] == {"result": 3}
        assert {tool["name"] for tool in result_of(by_id["three"])["tools"]} >= BUILTIN_TOOLS
        assert error_of(by_id[4])["code"] == METHOD_NOT_FOUND
        await client.assert_answers_ping()


async def test_batch_of_only_notifications_gets_no_reply_in_2025_03_26(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice, version="2025-03-26") as client:
        await client.send(
            [
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
            ]
        )
        await client.assert_answers_ping()


async def test_empty_batch_is_an_invalid_request_in_2025_03_26(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice, version="2025-03-26") as client:
        await client.send([])
        reply = await client.recv()
        assert reply["id"] is None
        assert error_of(reply)["code"] == INVALID_REQUEST
        await client.assert_answers_ping()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize("version", [LATEST_VERSION])
async def test_batch_is_refused_outside_2025_03_26(
    server: ServerProcess, accounts: Accounts, version: str | None
) -> None:
    async with raw_client(server, accounts.alice, version=version) as client:
        await client.send(
            [
                {"jsonrpc": "2.0", "id": "in-batch-1", "method": "ping"},
                {"jsonrpc": "2.0", "id": "in-batch-2", "method": "ping"},
            ]
        )
        reply = await client.recv()
        assert isinstance(reply, dict), f"the batch was processed: {reply!r}"
        assert reply["id"] is None
        assert error_of(reply)["code"] == INVALID_REQUEST
        # Nothing of the batch ran: the next frame is the reply to this ping.
        await client.assert_answers_ping()


# --- messages that must get no reply --------------------------------------------------------


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize(
    "message", [pytest.param({"jsonrpc": "2.0", "id": "never-sent", "result": {}}, id="result")]
)
async def test_response_to_an_unknown_request_is_ignored(
    server: ServerProcess, accounts: Accounts, message: dict[str, Any]
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.send(message)
        await client.assert_answers_ping()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize(
    "message",
    [
        pytest.param(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}},
            id="cancelled-without-request-id",
        ),
        pytest.param({"jsonrpc": "2.0", "method": "no/such/notification"}, id="unknown-method"),
    ],
)
async def test_bad_notification_gets_no_reply(
    server: ServerProcess, accounts: Accounts, message: dict[str, Any]
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.send(message)
        await client.assert_answers_ping()


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize("request_id", [12345])
async def test_cancelling_an_unknown_request_is_ignored(
    server: ServerProcess, accounts: Accounts, request_id: int | str
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.notify(
            "notifications/cancelled", {"requestId": request_id, "reason": "changed my mind"}
        )
        await client.assert_answers_ping()
        result = result_of(await client.call_tool("add", {"a": 2, "b": 3}))
        assert result["structuredContent"] == {"result": 5}


# --- pagination -----------------------------------------------------------------------------


@pytest.fixture
def paged_server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(MCP_TOOLS_PAGE_SIZE="2")


async def test_tools_list_pages_with_cursors(
    paged_server: ServerProcess, server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(paged_server, accounts.alice) as client:
        names: list[str] = []
        page_sizes: list[int] = []
        params: dict[str, Any] = {}
        while True:
            page = result_of(await client.request("tools/list", params))
            names += [tool["name"] for tool in page["tools"]]
            page_sizes.append(len(page["tools"]))
            if "nextCursor" not in page:
                break
            assert isinstance(page["nextCursor"], str)
            params = {"cursor": page["nextCursor"]}
            assert len(page_sizes) <= len(names), "the cursors never end"
    assert set(names) >= BUILTIN_TOOLS
    assert len(names) == len(set(names)), f"a tool was listed twice: {names}"
    assert len(page_sizes) >= 3
    assert all(size == 2 for size in page_sizes[:-1]), page_sizes
    assert page_sizes[-1] in (1, 2), page_sizes
    # The default server (page size 50) lists the same tools in one page, in the same order.
    async with raw_client(server, accounts.alice) as client:
        unpaged = result_of(await client.request("tools/list"))
    assert "nextCursor" not in unpaged
    assert names == [tool["name"] for tool in unpaged["tools"]]


# A sample: the whole matrix runs at the session, in tests/ws/test_session_input.py.
@pytest.mark.parametrize("cursor", ["not-a-cursor", None])
async def test_invalid_cursor_is_invalid_params(
    paged_server: ServerProcess, accounts: Accounts, cursor: Any
) -> None:
    async with raw_client(paged_server, accounts.alice) as client:
        response = await client.request("tools/list", {"cursor": cursor})
        if cursor is None:
            # An explicit null cursor is the same as none: the first page.
            assert len(result_of(response)["tools"]) == 2
        else:
            assert error_of(response)["code"] == INVALID_PARAMS
        await client.assert_answers_ping()


async def test_client_without_close_frame_leaves_the_server_healthy(
    server: ServerProcess, accounts: Accounts
) -> None:
    async with raw_client(server, accounts.alice) as client:
        await client.send(
            {
                "jsonrpc": "2.0",
                "id": "left-behind",
                "method": "tools/call",
                "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
            }
        )
        client.ws.transport.abort()
    async with raw_client(server, accounts.alice) as client:
        await client.assert_answers_ping()
    assert server.is_alive()


# --- and after all of it --------------------------------------------------------------------


async def test_server_survived_everything(server: ServerProcess, accounts: Accounts) -> None:
    assert server.is_alive()
    assert server.health_status() == 200
    async with raw_client(server, accounts.alice) as client:
        result = result_of(await client.call_tool("multiply", {"a": 6, "b": 7}))
        assert result["structuredContent"] == {"result": 42}
        assert json.loads(result["content"][0]["text"]) == {"result": 42}
    log = server.log_text()
    assert "Exception in ASGI application" not in log
    assert "Traceback" not in log
