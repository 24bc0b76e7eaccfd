"""What every MCP WebSocket client here shares: the subprotocol, the socket, the frames."""

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

# The revision without a handshake (every request carries its client's `_meta`) and its keys:
# the protocol package's own (pure), so client and server cannot disagree.
from mcp_server.protocol.modern import (
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    LOG_LEVEL_KEY,
    MODERN_VERSION,
    PROTOCOL_VERSION_KEY,
)

PROTOCOL_VERSION = "2025-11-25"
SUBPROTOCOL = Subprotocol("mcp")
OPEN_TIMEOUT = 10.0
# The largest frame a client accepts (the server's own bound is far lower).
MAX_FRAME_BYTES = 64 * 1024 * 1024

JsonObject = dict[str, Any]
RequestId = str | int


def encode(message: Any) -> str:
    """One JSON value as the text of a frame (orjson; stdlib json for what orjson refuses)."""
    try:
        return orjson.dumps(message).decode()
    except TypeError:
        return json.dumps(message, separators=(",", ":"))


def request_frame(request_id: RequestId, method: str, params: Any = None) -> str:
    """A JSON-RPC request."""
    message: JsonObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return encode(message)


def notification_frame(method: str, params: Any = None) -> str:
    """A JSON-RPC notification."""
    message: JsonObject = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return encode(message)


INITIALIZED = notification_frame("notifications/initialized")


def initialize_params(
    name: str, version: str, protocol_version: str = PROTOCOL_VERSION
) -> JsonObject:
    """The params of `initialize` for a client called `name` (no capabilities)."""
    return {
        "protocolVersion": protocol_version,
        "capabilities": {},
        "clientInfo": {"name": name, "version": version},
    }


def request_meta(
    name: str,
    version: str,
    *,
    protocol_version: str = MODERN_VERSION,
    capabilities: JsonObject | None = None,
    log_level: str | None = None,
) -> JsonObject:
    """The per-request `_meta` of a 2026-07-28 client called `name` (what `initialize` said
    once in the handshake era); `log_level` asks for that request's log messages."""
    meta: JsonObject = {
        PROTOCOL_VERSION_KEY: protocol_version,
        CLIENT_CAPABILITIES_KEY: capabilities or {},
        CLIENT_INFO_KEY: {"name": name, "version": version},
    }
    if log_level is not None:
        meta[LOG_LEVEL_KEY] = log_level
    return meta


def with_request_meta(params: JsonObject | None, meta: JsonObject) -> JsonObject:
    """`params` with the request `_meta` merged into theirs (a progress token stays)."""
    merged = dict(params or {})
    merged["_meta"] = {**(merged.get("_meta") or {}), **meta}
    return merged


def tool_call_params(
    name: str, arguments: Any, progress_token: RequestId | None = None
) -> JsonObject:
    """The params of `tools/call`, asking for progress when `progress_token` is given."""
    params: JsonObject = {"name": name, "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    return params


async def open_socket(
    url: str,
    *,
    subprotocols: Sequence[Subprotocol] | None = (SUBPROTOCOL,),
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
    local_address: str | None = None,
    max_queue: int = 16,
    max_size: int = MAX_FRAME_BYTES,
    open_timeout: float = OPEN_TIMEOUT,
    close_timeout: float | None = None,
    ping_interval: float | None = 20.0,
    proxy: str | Literal[True] | None = None,
) -> ClientConnection:
    """The WebSocket handshake alone: no proxy, no compression, subprotocol `mcp`.

    `local_address` (e.g. 127.0.0.2) makes the server see another client address; `max_queue`
    frames received but not read are buffered before the client stops reading the socket;
    `proxy=True` takes a proxy from the environment, as websockets does by default.
    """
    extra: dict[str, Any] = {}
    if local_address is not None:
        extra["local_addr"] = (local_address, 0)
    if close_timeout is not None:
        extra["close_timeout"] = close_timeout
    return await connect(
        url,
        subprotocols=list(subprotocols) if subprotocols is not None else None,
        additional_headers=dict(headers) if headers else None,
        origin=Origin(origin) if origin is not None else None,
        proxy=proxy,
        compression=None,
        open_timeout=open_timeout,
        max_queue=max_queue,
        max_size=max_size,
        ping_interval=ping_interval,
        **extra,
    )
