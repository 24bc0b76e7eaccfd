"""The HTTP side of `/mcp`: refusals with an HTTP status, whole JSON responses, a bounded
request body, and what a request's `Accept` takes."""

from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any

import orjson

from accounts.ws_auth import header
from mcp_server.protocol.errors import INVALID_REQUEST

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Headers = list[tuple[bytes, bytes]]

SESSION_HEADER = b"mcp-session-id"


class HttpRefusal(Exception):
    """A request answered with an HTTP error status and a JSON-RPC error without an id."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int = INVALID_REQUEST,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = list(headers)


class TooLarge(Exception):
    """The request body is over MCP_MAX_MESSAGE_BYTES."""


async def respond(
    send: Send,
    status: int,
    body: Any = None,
    headers: Headers = (),  # type: ignore[assignment]
) -> None:
    """A whole response: JSON `body` (None: empty)."""
    content = b"" if body is None else orjson.dumps(body)
    all_headers = list(headers)
    if body is not None:
        all_headers.append((b"content-type", b"application/json"))
    all_headers.append((b"content-length", b"%d" % len(content)))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": content})


async def read_body(scope: dict[str, Any], receive: Receive, limit: int) -> bytes:
    """The request body, refused (TooLarge) as soon as it passes `limit` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpRefusal(400, "the client left before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def accepts(scope: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the client takes (application/json, text/event-stream)."""
    return _accepted_media(header(scope, b"accept") or "*/*")


@lru_cache(maxsize=64)
def _accepted_media(accept: str) -> tuple[bool, bool]:
    # Remembered: a client sends the same Accept with every request. Bounded, whatever is sent.
    media = {part.split(";")[0].strip() for part in accept.lower().split(",")}
    anything = "*/*" in media
    return (
        anything or "application/json" in media or "application/*" in media,
        anything or "text/event-stream" in media or "text/*" in media,
    )
