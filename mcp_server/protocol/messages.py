"""Classify incoming JSON-RPC 2.0 messages and build outgoing ones."""

from dataclasses import dataclass
from typing import Any, cast

from mcp_server.protocol.errors import (
    INVALID_PARAMS,
    InvalidRequest,
    JsonRpcError,
    MessageError,
    RequestId,
)
from mcp_server.protocol.modern import RequestMeta

JSONRPC_VERSION = "2.0"


@dataclass(slots=True)
class Request:
    """A call that expects a response."""

    id: RequestId
    method: str
    params: dict[str, Any]
    # The 2026-07-28 `_meta`, set when the session classifies the request (None: a
    # handshake-era request, governed by the session's initialize).
    meta: RequestMeta | None = None


@dataclass(slots=True)
class Notification:
    """A one-way message; it never gets a response."""

    method: str
    params: dict[str, Any]


@dataclass(slots=True)
class Response:
    """The peer's answer to a request of ours (result or error)."""

    id: RequestId
    result: Any
    error: dict[str, Any] | None


Message = Request | Notification | Response


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def readable_id(payload: Any) -> RequestId | None:
    """The id of a malformed message, when it has a usable one (for the error reply)."""
    if isinstance(payload, dict):
        candidate = payload.get("id")
        if _valid_id(candidate):
            return candidate
    return None


def parse_message(payload: Any) -> Message:
    """Classify one decoded JSON value, or raise InvalidRequest / a -32602 JsonRpcError."""
    if not isinstance(payload, dict):
        raise InvalidRequest("A JSON-RPC message must be a JSON object")
    if payload.get("jsonrpc") != JSONRPC_VERSION:
        raise InvalidRequest('"jsonrpc" must be exactly "2.0"', readable_id(payload))
    has_id = "id" in payload
    request_id = payload.get("id")
    if has_id and not _valid_id(request_id):
        raise InvalidRequest('"id" must be a string or an integer (never null)')
    method = payload.get("method")
    if method is None:
        if not has_id or ("result" in payload) == ("error" in payload):
            raise InvalidRequest(
                'A message needs a "method" (request/notification) or an "id" with exactly '
                'one of "result" or "error" (response)',
                request_id if has_id else None,
            )
        error = payload.get("error")
        if "error" in payload and not isinstance(error, dict):
            raise InvalidRequest('"error" must be an object', request_id)
        return Response(cast(RequestId, request_id), payload.get("result"), error)
    if not isinstance(method, str) or not method:
        raise InvalidRequest('"method" must be a non-empty string', request_id)
    params = payload.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise MessageError(INVALID_PARAMS, '"params" must be an object', request_id, reply=has_id)
    if has_id:
        return Request(cast(RequestId, request_id), method, params)
    return Notification(method, params)


def result_message(request_id: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    """A success response."""
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "result": result}


def error_message(request_id: RequestId | None, error: JsonRpcError) -> dict[str, Any]:
    """An error response; `request_id` None gives `"id": null` (unparseable requests)."""
    return {"jsonrpc": JSONRPC_VERSION, "id": request_id, "error": error.to_error()}


def notification_message(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A notification to the peer."""
    return {"jsonrpc": JSONRPC_VERSION, "method": method, "params": params}


def request_message(request_id: RequestId, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request of ours to the peer."""
    message: dict[str, Any] = {"jsonrpc": JSONRPC_VERSION, "id": request_id, "method": method}
    if params:
        message["params"] = params
    return message
