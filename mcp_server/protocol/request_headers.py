"""The 2026-07-28 Streamable HTTP binding's rules for one POST: the headers that mirror the
body (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), checked against it (-32020), and the
HTTP status a modern error is answered with (basic/transports/streamable-http.mdx)."""

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from mcp_server.protocol import methods
from mcp_server.protocol.errors import (
    HEADER_MISMATCH,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    JsonRpcError,
)
from mcp_server.protocol.modern import MODERN_VERSIONS, PROTOCOL_VERSION_KEY, is_modern_meta

# The body member `Mcp-Name` mirrors, for the methods that require it.
NAMED_BY: dict[str, str] = {
    methods.TOOLS_CALL: "name",
    methods.RESOURCES_READ: "uri",
    methods.PROMPTS_GET: "name",
    # The tasks extension: a task's requests name it, so that a balancer can route them.
    methods.TASKS_GET: "taskId",
    methods.TASKS_UPDATE: "taskId",
    methods.TASKS_CANCEL: "taskId",
}
_BASE64_PREFIX = "=?base64?"
_BASE64_SUFFIX = "?="
# Errors of a request the session answered that HTTP shows in the status too; every other
# JSON-RPC error (a tool's bad arguments, an unknown resource) is a 200 with its error.
_ERROR_STATUS: dict[int, int] = {
    METHOD_NOT_FOUND: 404,
    MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
}


@dataclass(frozen=True, slots=True)
class MirroredHeaders:
    """The request headers that mirror body fields (None: absent), their values without the
    whitespace around them (RFC 9110 §5.5: it is not part of the value)."""

    protocol_version: str | None
    method: str | None
    name: str | None

    def __post_init__(self) -> None:
        for field in ("protocol_version", "method", "name"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, value.strip(" \t"))


def is_modern_post(protocol_version_header: str | None, params: dict[str, Any] | None) -> bool:
    """Whether a POSTed message is of the 2026-07-28 era: its header names a modern revision,
    or (a request) its `_meta` carries the per-request keys (modern.is_modern_meta). Anything
    else is the handshake era, governed by its session."""
    if protocol_version_header in MODERN_VERSIONS:
        return True
    return params is not None and is_modern_meta(params)


def encode_header_value(text: str) -> str:
    """`text` as a mirrored header carries it: as is when plain visible ASCII, else (or when
    it looks like the sentinel itself) as `=?base64?…?=` (the client's side of the rule)."""
    plain = (
        text.isascii()
        and text.isprintable()
        and text == text.strip()
        and not (text.startswith(_BASE64_PREFIX) and text.endswith(_BASE64_SUFFIX))
    )
    if plain:
        return text
    return _BASE64_PREFIX + base64.b64encode(text.encode()).decode() + _BASE64_SUFFIX


def decode_header_value(value: str) -> str | None:
    """A mirrored header's value, its `=?base64?…?=` form decoded (None: not valid)."""
    if not (value.startswith(_BASE64_PREFIX) and value.endswith(_BASE64_SUFFIX)):
        return value
    encoded = value[len(_BASE64_PREFIX) : len(value) - len(_BASE64_SUFFIX)]
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def check_mirrored_headers(headers: MirroredHeaders, method: str, params: dict[str, Any]) -> None:
    """-32020 unless every header a modern request must carry is there and says what its
    body says (the body's protocol version as sent, before it is checked for support)."""
    meta = params.get("_meta")
    body_version = meta.get(PROTOCOL_VERSION_KEY) if isinstance(meta, dict) else None
    if headers.protocol_version is None:
        raise header_mismatch("the MCP-Protocol-Version header is required")
    if body_version is not None and headers.protocol_version != body_version:
        raise header_mismatch(
            f"MCP-Protocol-Version {headers.protocol_version!r} does not match the body's "
            f"{body_version!r}"
        )
    if headers.method is None:
        raise header_mismatch("the Mcp-Method header is required")
    if headers.method != method:
        raise header_mismatch(f"Mcp-Method {headers.method!r} does not match the body's {method!r}")
    member = NAMED_BY.get(method)
    if member is None:
        return
    if headers.name is None:
        raise header_mismatch(f"the Mcp-Name header is required for {method}")
    name = decode_header_value(headers.name)
    if name is None:
        raise header_mismatch("Mcp-Name is not valid =?base64?…?= text")
    if name != params.get(member):
        raise header_mismatch(f"Mcp-Name {name!r} does not match the body's {member}")


def header_mismatch(detail: str) -> JsonRpcError:
    """A -32020 error."""
    return JsonRpcError(HEADER_MISMATCH, f"Header mismatch: {detail}")


def status_for(reply: dict[str, Any] | None) -> int:
    """The HTTP status of a modern request's JSON reply (None: it ended without one)."""
    if reply is None:
        return 202
    error = reply.get("error")
    if isinstance(error, dict):
        return _ERROR_STATUS.get(error.get("code"), 200)  # type: ignore[arg-type]
    return 200
