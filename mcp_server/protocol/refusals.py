"""Answers to a frame refused whole (over a rate limit): an error for each request in it.

Notifications and responses in it are dropped unanswered, as JSON-RPC requires; the counts
tell the caller what was refused.
"""

from typing import Any

from mcp_server.protocol.errors import RATE_LIMITED, JsonRpcError
from mcp_server.protocol.messages import error_message


def rate_limited(limit: str, retry_after_ms: int) -> JsonRpcError:
    """The error of a request refused by `limit`, saying when to retry."""
    return JsonRpcError(
        RATE_LIMITED,
        f"Rate limit exceeded ({limit}): retry after {retry_after_ms} ms",
        {"retryAfterMs": retry_after_ms, "limit": limit},
    )


def _request_id(message: Any) -> tuple[bool, Any]:
    """(is a request, its id) for a decoded message."""
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return False, None
    request_id = message.get("id")
    valid = isinstance(request_id, str | int) and not isinstance(request_id, bool)
    return valid, request_id


def refusal_replies(payload: Any, error: JsonRpcError) -> tuple[Any, int, int]:
    """(what to send back or None, requests refused, other messages dropped) for a frame."""
    items = payload if isinstance(payload, list) else [payload]
    replies = []
    for item in items:
        is_request, request_id = _request_id(item)
        if is_request:
            replies.append(error_message(request_id, error))
    dropped = len(items) - len(replies)
    if not replies:
        return None, 0, dropped
    reply = replies if isinstance(payload, list) else replies[0]
    return reply, len(replies), dropped
