"""The pure rules of subscriptions/listen: reading the filter, showing what is honoured, and
tagging every message of a listen with its subscription id."""

from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS, JsonRpcError
from mcp_server.protocol.subscriptions import (
    SUBSCRIPTION_ID_KEY,
    ListenFilter,
    acknowledgement,
    listen_ended,
    parse_listen_filter,
    tagged,
)

TOOLS = "notifications/tools/list_changed"
PROMPTS = "notifications/prompts/list_changed"


@pytest.mark.parametrize(
    ("notifications", "expected"),
    [
        ({}, ListenFilter()),
        ({"toolsListChanged": True}, ListenFilter(list_changes=frozenset({TOOLS}))),
        ({"toolsListChanged": False, "promptsListChanged": None}, ListenFilter()),
        (
            {"resourceSubscriptions": ["a://1", "a://2", "a://1"], "taskIds": ["t"]},
            ListenFilter(resource_uris=("a://1", "a://2"), task_ids=("t",)),
        ),
    ],
)
def test_a_filter_reads_what_is_asked_for(
    notifications: dict[str, Any], expected: ListenFilter
) -> None:
    assert parse_listen_filter({"notifications": notifications}, max_entries=2) == expected


def test_a_listen_without_a_filter_is_invalid_params() -> None:
    with pytest.raises(JsonRpcError) as refused:
        parse_listen_filter({}, max_entries=1)
    assert refused.value.code == INVALID_PARAMS


@pytest.mark.parametrize(
    "notifications",
    [
        "tools",
        {"promptsListChanged": 1},
        {"resourceSubscriptions": [None]},
        {"taskIds": {"t": 1}},
        {"resourceSubscriptions": ["a://1", "a://2", "a://3"]},
    ],
)
def test_a_malformed_or_oversized_filter_is_invalid_params(notifications: Any) -> None:
    with pytest.raises(JsonRpcError) as refused:
        parse_listen_filter({"notifications": notifications}, max_entries=2)
    assert refused.value.code == INVALID_PARAMS


def test_the_acknowledgement_shows_only_what_is_honoured_tagged() -> None:
    honoured = ListenFilter(list_changes=frozenset({PROMPTS}), resource_uris=("a://1",))
    assert acknowledgement(7, honoured) == {
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {
            "_meta": {SUBSCRIPTION_ID_KEY: 7},
            "notifications": {"promptsListChanged": True, "resourceSubscriptions": ["a://1"]},
        },
    }


def test_tagging_keeps_the_messages_own_meta() -> None:
    message = tagged("s", "notifications/tasks", {"taskId": "t", "_meta": {"x": 1}})
    assert message["params"] == {"taskId": "t", "_meta": {"x": 1, SUBSCRIPTION_ID_KEY: "s"}}
    assert listen_ended("s") == {"_meta": {SUBSCRIPTION_ID_KEY: "s"}}
