"""The Streamable HTTP binding of the client: one MCP session over POST, GET and DELETE.

`HttpSession` keeps the session id and revision `initialize` gave and sends them on every
request; a POST's reply is read whole, as JSON or as an SSE stream (httpx-sse parses it),
or event by event (`stream`, to see progress or to drop the stream early); `listen` opens
the session's GET stream, or resumes a stream after `Last-Event-ID`. `modern` sends a
2026-07-28 request instead: no session, its `_meta` in the body and mirrored in headers.
"""

import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource, ServerSentEvent

from mcp_server.client.wire import (
    MODERN_VERSION,
    PROTOCOL_VERSION,
    JsonObject,
    encode,
    initialize_params,
    request_meta,
    with_request_meta,
)
from mcp_server.protocol.request_headers import NAMED_BY, encode_header_value

ACCEPT_BOTH = "application/json, text/event-stream"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
TIMEOUT = 30.0


def mirrored_headers(
    method: str, params: JsonObject, protocol_version: str = MODERN_VERSION
) -> dict[str, str]:
    """The headers a 2026-07-28 POST mirrors its body in (the binding's rules are the
    server's own, protocol/request_headers.py: pure, shared)."""
    headers = {VERSION_HEADER: protocol_version, METHOD_HEADER: method}
    named = params.get(NAMED_BY.get(method, ""))
    if isinstance(named, str):
        headers[NAME_HEADER] = encode_header_value(named)
    return headers


@dataclass
class HttpReply:
    """What one POST got: its status and headers, and the JSON-RPC messages it carried."""

    status: int
    headers: httpx.Headers
    messages: list[JsonObject] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        """Whether the reply came as an SSE stream."""
        return self.headers.get("content-type", "").startswith("text/event-stream")

    def response(self, request_id: Any) -> JsonObject | None:
        """The response to `request_id` among the messages, if any."""
        for message in self.messages:
            if message.get("id") == request_id and "method" not in message:
                return message
        return None


def _message(event: ServerSentEvent) -> JsonObject | None:
    return event.json() if event.data else None


