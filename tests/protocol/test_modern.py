"""The 2026-07-28 envelope: per-request `_meta`, finished results, and the HTTP binding's
mirrored headers."""

import base64
from typing import Any

import pytest

from mcp_server.protocol.errors import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    UNSUPPORTED_PROTOCOL_VERSION,
    JsonRpcError,
    missing_capability,
)
from mcp_server.protocol.modern import (
    CACHEABLE,
    MODERN_VERSION,
    RequestMeta,
    discover_result,
    finish_result,
    read_request_meta,
    require_capabilities,
    require_request_meta,
)
from mcp_server.protocol.request_headers import (
    MirroredHeaders,
    check_mirrored_headers,
    decode_header_value,
    encode_header_value,
    is_modern_post,
    status_for,
)

VERSION = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
INFO = "io.modelcontextprotocol/clientInfo"
LEVEL = "io.modelcontextprotocol/logLevel"
SERVER = {"name": "s", "title": "S", "version": "1"}


def meta(**fields: Any) -> dict[str, Any]:
    """Params whose `_meta` is a valid modern one, with `fields` replacing (None: removing)."""
    values: dict[str, Any] = {VERSION: MODERN_VERSION, CAPABILITIES: {}}
    for key, value in fields.items():
        name = {"version": VERSION, "capabilities": CAPABILITIES, "info": INFO, "level": LEVEL}[key]
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    return {"_meta": values}


def code_of(params: dict[str, Any]) -> int:
    with pytest.raises(JsonRpcError) as raised:
        read_request_meta(params)
    return raised.value.code


# --- the per-request _meta ----------------------------------------------------------------


@pytest.mark.parametrize(
    "params", [{}, {"_meta": None}, {"_meta": {"progressToken": 1}}, {"_meta": [1]}]
)
def test_a_request_naming_no_protocol_version_is_of_the_handshake_era(
    params: dict[str, Any],
) -> None:
    assert read_request_meta(params) is None


def test_a_modern_request_describes_its_client() -> None:
    params = meta(capabilities={"sampling": {}}, info={"name": "c", "version": "1"}, level="info")
    assert read_request_meta(params) == RequestMeta(
        protocol_version=MODERN_VERSION,
        client_capabilities={"sampling": {}},
        client_info={"name": "c", "version": "1"},
        log_level="info",
    )


def test_client_info_and_log_level_are_optional() -> None:
    found = read_request_meta(meta())
    assert found is not None
    assert (found.client_info, found.log_level) == (None, None)


@pytest.mark.parametrize(
    "params",
    [
        meta(capabilities=None),
        meta(capabilities=[]),
        meta(capabilities="all"),
        meta(version=""),
        meta(version=20260728),
        meta(info="me"),
        meta(level="loud"),
        meta(level=3),
    ],
)
def test_a_malformed_field_is_invalid_params(params: dict[str, Any]) -> None:
    assert code_of(params) == INVALID_PARAMS


@pytest.mark.parametrize("version", ["2025-11-25", "v999.0.0", "2026-07-29"])
def test_an_unserved_version_lists_the_served_ones(version: str) -> None:
    with pytest.raises(JsonRpcError) as raised:
        read_request_meta(meta(version=version))
    assert raised.value.code == UNSUPPORTED_PROTOCOL_VERSION
    assert raised.value.data == {"supported": [MODERN_VERSION], "requested": version}


@pytest.mark.parametrize(
    "params",
    [
        {"_meta": {CAPABILITIES: {}}},
        {"_meta": {INFO: {"name": "c", "version": "1"}}},
        {"_meta": {LEVEL: "info", "progressToken": 1}},
    ],
)
def test_a_per_request_key_without_a_version_is_a_malformed_modern_request(
    params: dict[str, Any],
) -> None:
    assert code_of(params) == INVALID_PARAMS


def test_malformed_wins_over_unsupported() -> None:
    assert code_of(meta(version="v999", capabilities=None)) == INVALID_PARAMS


@pytest.mark.parametrize("params", [{}, {"_meta": {}}, {"_meta": {CAPABILITIES: {}}}])
def test_a_request_known_to_be_modern_requires_its_meta(params: dict[str, Any]) -> None:
    with pytest.raises(JsonRpcError) as raised:
        require_request_meta(params)
    assert raised.value.code == INVALID_PARAMS


def test_only_undeclared_capabilities_are_required() -> None:
    declared = read_request_meta(meta(capabilities={"sampling": {}, "roots": {}}))
    assert declared is not None
    require_capabilities(declared, {"sampling": {}})
    require_capabilities(declared, {})
    with pytest.raises(JsonRpcError) as raised:
        require_capabilities(declared, {"sampling": {}, "elicitation": {"form": {}}})
    assert raised.value.data == {"requiredCapabilities": {"elicitation": {"form": {}}}}


def test_missing_capability_names_them_as_client_capabilities() -> None:
    error = missing_capability({"sampling": {}})
    assert error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert error.to_error()["data"] == {"requiredCapabilities": {"sampling": {}}}


# --- finished results ------------------------------------------------------------------------


def test_every_result_gets_a_result_type_and_the_server() -> None:
    finished = finish_result("tools/call", {"content": []}, server=SERVER, ttl_ms=5)
    assert finished == {
        "content": [],
        "resultType": "complete",
        "_meta": {"io.modelcontextprotocol/serverInfo": SERVER},
    }


