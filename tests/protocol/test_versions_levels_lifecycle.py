"""Version negotiation, batch support, logging levels and the initialize handshake."""

from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.protocol.lifecycle import InitializeParams, initialize_result, parse_initialize
from mcp_server.protocol.log_levels import DEFAULT_LEVEL, LOG_LEVELS, level_rank
from mcp_server.protocol.versions import (
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    allows_batches,
    negotiate_version,
)

# --- versions ----------------------------------------------------------------------------


def test_latest_is_supported_and_first() -> None:
    assert LATEST_VERSION == "2025-11-25"
    assert SUPPORTED_VERSIONS[0] == LATEST_VERSION
    assert set(SUPPORTED_VERSIONS) == {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"])
def test_supported_version_is_echoed(version: str) -> None:
    assert negotiate_version(version) == version


@pytest.mark.parametrize("version", ["2026-07-28", "1999-01-01", "", "2025-11-25 ", "latest"])
def test_unsupported_version_gets_latest(version: str) -> None:
    assert negotiate_version(version) == LATEST_VERSION


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2025-03-26", True),
        ("2025-06-18", False),
        ("2025-11-25", False),
        ("2024-11-05", False),
        (None, False),
        ("", False),
    ],
)
def test_allows_batches(version: str | None, expected: bool) -> None:
    assert allows_batches(version) is expected


# --- log levels --------------------------------------------------------------------------


def test_levels_in_rfc5424_order() -> None:
    assert LOG_LEVELS == (
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    )
    ranks = [level_rank(level) for level in LOG_LEVELS]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert DEFAULT_LEVEL == "info"


@pytest.mark.parametrize("level", ["verbose", "DEBUG", "", None, 3, ["info"], {"a": 1}])
def test_unknown_level_is_invalid_params(level: Any) -> None:
    with pytest.raises(JsonRpcError) as caught:
        level_rank(level)
    assert caught.value.code == INVALID_PARAMS
    assert "debug" in caught.value.message


# --- initialize --------------------------------------------------------------------------


def test_parse_initialize_full() -> None:
    hello = parse_initialize(
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {"roots": {"listChanged": True}},
            "clientInfo": {"name": "inspector", "version": "1.2.3"},
        }
    )
    assert hello == InitializeParams(
        protocol_version="2025-06-18",
        capabilities={"roots": {"listChanged": True}},
        client_name="inspector",
        client_version="1.2.3",
    )


def test_parse_initialize_minimal() -> None:
    hello = parse_initialize({"protocolVersion": "2025-11-25"})
    assert hello.capabilities == {}
    assert hello.client_name == ""
    assert hello.client_version == ""


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"protocolVersion": ""},
        {"protocolVersion": None},
        {"protocolVersion": 20251125},
        {"protocolVersion": ["2025-11-25"]},
        {"capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
    ],
)
def test_parse_initialize_requires_protocol_version(params: dict[str, Any]) -> None:
    with pytest.raises(JsonRpcError) as caught:
        parse_initialize(params)
    assert caught.value.code == INVALID_PARAMS
    assert "protocolVersion" in caught.value.message


@pytest.mark.parametrize("member", ["capabilities", "clientInfo"])
@pytest.mark.parametrize("value", [[], "x", 1])
def test_parse_initialize_objects_must_be_objects(member: str, value: Any) -> None:
    with pytest.raises(JsonRpcError) as caught:
        parse_initialize({"protocolVersion": "2025-11-25", member: value})
    assert caught.value.code == INVALID_PARAMS


def test_initialize_result_echoes_supported_version() -> None:
    capabilities = {"logging": {}, "tools": {"listChanged": False}}
    result = initialize_result(
        requested_version="2025-03-26",
        server_name="srv",
        server_title="Server",
        server_version="0.1.0",
        capabilities=capabilities,
    )
    assert result == {
        "protocolVersion": "2025-03-26",
        "capabilities": capabilities,
        "serverInfo": {"name": "srv", "title": "Server", "version": "0.1.0"},
    }
    assert "instructions" not in result


def test_initialize_result_unsupported_version_and_instructions() -> None:
    result = initialize_result(
        requested_version="2030-01-01",
        server_name="srv",
        server_title="Server",
        server_version="0.1.0",
        capabilities={},
        instructions="Use the calculator.",
    )
    assert result["protocolVersion"] == LATEST_VERSION
    assert result["instructions"] == "Use the calculator."


def test_initialize_result_empty_instructions_omitted() -> None:
    result = initialize_result(
        requested_version=LATEST_VERSION,
        server_name="s",
        server_title="S",
        server_version="1",
        capabilities={},
        instructions="",
    )
    assert "instructions" not in result


@pytest.mark.parametrize(
    ("operation_status", "expected"),
    [
        ("queued", "batch 2/8"),
        ("running", "batch 2/8"),
        ("succeeded", ""),
        ("failed", "boom"),
        ("interrupted", "boom"),
        ("cancelled", "The task was cancelled."),
    ],
)
def test_a_task_says_progress_while_working_and_why_when_it_failed(
    operation_status: str, expected: str
) -> None:
    from mcp_server.operations.lifecycle import status_message

    assert status_message(operation_status, error="boom", message="batch 2/8") == expected


def test_a_task_cancelled_for_a_reason_says_why() -> None:
    from mcp_server.operations.lifecycle import status_message

    said = status_message("cancelled", error="cancelled: access revoked: token revoked", message="")
    assert said == "The task was cancelled (access revoked: token revoked)."
    assert status_message("cancelled", error="cancelled", message="") == "The task was cancelled."