class HttpSession:
    """One MCP session over Streamable HTTP."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self._headers = dict(headers or {})
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self.client = client or httpx.AsyncClient(timeout=TIMEOUT)
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self._ids = itertools.count(1)

    def at(self, url: str) -> "HttpSession":
        """The same session sending to `url` (e.g. another web process of the same service),
        on its own HTTP client (close both)."""
        other = HttpSession(url, headers=self._headers)
        other.session_id, other.protocol_version = self.session_id, self.protocol_version
        other._ids = self._ids
        return other

    def next_id(self) -> int:
        """A request id not used before in this session."""
        return next(self._ids)

    def headers(self, **extra: str) -> dict[str, str]:
        """The headers of a request of this session (extra ones added or replacing)."""
        headers = dict(self._headers)
        if self.session_id is not None:
            headers[SESSION_HEADER] = self.session_id
        if self.protocol_version is not None:
            headers[VERSION_HEADER] = self.protocol_version
        headers.update(extra)
        return headers

    async def initialize(
        self, *, version: str = PROTOCOL_VERSION, capabilities: JsonObject | None = None
    ) -> JsonObject:
        """Start the session: `initialize`, then `notifications/initialized`; the result."""
        params = initialize_params("mcp-http-client", "1", version)
        if capabilities is not None:
            params["capabilities"] = capabilities
        request_id = self.next_id()
        reply = await self.post(
            {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}
        )
        response = reply.response(request_id)
        if reply.status != 200 or response is None or "result" not in response:
            raise RuntimeError(f"initialize refused: HTTP {reply.status} {reply.messages}")
        self.session_id = reply.headers.get(SESSION_HEADER)
        self.protocol_version = response["result"]["protocolVersion"]
        await self.notify("notifications/initialized")
        return dict(response["result"])

    async def post(self, message: Any, **headers: str) -> HttpReply:
        """POST one message (any JSON value) and read the whole reply."""
        async with self.stream_post(message, **headers) as (response, events):
            reply = HttpReply(response.status_code, response.headers)
            if events is None:
                body = await response.aread()
                if body:
                    reply.messages.append(orjson.loads(body))
                return reply
            async for event in events:
                reply.event_ids.append(event.id)
                message_in = _message(event)
                if message_in is not None:
                    reply.messages.append(message_in)
            return reply

    @asynccontextmanager
    async def stream_post(
        self, message: Any, **headers: str
    ) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[ServerSentEvent] | None]]:
        """POST one message and read its reply as it comes: the response and, for an SSE
        reply, its events (None for any other). Leaving the block drops the stream."""
        request_headers = self.headers(
            **{"Content-Type": "application/json", "Accept": ACCEPT_BOTH, **headers}
        )
        body = message if isinstance(message, bytes) else encode(message).encode()
        async with self.client.stream(
            "POST", self.url, content=body, headers=request_headers
        ) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                yield response, EventSource(response).aiter_sse()
            else:
                yield response, None

    async def request(self, method: str, params: JsonObject | None = None) -> JsonObject:
        """Send a request; its response (result or error)."""
        request_id = self.next_id()
        message: JsonObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        reply = await self.post(message)
        response = reply.response(request_id)
        if response is None:
            raise RuntimeError(f"no response to {method}: HTTP {reply.status} {reply.messages}")
        return response

    def modern_request(
        self,
        method: str,
        params: JsonObject | None = None,
        *,
        capabilities: JsonObject | None = None,
        log_level: str | None = None,
    ) -> tuple[JsonObject, dict[str, str]]:
        """A 2026-07-28 request of this client and the headers that mirror it."""
        meta = request_meta("mcp-http-client", "1", capabilities=capabilities, log_level=log_level)
        full = with_request_meta(params, meta)
        message: JsonObject = {
            "jsonrpc": "2.0",
            "id": self.next_id(),
            "method": method,
            "params": full,
        }
        return message, mirrored_headers(method, full)

    async def modern(
        self,
        method: str,
        params: JsonObject | None = None,
        *,
        capabilities: JsonObject | None = None,
        log_level: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """POST one 2026-07-28 request (`headers` added or replacing) and read the whole
        reply."""
        message, mirrored = self.modern_request(
            method, params, capabilities=capabilities, log_level=log_level
        )
        return await self.post(message, **{**mirrored, **(headers or {})})

    @asynccontextmanager
    async def subscribe(
        self, notifications: JsonObject, *, capabilities: JsonObject | None = None
    ) -> AsyncIterator[tuple[int, httpx.Response, AsyncIterator[ServerSentEvent] | None]]:
        """Open a 2026-07-28 `subscriptions/listen` asking for `notifications`: its id (the
        subscription id), the response and its events (None: refused, a JSON reply). Leaving
        the block ends the listen."""
        message, mirrored = self.modern_request(
            "subscriptions/listen", {"notifications": notifications}, capabilities=capabilities
        )
        async with self.stream_post(message, **mirrored) as (response, events):
            yield message["id"], response, events

    async def notify(self, method: str, params: JsonObject | None = None) -> int:
        """Send a notification; the HTTP status (202 when accepted)."""
        message: JsonObject = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return (await self.post(message)).status

    @asynccontextmanager
    async def listen(
        self, last_event_id: str | None = None
    ) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[ServerSentEvent]]]:
        """Open the session's GET stream (or resume the stream of `last_event_id`)."""
        extra = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            extra["Last-Event-ID"] = last_event_id
        async with self.client.stream("GET", self.url, headers=self.headers(**extra)) as response:
            yield response, EventSource(response).aiter_sse()

    async def delete(self) -> int:
        """End the session; the HTTP status."""
        response = await self.client.delete(self.url, headers=self.headers())
        return response.status_code

    async def close(self) -> None:
        """Close the HTTP client (the session itself stays until deleted or expired)."""
        await self.client.aclose()
