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
from collections.abc import Awaitable, Callable
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

# app.respond: a whole JSON response (send, status, body).
Respond = Callable[[Any, int, Any], Awaitable[None]]


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
    respond: Respond,
    stream: bool,
) -> None:
    """Answer one modern request; the client leaving first cancels it (the caller closes the
    exchange, which stops what still runs)."""
    response = SseResponse(send, receive)
    response.watch()
    answering = asyncio.ensure_future(
        _relay(exchange, payload, response, send=send, respond=respond, stream=stream)
    )
    left = asyncio.ensure_future(response.left.wait())
    try:
        await asyncio.wait({answering, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
        if not answering.done():
            answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering
        await response.finish()


async def _relay(
    exchange: Exchange,
    payload: dict[str, Any],
    response: SseResponse,
    *,
    send: Any,
    respond: Respond,
    stream: bool,
) -> None:
    reply = None
    async for message in exchange.replies(payload):
        if is_response_to(message, payload["id"]):
            reply = message
            break
        if not stream:
            continue  # a JSON answer: the client reads no notifications
        if not response.started:
            await response.start()
        if not await response.event(json_text(message), None):
            return
    if response.started:
        if reply is not None:
            await response.event(json_text(reply), None)
        return
    await respond(send, status_for(reply), reply)
