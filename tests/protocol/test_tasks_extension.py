"""The tasks extension's negotiation, the server's choice of which calls become tasks, and
its request parameters and routing headers; pure."""

from typing import Any

import pytest

from mcp_server.protocol.errors import (
    HEADER_MISMATCH,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    JsonRpcError,
)
from mcp_server.protocol.modern import MODERN_VERSION, PROTOCOL_VERSION_KEY
from mcp_server.protocol.request_headers import MirroredHeaders, check_mirrored_headers
from mcp_server.protocol.tasks import (
    TASKS_EXTENSION,
    becomes_task,
    declares_extension,
)

WITH: dict[str, Any] = {"extensions": {TASKS_EXTENSION: {}}}
REQUIRED: dict[str, Any] = {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}


@pytest.mark.parametrize(
    ("capabilities", "declared"),
    [
        (WITH, True),
        ({"sampling": {}, **WITH}, True),
        ({}, False),
        ({"extensions": {}}, False),
        ({"extensions": {"com.example/other": {}}}, False),
        ({"extensions": {TASKS_EXTENSION: True}}, False),
        ({"extensions": [TASKS_EXTENSION]}, False),
        ({"tasks": {}}, False),  # the 2025-11-25 capability is not the extension
    ],
)
def test_the_extension_is_declared_as_an_object(
    capabilities: dict[str, Any], declared: bool
) -> None:
    assert declares_extension(capabilities) is declared


@pytest.mark.parametrize(
    ("support", "takes_long", "capabilities", "task"),
    [
        ("optional", True, WITH, True),
        ("required", True, WITH, True),
        ("required", False, WITH, True),
        # A short tool answers at once, whatever it supports.
        ("optional", False, WITH, False),
        ("forbidden", True, WITH, False),
        # Never a task for a request that did not declare the extension.
        ("optional", True, {}, False),
        ("forbidden", True, {}, False),
    ],
)
def test_the_server_decides_which_calls_become_tasks(
    support: str, takes_long: bool, capabilities: dict[str, Any], task: bool
) -> None:
    chosen = becomes_task(
        task_support=support, takes_long=takes_long, client_capabilities=capabilities
    )
    assert chosen is task


def test_a_tool_that_runs_only_as_a_task_needs_the_extension() -> None:
    with pytest.raises(JsonRpcError) as raised:
        becomes_task(task_support="required", takes_long=True, client_capabilities={})
    assert raised.value.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert raised.value.data == REQUIRED


META = {"_meta": {PROTOCOL_VERSION_KEY: MODERN_VERSION}}


@pytest.mark.parametrize("method", ["tasks/get", "tasks/update", "tasks/cancel"])
def test_a_task_request_names_its_task_in_mcp_name(method: str) -> None:
    params = {"taskId": "abc", **META}
    check_mirrored_headers(MirroredHeaders(MODERN_VERSION, method, "abc"), method, params)
    for name in (None, "other"):
        with pytest.raises(JsonRpcError) as raised:
            check_mirrored_headers(MirroredHeaders(MODERN_VERSION, method, name), method, params)
        assert raised.value.code == HEADER_MISMATCH
