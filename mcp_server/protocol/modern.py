"""The 2026-07-28 revision's envelope: the per-request `_meta` that replaces the initialize
handshake, and what every result of a modern request carries.

A request is of the 2026-07-28 era when its `_meta` names a protocol version; without one it
belongs to the handshake era (the session's `initialize` decided its revision). The rules
here are pure: the session (both transports) reads a request's `RequestMeta` once, and
finishes every modern result with `finish_result`.
"""

import functools
from dataclasses import dataclass
from typing import Any

from mcp_server.protocol import methods
from mcp_server.protocol.errors import (
    UNSUPPORTED_PROTOCOL_VERSION,
    JsonRpcError,
    invalid_params,
    missing_capability,
)
from mcp_server.protocol.log_levels import level_rank

MODERN_VERSION = "2026-07-28"
# The revisions a request's `_meta` may name (what `server/discover` and -32022 list).
MODERN_VERSIONS: tuple[str, ...] = (MODERN_VERSION,)

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

RESULT_COMPLETE = "complete"
RESULT_INPUT_REQUIRED = "input_required"
RESULT_TASK = "task"

CACHE_PUBLIC = "public"
CACHE_PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """What a 2026-07-28 request says about its client, in place of a handshake."""

    protocol_version: str
    client_capabilities: dict[str, Any]
    client_info: dict[str, Any] | None
    # None: the client asked for no `notifications/message` for this request.
    log_level: str | None


@dataclass(frozen=True, slots=True)
class CacheHint:
    """How a cacheable result may be cached: its `cacheScope`, and whether the configured
    freshness applies (False: `ttlMs` 0, the content changes at any moment)."""

    scope: str
    fresh: bool


# The results 2026-07-28 requires caching hints on (server/utilities/caching.mdx). Lists
# depend on the caller's tenant (its tool set), so they are private; discovery is the same
# for everyone. A read may be of a run that is progressing: stale at once.
CACHEABLE: dict[str, CacheHint] = {
    methods.SERVER_DISCOVER: CacheHint(CACHE_PUBLIC, fresh=True),
    methods.TOOLS_LIST: CacheHint(CACHE_PRIVATE, fresh=True),
    methods.PROMPTS_LIST: CacheHint(CACHE_PRIVATE, fresh=True),
    methods.RESOURCES_LIST: CacheHint(CACHE_PRIVATE, fresh=True),
    methods.RESOURCES_TEMPLATES_LIST: CacheHint(CACHE_PRIVATE, fresh=True),
    methods.RESOURCES_READ: CacheHint(CACHE_PRIVATE, fresh=False),
}


# The per-request keys: a `_meta` with any of them is a 2026-07-28 request's (a handshake-era
# client never sends them, the prefix is reserved), so one without a protocol version is a
# malformed modern request, not a handshake-era one.
_REQUEST_KEYS = frozenset(
    {PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY, CLIENT_INFO_KEY, LOG_LEVEL_KEY}
)


def is_modern_meta(params: dict[str, Any]) -> bool:
    """Whether `params` carry a 2026-07-28 request's `_meta` (any of the per-request keys)."""
    meta = params.get("_meta")
    return isinstance(meta, dict) and not _REQUEST_KEYS.isdisjoint(meta)


def read_request_meta(params: dict[str, Any]) -> RequestMeta | None:
    """The per-request `_meta` of `params`; None when it has none of the per-request keys (a
    handshake-era request). -32602 for a malformed or missing required field, -32022 for a
    revision this server does not serve."""
    return require_request_meta(params) if is_modern_meta(params) else None


def require_request_meta(params: dict[str, Any]) -> RequestMeta:
    """The per-request `_meta` of a request known to be of the 2026-07-28 era (on HTTP, by
    its `MCP-Protocol-Version` header): -32602 when it is missing."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        raise invalid_params(f"A {MODERN_VERSION} request requires _meta")
    if PROTOCOL_VERSION_KEY not in meta:
        raise invalid_params(f"_meta requires {PROTOCOL_VERSION_KEY}")
    return _read(meta)


def _read(meta: dict[str, Any]) -> RequestMeta:
    version = meta[PROTOCOL_VERSION_KEY]
    if not isinstance(version, str) or not version:
        raise invalid_params(f"{PROTOCOL_VERSION_KEY} must be a non-empty string")
    capabilities = meta.get(CLIENT_CAPABILITIES_KEY)
    if capabilities is None:
        raise invalid_params(f"_meta requires {CLIENT_CAPABILITIES_KEY}")
    if not isinstance(capabilities, dict):
        raise invalid_params(f"{CLIENT_CAPABILITIES_KEY} must be an object")
    client_info = meta.get(CLIENT_INFO_KEY)
    if client_info is not None and not isinstance(client_info, dict):
        raise invalid_params(f"{CLIENT_INFO_KEY} must be an object")
    log_level = meta.get(LOG_LEVEL_KEY)
    if log_level is not None:
        level_rank(log_level)  # -32602 for a name that is not a level
    if version not in MODERN_VERSIONS:
        raise unsupported_version(version)
    return RequestMeta(
        protocol_version=version,
        client_capabilities=capabilities,
        client_info=client_info,
        log_level=log_level,
    )


def require_capabilities(meta: RequestMeta, required: dict[str, Any]) -> None:
    """-32021 naming those of the client capabilities `required` (a ClientCapabilities
    object) that the request did not declare."""
    missing = {
        name: value for name, value in required.items() if name not in meta.client_capabilities
    }
    if missing:
        raise missing_capability(missing)


def unsupported_version(requested: str) -> JsonRpcError:
    """A -32022 error: `requested` is not served; `data` lists what is."""
    return JsonRpcError(
        UNSUPPORTED_PROTOCOL_VERSION,
        f"Unsupported protocol version {requested!r}",
        {"supported": list(MODERN_VERSIONS), "requested": requested},
    )


@functools.cache
def server_info(*, name: str, title: str, version: str) -> dict[str, str]:
    """The `Implementation` a modern result names its server with: built once per server and
    shared by every result's `_meta`, which is only ever serialised (never change it)."""
    return {"name": name, "title": title, "version": version}


def discover_result(capabilities: dict[str, Any], instructions: str | None) -> dict[str, Any]:
    """The body of a `server/discover` result (finished like any other)."""
    result: dict[str, Any] = {
        "supportedVersions": list(MODERN_VERSIONS),
        "capabilities": capabilities,
    }
    if instructions:
        result["instructions"] = instructions
    return result


def finish_result(
    method: str, result: dict[str, Any], *, server: dict[str, str], ttl_ms: int
) -> dict[str, Any]:
    """A handler's result as a modern request gets it: `resultType` ("complete" unless the
    handler set one), the server in `_meta`, and on a complete cacheable result its hints."""
    finished = dict(result)
    result_type = finished.setdefault("resultType", RESULT_COMPLETE)
    meta = finished.get("_meta")
    finished["_meta"] = (
        {**meta, SERVER_INFO_KEY: server} if isinstance(meta, dict) else {SERVER_INFO_KEY: server}
    )
    hint = CACHEABLE.get(method)
    if hint is not None and result_type == RESULT_COMPLETE:
        finished["ttlMs"] = ttl_ms if hint.fresh else 0
        finished["cacheScope"] = hint.scope
    return finished
