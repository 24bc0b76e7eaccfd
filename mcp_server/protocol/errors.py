"""JSON-RPC error codes and the exception that carries one to the wire."""

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
RESOURCE_NOT_FOUND = -32002
# A bound of the caller's tenant was reached (requests in flight); `data` names the bound.
LIMIT_EXCEEDED = -32001
# A server-defined code (mirrors HTTP 429): over a rate limit; `data` says when to retry.
RATE_LIMITED = -32029
# Defined by 2026-07-28 (basic/index.mdx): an HTTP header disagrees with the body, a request
# needs a client capability it did not declare (`data.requiredCapabilities`), a request's
# protocol version is not served (`data.supported`, `data.requested`).
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022

RequestId = str | int


class JsonRpcError(Exception):
    """An error to answer with a JSON-RPC error object instead of a result."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        """The `error` member of a JSON-RPC response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class MessageError(JsonRpcError):
    """A malformed incoming message: answered with `request_id` (None: `"id": null`).

    `reply` is False for a malformed notification, which must never be answered.
    """

    def __init__(
        self, code: int, message: str, request_id: RequestId | None = None, *, reply: bool = True
    ) -> None:
        super().__init__(code, message)
        self.request_id = request_id
        self.reply = reply


class InvalidRequest(MessageError):
    """The message is JSON but not a valid JSON-RPC 2.0 message."""

    def __init__(self, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(INVALID_REQUEST, message, request_id)


def invalid_params(message: str, data: Any = None) -> JsonRpcError:
    """A -32602 error."""
    return JsonRpcError(INVALID_PARAMS, message, data)


def method_not_found(method: str) -> JsonRpcError:
    """A -32601 error naming the method."""
    return JsonRpcError(METHOD_NOT_FOUND, f"Method not found: {method}")


def missing_capability(required: dict[str, Any]) -> JsonRpcError:
    """A -32021 error: the request needs the client capabilities `required` (a
    ClientCapabilities object, e.g. `{"sampling": {}}`), which it did not declare."""
    names = ", ".join(sorted(required))
    return JsonRpcError(
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        f"This request needs the client capability {names}, which it did not declare",
        {"requiredCapabilities": required},
    )
