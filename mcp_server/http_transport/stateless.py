"""One 2026-07-28 POST: no session, the headers checked against the body, the request answered
by an Exchange with a fresh McpSession, as JSON or as an SSE stream of its own.

Nothing of the handshake era applies: an `Mcp-Session-Id` is ignored and none is minted, no
event is stored (2026-07-28 streams are not resumable), and the client closing the response
(stream or not) cancels the request (basic/patterns/cancellation.mdx). Whether to stream is
decided by the request's first message: a request that answers at once (an error among them)
is a plain JSON response whose HTTP status shows the error (request_headers.status_for).
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from mcp_server.http_transport.exchange import Exchange, is_response_to
from mcp_server.http_transport.sse import SseResponse
from mcp_server.protocol.errors import JsonRpcError
from mcp_server.protocol.messages import Request, error_message
from mcp_server.protocol.modern import require_request_meta
from mcp_server.protocol.request_headers import (
    MirroredHeaders,
    check_mirrored_headers,
    status_for,
)
from mcp_server.protocol.text_escapes import json_text

# What to answer as plain JSON: the HTTP status and the reply (None: no reply, 202).
JsonAnswer = tuple[int, dict[str, Any] | None]


def envelope_refusal(headers: MirroredHeaders, request: Request) -> dict[str, Any] | None:
    """The error reply (HTTP 400) of a modern request whose headers or `_meta` are not
    valid: -32020, -32602 or -32022; None when it may be handed to the session."""
    try:
        check_mirrored_headers(headers, request.method, request.params)
        require_request_meta(request.params)
    except JsonRpcError as exc:
        return error_message(request.id, exc)
    return None


async def answer(
    exchange: Exchange,
    payload: dict[str, Any],
    *,
    send: Any,
    receive: Any,
    stream: bool,
    keepalive: float | None = None,
    quick: bool = False,
) -> JsonAnswer | None:
    """Answer one modern request: as an SSE stream (`stream`, once a message other than the
    response comes), written here; or the JSON answer to send (None: it streamed, or the
    client left first, which cancels the request: the caller closes the exchange).
    `keepalive`: once streaming, a `:` comment after that many idle seconds (a listen's
    stream, which may be quiet for hours). `quick`: the request usually answers at once (not
    a call of a long tool, not a listen), so its first message is awaited before any watching
    starts."""
    replies = exchange.replies(payload)
    first: dict[str, Any] | None = None
    if quick:
        # Waited for here, unwatched: a quick request's response (almost always its first
        # message) is a plain JSON answer with no task of its own; a client leaving meanwhile
        # costs the few milliseconds the request takes anyway.
        first = await anext(replies, None)
        if first is None:
            return None
        if is_response_to(first, payload["id"]):
            await replies.aclose()
            return status_for(first), first
    response = SseResponse(send, receive)
    response.watch()
    watcher = response.watcher
    assert watcher is not None
    relay = _relay(replies, first, payload, response, stream=stream)
    answering = asyncio.ensure_future(relay)
    keeping = asyncio.ensure_future(_keep_alive(response, keepalive)) if keepalive else None
    try:
        # The watcher ends when the client leaves: two tasks per request, not a third waiter.
        await asyncio.wait({answering, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if keeping is not None:
            keeping.cancel()
        if not answering.done():
            answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering
        await response.finish()
    if answering.cancelled():
        return None
    return answering.result()


async def _keep_alive(response: SseResponse, interval: float) -> None:
    """Write a comment whenever the stream has been idle for `interval` seconds."""
    while True:
        idle = time.monotonic() - response.idle_since
        if not response.started or idle < interval:
            await asyncio.sleep(interval - idle if response.started else interval)
        elif not await response.comment("keep-alive"):
            return


async def _relay(
    replies: AsyncIterator[dict[str, Any]],
    first: dict[str, Any] | None,
    payload: dict[str, Any],
    response: SseResponse,
    *,
    stream: bool,
) -> JsonAnswer | None:
    reply = None
    async for message in _chained(first, replies):
        if is_response_to(message, payload["id"]):
            reply = message
            break
        if not stream:
            continue  # a JSON answer: the client reads no notifications
        if not response.started:
            await response.start()
        if not await response.event(json_text(message), None):
            return None
    if not response.started:
        return status_for(reply), reply
    if reply is not None:
        await response.event(json_text(reply), None)
    return None


async def _chained(
    first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """`first` (when one was read already), then the rest."""
    if first is not None:
        yield first
    async for message in rest:
        yield message
