"""The MCP conversation over the WebSocket consumer, through the full ASGI stack."""

from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from pytest_django.fixtures import Settings

from accounts.services import IssuedToken
from mcp_server.process_runtime import ProcessRuntime
from tests.accounts.factories import member_token
from tests.ws.conftest import ws_connect

pytestmark = pytest.mark.django_db(transaction=True)

BUILTIN_TOOLS = {"add", "subtract", "multiply", "divide", "echo"}


def _ping_frame(size: int) -> str:
    """A ping request of exactly `size` UTF-8 bytes."""
    head, tail = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"', '"}}'
    pad = size - len(head) - len(tail)
    assert pad >= 0
    return head + "x" * pad + tail


@pytest.mark.usefixtures("history")
async def test_mcp_conversation(runtime: ProcessRuntime, token_path: Callable[..., str]) -> None:
    async with ws_connect(runtime, token_path(), subprotocols=["mcp"]) as (
        client,
        (accepted, chosen),
    ):
        assert (accepted, chosen) == (True, "mcp")

        # Before initialize: ping is answered, anything else is refused.
        assert await client.request("ping") == {"jsonrpc": "2.0", "id": 1, "result": {}}
        early = await client.request("tools/list")
        assert early["id"] == 2
        assert early["error"]["code"] == -32600

        result = await client.initialize("2025-11-25")
        assert result["protocolVersion"] == "2025-11-25"
        assert result["serverInfo"]["name"]
        assert result["serverInfo"]["version"]
        assert "tools" in result["capabilities"]
        assert "logging" in result["capabilities"]

        again = await client.request("initialize", {"protocolVersion": "2025-11-25"})
        assert again["error"]["code"] == -32600

        listed = await client.request("tools/list")
        tools = {tool["name"]: tool for tool in listed["result"]["tools"]}
        assert set(tools) >= BUILTIN_TOOLS
        assert tools["add"]["inputSchema"]["required"] == ["a", "b"]
        assert tools["add"]["outputSchema"]["type"] == "object"
        assert "ctx" not in tools["echo"]["inputSchema"]["properties"]

        added = await client.request("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}})
        assert added["result"]["structuredContent"] == {"result": 5}
        assert "isError" not in added["result"]

        divided = await client.request(
            "tools/call", {"name": "divide", "arguments": {"a": 1, "b": 0}}
        )
        assert divided["result"]["isError"] is True

        bad_arguments = await client.request("tools/call", {"name": "add", "arguments": {"a": 2}})
        assert bad_arguments["result"]["isError"] is True

        unknown = await client.request("tools/call", {"name": "nope", "arguments": {}})
        assert unknown["error"]["code"] == -32602

        missing = await client.request("no/such/method")
        assert missing["error"]["code"] == -32601


@pytest.mark.usefixtures("history")
async def test_logging_level_filters_tool_messages(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.initialize()

        # At the default level (info) echo's debug message is not sent: the first frame back
        # is the result itself.
        echoed = await client.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        assert echoed["id"] == 2  # initialize was 1
        assert echoed["result"]["content"] == [{"type": "text", "text": "hi"}]

        assert (await client.request("logging/setLevel", {"level": "debug"}))["result"] == {}
        log = await client.request("tools/call", {"name": "echo", "arguments": {"text": "hey"}})
        assert log == {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "debug", "logger": "echo", "data": "echoing 3 characters"},
        }
        echoed = await client.receive()
        assert echoed["id"] == 4
        assert echoed["result"]["content"] == [{"type": "text", "text": "hey"}]

        assert (await client.request("logging/setLevel", {"level": "error"}))["result"] == {}
        quiet = await client.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert quiet["id"] == 6
        assert "result" in quiet

        wrong = await client.request("logging/setLevel", {"level": "loud"})
        assert wrong["error"]["code"] == -32602
        absent = await client.request("logging/setLevel", {})
        assert absent["error"]["code"] == -32602


async def test_version_negotiation(runtime: ProcessRuntime, token_path: Callable[..., str]) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        missing = await client.request("initialize", {"capabilities": {}})
        assert missing["error"]["code"] == -32602
        # Still waiting for a valid initialize.
        assert (await client.request("tools/list"))["error"]["code"] == -32600
        result = await client.initialize("2099-01-01")
        assert result["protocolVersion"] == "2025-11-25"


@pytest.mark.usefixtures("history")
async def test_tenant_sees_only_its_enabled_tools(
    runtime: ProcessRuntime, transactional_db: None
) -> None:
    issued = await sync_to_async(member_token)("erin", tenant_slug="narrow", enabled_tools=["add"])
    async with ws_connect(runtime, f"/mcp?token={issued.raw}") as (client, _):
        await client.initialize()
        listed = await client.request("tools/list")
        assert [tool["name"] for tool in listed["result"]["tools"]] == ["add"]
        refused = await client.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert refused["error"]["code"] == -32602
        added = await client.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
        assert added["result"]["structuredContent"] == {"result": 2}


async def test_bad_frames_keep_the_connection(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.ws.send_to(text_data="{not json")
        parse_error = await client.receive()
        assert parse_error["id"] is None
        assert parse_error["error"]["code"] == -32700

        await client.ws.send_to(bytes_data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
        binary = await client.receive()
        assert binary["id"] is None
        assert binary["error"]["code"] == -32600
        assert "text" in binary["error"]["message"].lower()

        await client.send(42)
        assert (await client.receive())["error"]["code"] == -32600

        await client.send({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": [1]})
        invalid_params = await client.receive()
        assert invalid_params["id"] == 9
        assert invalid_params["error"]["code"] == -32602

        # Batches are not part of 2025-11-25.
        await client.initialize()
        await client.send([{"jsonrpc": "2.0", "id": 10, "method": "ping"}])
        batch = await client.receive()
        assert batch["id"] is None
        assert batch["error"]["code"] == -32600

        assert (await client.request("ping"))["result"] == {}


async def test_frame_size_limit(
    runtime: ProcessRuntime, token_path: Callable[..., str], settings: Settings
) -> None:
    settings.MCP_MAX_MESSAGE_BYTES = 1000
    async with ws_connect(runtime, token_path()) as (client, _):
        await client.ws.send_to(text_data=_ping_frame(1000))
        assert (await client.receive())["result"] == {}

        await client.ws.send_to(text_data=_ping_frame(1001))
        code, _reason = await client.closed_with()
        assert code == 1009

    async with ws_connect(runtime, token_path()) as (client, _):
        # 500 characters but 1,300 bytes: the limit is in bytes.
        frame = _ping_frame(500).replace("x" * 400, "€" * 400, 1)
        assert len(frame) < 1000 < len(frame.encode())
        await client.ws.send_to(text_data=frame)
        code, _reason = await client.closed_with()
        assert code == 1009


async def test_frame_size_limit_read_at_connect(
    runtime: ProcessRuntime, issued: IssuedToken, settings: Settings
) -> None:
    settings.MCP_MAX_MESSAGE_BYTES = 1000
    async with ws_connect(runtime, f"/mcp?token={issued.raw}") as (client, _):
        settings.MCP_MAX_MESSAGE_BYTES = 100_000
        await client.ws.send_to(text_data=_ping_frame(2000))
        code, _ = await client.closed_with()
        assert code == 1009