def test_a_handlers_result_type_and_meta_are_kept() -> None:
    result = {"resultType": "input_required", "_meta": {"x.y/z": 1}}
    finished = finish_result("tools/list", result, server=SERVER, ttl_ms=5)
    assert finished["resultType"] == "input_required"
    assert finished["_meta"] == {"x.y/z": 1, "io.modelcontextprotocol/serverInfo": SERVER}
    assert "ttlMs" not in finished and "cacheScope" not in finished  # not a complete result
    assert result == {"resultType": "input_required", "_meta": {"x.y/z": 1}}  # not mutated


@pytest.mark.parametrize(
    ("method", "ttl", "scope"),
    [
        ("server/discover", 5, "public"),
        ("tools/list", 5, "private"),
        ("prompts/list", 5, "private"),
        ("resources/list", 5, "private"),
        ("resources/templates/list", 5, "private"),
        ("resources/read", 0, "private"),
    ],
)
def test_cacheable_results_get_their_hints(method: str, ttl: int, scope: str) -> None:
    finished = finish_result(method, {}, server=SERVER, ttl_ms=5)
    assert (finished["ttlMs"], finished["cacheScope"]) == (ttl, scope)


def test_only_the_six_cacheable_methods_have_hints() -> None:
    assert set(CACHEABLE) == {
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
    assert "ttlMs" not in finish_result("prompts/get", {}, server=SERVER, ttl_ms=5)


def test_discover_lists_the_modern_versions() -> None:
    assert discover_result({"tools": {}}, None) == {
        "supportedVersions": [MODERN_VERSION],
        "capabilities": {"tools": {}},
    }
    assert discover_result({}, "Be kind")["instructions"] == "Be kind"


# --- HTTP: which era, mirrored headers, statuses ----------------------------------------------


@pytest.mark.parametrize(
    ("header", "params", "modern"),
    [
        (MODERN_VERSION, {}, True),
        (MODERN_VERSION, None, True),  # a notification
        ("v999", meta(version="v999"), True),
        (None, meta(), True),
        (None, {"_meta": {CAPABILITIES: {}}}, True),
        ("2025-11-25", {"_meta": {"progressToken": 1}}, False),
        (None, {}, False),
        (None, None, False),
    ],
)
def test_the_era_of_a_post(header: str | None, params: Any, modern: bool) -> None:
    assert is_modern_post(header, params) is modern


def headers(
    version: str | None = MODERN_VERSION, method: str | None = "tools/call", name: str | None = "t"
) -> MirroredHeaders:
    return MirroredHeaders(protocol_version=version, method=method, name=name)


def encoded(text: str) -> str:
    return "=?base64?" + base64.b64encode(text.encode()).decode() + "?="


def test_matching_headers_pass() -> None:
    check_mirrored_headers(headers(), "tools/call", {"name": "t", **meta()})
    check_mirrored_headers(headers(name="  t\t "), "tools/call", {"name": "t", **meta()})
    check_mirrored_headers(headers(name=None, method="tools/list"), "tools/list", meta())
    check_mirrored_headers(
        headers(method="resources/read", name=encoded("file:///é")),
        "resources/read",
        {"uri": "file:///é", **meta()},
    )


@pytest.mark.parametrize(
    ("mirrored", "method", "params"),
    [
        (headers(version=None), "tools/call", {"name": "t", **meta()}),
        (headers(version="2025-11-25"), "tools/call", {"name": "t", **meta()}),
        (headers(), "tools/call", {"name": "t", **meta(version="v999")}),
        (headers(method=None), "tools/call", {"name": "t", **meta()}),
        (headers(method="tools/list"), "tools/call", {"name": "t", **meta()}),
        (headers(name=None), "tools/call", {"name": "t", **meta()}),
        (headers(name="u"), "tools/call", {"name": "t", **meta()}),
        (headers(name="=?base64?***?="), "tools/call", {"name": "t", **meta()}),
        (headers(method="prompts/get", name="p"), "prompts/get", {"name": "q", **meta()}),
    ],
)
def test_a_missing_or_different_header_is_a_mismatch(
    mirrored: MirroredHeaders, method: str, params: dict[str, Any]
) -> None:
    with pytest.raises(JsonRpcError) as raised:
        check_mirrored_headers(mirrored, method, params)
    assert raised.value.code == HEADER_MISMATCH


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("plain", "plain"),
        (encoded("Hello, 世界"), "Hello, 世界"),
        (encoded("=?base64?literal?="), "=?base64?literal?="),
        ("=?base64?not base64?=", None),
        ("=?base64?" + base64.b64encode(b"\xff").decode() + "?=", None),
    ],
)
def test_header_values_decode_the_base64_sentinel(value: str, decoded: str | None) -> None:
    assert decode_header_value(value) == decoded


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("us-west1", True),
        ("file:///a b", True),
        ("Hello, 世界", False),
        (" padded ", False),
        ("line1\nline2", False),
        ("=?base64?literal?=", False),
    ],
)
def test_header_values_encode_what_is_not_plain_ascii_and_round_trip(
    text: str, plain: bool
) -> None:
    encoded_value = encode_header_value(text)
    assert (encoded_value == text) is plain
    assert decode_header_value(encoded_value) == text


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (None, 202),
        ({"jsonrpc": "2.0", "id": 1, "result": {}}, 200),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "m"}}, 404),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": -32021, "message": "m"}}, 400),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "m"}}, 200),
    ],
)
def test_the_status_of_a_modern_reply(reply: dict[str, Any] | None, status: int) -> None:
    assert status_for(reply) == status
