"""The load generators' use of `mcp_server.client`: their connections and prebuilt frames."""

from __future__ import annotations

from typing import Any

from mcp_server.client.raw import RawClient, UnexpectedReply, expect_result
from mcp_server.client.wire import initialize_params, request_frame, tool_call_params

CLIENT_NAME = "mcp-bench"
OPEN_TIMEOUT = 30.0
ADD_RESULT = 3

__all__ = ["RawClient", "UnexpectedReply", "expect_result"]


async def open_connection(url: str, *, initialize: bool = True) -> RawClient:
    """A connection as every load generator opens it (no keepalive pings of its own)."""
    return await RawClient.open(
        url,
        initialize=initialize,
        client_name=CLIENT_NAME,
        open_timeout=OPEN_TIMEOUT,
        ping_interval=None,
    )


def initialize_request(request_id: int) -> str:
    """The `initialize` request the benchmark sends."""
    return request_frame(request_id, "initialize", initialize_params(CLIENT_NAME, "1.0"))


def tool_call_request(
    request_id: int, name: str, arguments: dict[str, Any], token: str | int | None = None
) -> str:
    """A `tools/call` frame, with a progressToken when given."""
    return request_frame(request_id, "tools/call", tool_call_params(name, arguments, token))


def add_request(request_id: int) -> str:
    """A `tools/call` of the `add` tool with a=1, b=2."""
    return tool_call_request(request_id, "add", {"a": 1, "b": 2})


def ping_request(request_id: int) -> str:
    """A `ping` request."""
    return request_frame(request_id, "ping", {})


def check_add_result(raw: str | bytes, request_id: int) -> None:
    """Check a reply to `add_request`: right id, no error, structured result 3."""
    structured = expect_result(raw, request_id).get("structuredContent")
    if not isinstance(structured, dict) or structured.get("result") != ADD_RESULT:
        raise UnexpectedReply(f"unexpected add result for id {request_id}: {raw!r:.300}")


async def call_add(connection: RawClient) -> None:
    """One `tools/call` of `add`, waiting for and checking its reply (the hot loop's step)."""
    request_id = connection.next_id()
    await connection.ws.send(add_request(request_id))
    check_add_result(await connection.ws.recv(), request_id)
