"""A hand-driven MCP client: sends exactly what it is told, reads frame by frame.

The end-to-end tests use it for bad input (any text or bytes, raw frames, close codes) and
the load generators for their hot loops (`ws` is the socket itself, nothing in between).
"""

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

from mcp_server.client.wire import (
    INITIALIZED,
    PROTOCOL_VERSION,
    JsonObject,
    RequestId,
    encode,
    initialize_params,
    notification_frame,
    open_socket,
    request_frame,
    tool_call_params,
)

RECV_TIMEOUT = 10.0
PROGRESS = "notifications/progress"


class UnexpectedReply(Exception):
    """A frame that is not what the exchange expects (wrong id, an error, not JSON-RPC)."""


def expect_result(frame: str | bytes, request_id: RequestId) -> JsonObject:
    """The `result` of a success reply to `request_id` that is not a tool error."""
    reply = orjson.loads(frame)
    if not isinstance(reply, dict) or reply.get("id") != request_id:
        raise UnexpectedReply(f"expected the reply to id {request_id!r}, got {frame!r:.300}")
    result = reply.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise UnexpectedReply(f"request {request_id!r} failed: {frame!r:.300}")
    return result


class RawClient:
    """One MCP connection, driven frame by frame; notifications read early are kept aside."""

    def __init__(self, ws: ClientConnection, client_name: str = "mcp-raw-client") -> None:
        self.ws = ws
        self.client_name = client_name
        self._ids = itertools.count(1)
        self.notifications: list[JsonObject] = []

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        initialize: bool = True,
        client_name: str = "mcp-raw-client",
        **socket: Any,
    ) -> "RawClient":
        """Connect (options of `wire.open_socket`) and, unless told not to, initialize."""
        client = cls(await open_socket(url, **socket), client_name)
        if initialize:
            try:
                await client.initialize()
            except BaseException:
                await client.close()
                raise
        return client

    @property
    def close_code(self) -> int | None:
        """The close code the server sent (None while open or without a close frame)."""
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason of the close frame."""
        return self.ws.close_reason

    def next_id(self) -> int:
        """A request id not used yet on this connection."""
        return next(self._ids)

    async def send(self, message: Any) -> None:
        """Send any JSON value as one text frame."""
        await self.ws.send(encode(message))

    async def send_frame(self, frame: str | bytes) -> None:
        """Send one frame exactly as given (text for str, binary for bytes)."""
        await self.ws.send(frame)

    async def recv_frame(self, seconds: float | None = RECV_TIMEOUT) -> str | bytes:
        """The next frame as received (TimeoutError when none comes within `seconds`)."""
        if seconds is None:
            return await self.ws.recv()
        return await asyncio.wait_for(self.ws.recv(), timeout=seconds)

    async def recv(self, seconds: float | None = RECV_TIMEOUT) -> Any:
        """The next text frame, decoded from JSON."""
        frame = await self.recv_frame(seconds)
        if not isinstance(frame, str):
            raise UnexpectedReply(f"the server sent a binary frame: {frame!r:.300}")
        return json.loads(frame)

    async def recv_response(self, request_id: Any, seconds: float = RECV_TIMEOUT) -> JsonObject:
        """The response with `request_id`; notifications before it are kept aside."""
        while True:
            message = await self.recv(seconds)
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications.append(message)
                continue
            if not isinstance(message, dict) or message.get("id") != request_id:
                raise UnexpectedReply(f"expected the reply to {request_id!r}, got {message!r}")
            if message.get("jsonrpc") != "2.0":
                raise UnexpectedReply(f"not JSON-RPC 2.0: {message!r}")
            return message

    async def send_request(self, method: str, params: Any = None) -> int:
        """Send a request with a fresh id without waiting for its response; its id."""
        request_id = self.next_id()
        await self.ws.send(request_frame(request_id, method, params))
        return request_id

    async def request(self, method: str, params: Any = None) -> JsonObject:
        """Send a request with a fresh id and return its response (result or error)."""
        return await self.recv_response(await self.send_request(method, params))

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification."""
        await self.ws.send(notification_frame(method, params))

    async def initialize(self, version: str = PROTOCOL_VERSION) -> JsonObject:
        """initialize, then notifications/initialized; the initialize result."""
        response = await self.request(
            "initialize", initialize_params(self.client_name, "0", version)
        )
        if "result" not in response:
            raise UnexpectedReply(f"initialize failed: {response!r}")
        await self.ws.send(INITIALIZED)
        return dict(response["result"])

    async def call_tool(
        self, name: str, arguments: Any, progress_token: RequestId | None = None
    ) -> JsonObject:
        """A tools/call request; its whole response."""
        return await self.request("tools/call", tool_call_params(name, arguments, progress_token))

    async def answer_ping(self, message: JsonObject) -> None:
        """Answer a `ping` request of the server (it closes clients that stay silent)."""
        await self.send({"jsonrpc": "2.0", "id": message.get("id"), "result": {}})

    async def close(self) -> None:
        """Close the WebSocket (the close handshake included)."""
        await self.ws.close()


@asynccontextmanager
async def connected(
    url: str, *, initialize: bool = True, **socket: Any
) -> AsyncIterator[RawClient]:
    """A RawClient for the block, closed after it."""
    client = await RawClient.open(url, initialize=initialize, **socket)
    try:
        yield client
    finally:
        await client.close()
