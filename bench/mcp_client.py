"""A minimal MCP-over-WebSocket client for the load generator: handshake, call, reply checks."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

PROTOCOL_VERSION = "2025-11-25"
SUBPROTOCOL = Subprotocol("mcp")
CLIENT_INFO = {"name": "mcp-bench", "version": "1.0"}
ADD_ARGUMENTS = {"a": 1, "b": 2}
ADD_RESULT = 3
INITIALIZED = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).decode()
OPEN_TIMEOUT = 30.0


class BadReply(Exception):
    """A reply that is not the successful result the benchmark expects."""


def request(request_id: int, method: str, params: dict[str, Any]) -> str:
    """One JSON-RPC request as a text frame."""
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    ).decode()


def initialize_request(request_id: int) -> str:
    """The `initialize` request the benchmark sends."""
    return request(
        request_id,
        "initialize",
        {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO},
    )


def add_request(request_id: int) -> str:
    """A `tools/call` of the `add` tool with a=1, b=2."""
    return request(request_id, "tools/call", {"name": "add", "arguments": ADD_ARGUMENTS})


def tool_call_request(
    request_id: int,
    name: str,
    arguments: dict[str, Any],
    progress_token: str | int | None = None,
) -> str:
    """A `tools/call`, asking for progress notifications when `progress_token` is given."""
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    return request(request_id, "tools/call", params)


def ping_request(request_id: int) -> str:
    """A `ping` request (its result is an empty object)."""
    return request(request_id, "ping", {})


def check_result(raw: str | bytes, request_id: int) -> dict[str, Any]:
    """The `result` of a reply, after checking its id and that it is not an error."""
    reply = orjson.loads(raw)
    if not isinstance(reply, dict) or reply.get("id") != request_id:
        raise BadReply(f"expected the reply to id {request_id}, got {raw!r:.300}")
    result = reply.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise BadReply(f"request {request_id} failed: {raw!r:.300}")
    return result


def check_add_result(raw: str | bytes, request_id: int) -> None:
    """Check a reply to `add_request`: right id, no error, structured result 3."""
    result = check_result(raw, request_id)
    structured = result.get("structuredContent")
    if not isinstance(structured, dict) or structured.get("result") != ADD_RESULT:
        raise BadReply(f"unexpected add result for id {request_id}: {raw!r:.300}")


class McpConnection:
    """One initialized MCP session over a WebSocket, issuing sequential request ids."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, url: str) -> McpConnection:
        """Connect, `initialize` and send `notifications/initialized`."""
        connection = await cls.open_uninitialized(url)
        try:
            await connection.initialize()
        except BaseException:
            await connection.close()
            raise
        return connection

    @classmethod
    async def open_uninitialized(cls, url: str) -> McpConnection:
        """Only the WebSocket handshake (subprotocol `mcp`, no compression)."""
        websocket = await connect(
            url,
            subprotocols=[SUBPROTOCOL],
            compression=None,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,
        )
        return cls(websocket)

    async def initialize(self) -> None:
        """The initialize exchange, then the initialized notification."""
        request_id = next(self._ids)
        await self.websocket.send(initialize_request(request_id))
        check_result(await self.websocket.recv(), request_id)
        await self.websocket.send(INITIALIZED)

    async def call_add(self) -> None:
        """One `tools/call` of `add`, waiting for and checking its reply."""
        request_id = next(self._ids)
        await self.websocket.send(add_request(request_id))
        check_add_result(await self.websocket.recv(), request_id)

    def next_id(self) -> int:
        """A request id not used before on this connection."""
        return next(self._ids)

    async def close(self) -> None:
        """Close the WebSocket (the close handshake included)."""
        await self.websocket.close()
