"""`subscriptions/listen` in one McpSession: the acknowledgement first with what is honoured,
every message tagged with the listen's id, only what was asked for, bounds, and every way a
listen ends (cancelled, connection closed, ended by the server)."""

import asyncio
from typing import Any

import pytest

from mcp_server.listens import Listen, ListenCounts
from mcp_server.protocol.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
)
from mcp_server.protocol.subscriptions import SUBSCRIPTION_ID_KEY
from mcp_server.session import McpSession
from mcp_server.tools.registry import registry
from tests.ws.session_support import Outbox, initialize, make_session, notification, request
from tests.ws.test_modern_session import SERVER_INFO, modern

ACK = "notifications/subscriptions/acknowledged"
TOOLS = "notifications/tools/list_changed"
PROMPTS = "notifications/prompts/list_changed"
RESOURCES = "notifications/resources/list_changed"
TASKS_CAPABILITY: dict[str, Any] = {"extensions": {"io.modelcontextprotocol/tasks": {}}}


def listen(request_id: Any, capabilities: dict[str, Any] | None = None, **asked: Any) -> Any:
    """A subscriptions/listen request asking for `asked` (the `notifications` filter)."""
    message = modern(request_id, "subscriptions/listen", {"notifications": asked})
    if capabilities is not None:
        message["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = capabilities
    return message


def of(outbox: Outbox, subscription_id: Any) -> list[dict[str, Any]]:
    """The messages sent so far on listen `subscription_id`, in order."""
    return [
        m
        for m in outbox.messages
        if isinstance(m, dict)
        and (m.get("params") or m.get("result") or {}).get("_meta", {}).get(SUBSCRIPTION_ID_KEY)
        == subscription_id
    ]


async def acknowledged(outbox: Outbox, subscription_id: Any) -> dict[str, Any]:
    """The acknowledgement of listen `subscription_id` (waited for)."""
    found = await outbox.wait_for(lambda m: m in of(outbox, subscription_id))
    assert found["method"] == ACK, "the first message of a listen is its acknowledgement"
    return found["params"]["notifications"]


async def change_tool_set(session: McpSession) -> None:
    """Take process_images away: the tools, prompts and resource templates lists change."""
    await session.tenant_changed(None, frozenset({"process_images"}), session.principal.limits)


@pytest.mark.parametrize(
    ("asked", "honoured"),
    [
        ({}, {}),
        ({"toolsListChanged": True}, {"toolsListChanged": True}),
        ({"toolsListChanged": False, "promptsListChanged": True}, {"promptsListChanged": True}),
        (
            {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True},
            {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True},
        ),
        # Not the caller's resource: not honoured, left out.
        ({"resourceSubscriptions": ["nope://x"]}, {}),
        # No task side installed: task ids are not honoured.
        ({"taskIds": ["t-1"]}, {}),
    ],
)
async def test_the_acknowledgement_comes_first_with_what_is_honoured(
    asked: dict[str, Any], honoured: dict[str, Any]
) -> None:
    session, outbox = make_session(registry)
    await session.receive(listen(1, TASKS_CAPABILITY, **asked))
    assert await acknowledged(outbox, 1) == honoured
    assert outbox.responses(1) == [], "a listen stays open"
    await session.close()


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ({"toolsListChanged": True}, [TOOLS]),
        ({"promptsListChanged": True}, [PROMPTS]),
        ({"resourcesListChanged": True}, [RESOURCES]),
        ({"toolsListChanged": True, "resourcesListChanged": True}, [TOOLS, RESOURCES]),
        ({}, []),
    ],
)
async def test_a_listen_hears_only_the_list_changes_it_asked_for(
    asked: dict[str, Any], expected: list[str]
) -> None:
    session, outbox = make_session(registry)
    await session.receive(listen("sub", **asked))
    await acknowledged(outbox, "sub")
    await change_tool_set(session)
    sent = of(outbox, "sub")[1:]
    assert [m["method"] for m in sent] == expected
    assert all(m["params"] == {"_meta": {SUBSCRIPTION_ID_KEY: "sub"}} for m in sent)
    assert [m for m in outbox.messages if m not in of(outbox, "sub")] == [], "nothing untagged"
    await session.close()


async def test_listens_are_demultiplexed_by_their_ids_beside_the_handshake_era() -> None:
    session, outbox = make_session(registry)
    await initialize(session, outbox)
    await session.receive(listen(7, toolsListChanged=True))
    await session.receive(listen("seven", promptsListChanged=True))
    await acknowledged(outbox, 7)
    await acknowledged(outbox, "seven")
    await session.receive(request("ping", "ping"))  # the connection keeps answering
    assert (await outbox.response("ping"))["result"] == {}
    await change_tool_set(session)
    assert [m["method"] for m in of(outbox, 7)] == [ACK, TOOLS]
    assert [m["method"] for m in of(outbox, "seven")] == [ACK, PROMPTS]
    # The handshake era's own notifications still go out, untagged.
    plain = [m for m in outbox.messages if m.get("method") in (TOOLS, PROMPTS, RESOURCES)]
    assert [m["method"] for m in plain if "_meta" not in m["params"]] == [TOOLS, PROMPTS, RESOURCES]
    await session.close()


@pytest.mark.parametrize(
    "notifications",
    [
        [],
        {"toolsListChanged": "yes"},
        {"resourceSubscriptions": "mcp-realtime://data/"},
        {"resourceSubscriptions": [""]},
        {"taskIds": [1]},
    ],
)
async def test_a_malformed_filter_is_refused_and_opens_nothing(notifications: Any) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(1, "subscriptions/listen", {"notifications": notifications}))
    assert (await outbox.response(1))["error"]["code"] == INVALID_PARAMS
    assert len(session.listens) == 0
    assert of(outbox, 1) == []


async def test_too_many_uris_in_one_listen_are_refused() -> None:
    session, outbox = make_session(registry, listen_max_entries=2)
    uris = ["a://1", "a://2", "a://3"]
    await session.receive(listen(1, resourceSubscriptions=uris))
    error = (await outbox.response(1))["error"]
    assert error["code"] == INVALID_PARAMS
    assert error["data"] == {"limit": "resourceSubscriptions_per_listen", "maximum": 2}


async def test_listens_are_bounded_per_connection_and_per_user() -> None:
    counts = ListenCounts()
    first, outbox = make_session(registry, listen_counts=counts, listens_per_connection=2)
    for request_id in (1, 2):
        await first.receive(listen(request_id, toolsListChanged=True))
        await acknowledged(outbox, request_id)
    await first.receive(listen(3, toolsListChanged=True))
    error = (await outbox.response(3))["error"]
    assert (error["code"], error["data"]["limit"]) == (LIMIT_EXCEEDED, "listens_per_connection")

    # Another connection of the same user, in the same process: the user's bound (3).
    second, other = make_session(registry, listen_counts=counts, listens_per_user=3)
    await second.receive(listen("a", toolsListChanged=True))
    await acknowledged(other, "a")
    await second.receive(listen("b", toolsListChanged=True))
    error = (await other.response("b"))["error"]
    assert (error["code"], error["data"]["limit"]) == (LIMIT_EXCEEDED, "listens_per_user")

    await first.receive(notification("notifications/cancelled", {"requestId": 1}))
    await wait_closed(first, 1)
    await second.receive(listen("c", toolsListChanged=True))
    await acknowledged(other, "c")  # a freed place is taken again
    for session in (first, second):
        await session.close()
    assert counts.count(1) == 0


async def test_a_listen_id_in_use_is_refused() -> None:
    session, outbox = make_session(registry)
    await session.receive(listen(1, toolsListChanged=True))
    await acknowledged(outbox, 1)
    await session.receive(listen(1, promptsListChanged=True))
    assert (await outbox.response(1))["error"]["code"] == INVALID_REQUEST
    await session.close()


async def wait_closed(session: McpSession, request_id: Any) -> None:
    """Until listen `request_id` has ended."""
    task = session.running_request(request_id)
    if task is not None:
        await asyncio.wait({task}, timeout=5)
    assert session.running_request(request_id) is None


async def test_a_cancelled_listen_ends_without_a_response_and_hears_nothing_more() -> None:
    session, outbox = make_session(registry)
    await session.receive(listen(1, toolsListChanged=True))
    await acknowledged(outbox, 1)
    await session.receive(notification("notifications/cancelled", {"requestId": 1}))
    await wait_closed(session, 1)
    await change_tool_set(session)
    assert [m["method"] for m in of(outbox, 1)] == [ACK]
    assert outbox.responses(1) == []
    assert len(session.listens) == 0
    await session.close()


async def test_closing_the_connection_ends_its_listens() -> None:
    session, outbox = make_session(registry)
    await session.receive(listen(1, toolsListChanged=True))
    await acknowledged(outbox, 1)
    await session.close()
    assert len(session.listens) == 0
    assert outbox.responses(1) == []


async def test_a_listen_the_server_ends_gets_its_complete_response_and_no_notice() -> None:
    session, outbox = make_session(registry)
    await session.receive(listen(5, toolsListChanged=True))
    await acknowledged(outbox, 5)
    await session.going_away()
    response = outbox.responses(5)
    assert response == [
        {
            "jsonrpc": "2.0",
            "id": 5,
            "result": {
                "resultType": "complete",
                "_meta": {
                    SUBSCRIPTION_ID_KEY: 5,
                    "io.modelcontextprotocol/serverInfo": SERVER_INFO,
                },
            },
        }
    ]
    # 2026-07-28 has no log on a listen stream: the handshake era's shutdown notice stays out.
    assert [m.get("method") for m in outbox.messages if "method" in m] == [ACK]


async def test_task_ids_need_the_tasks_extension() -> None:
    session, outbox = make_session(registry)
    await session.receive(listen(1, {}, taskIds=["t-1"]))
    error = (await outbox.response(1))["error"]
    assert error["code"] == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert error["data"] == {"requiredCapabilities": TASKS_CAPABILITY}


class Watcher:
    """A task side that honours the ids it knows and remembers its listens."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.listens: list[Listen] = []
        self.unwatched: list[Listen] = []

    async def watch(self, listen: Listen, task_ids: tuple[str, ...]) -> tuple[str, ...]:
        self.listens.append(listen)
        # A change already due before the acknowledgement: sent right after it.
        await listen.task_changed({"taskId": "t-1", "status": "working"})
        return tuple(task_id for task_id in task_ids if task_id in self.known)

    async def unwatch(self, listen: Listen) -> None:
        self.unwatched.append(listen)


async def test_task_states_reach_the_listens_that_watch_them() -> None:
    session, outbox = make_session(registry)
    watcher = Watcher({"t-1"})
    session.listens.task_watcher = watcher
    await session.receive(listen(1, TASKS_CAPABILITY, taskIds=["t-1", "someone-elses"]))
    assert await acknowledged(outbox, 1) == {"taskIds": ["t-1"]}
    (watched,) = watcher.listens
    await watched.task_changed({"taskId": "someone-elses", "status": "completed"})
    await watched.task_changed({"taskId": "t-1", "status": "completed"})
    sent = of(outbox, 1)
    assert [(m["method"], m["params"].get("status")) for m in sent] == [
        (ACK, None),
        ("notifications/tasks", "working"),
        ("notifications/tasks", "completed"),
    ]
    assert sent[2]["params"]["_meta"] == {SUBSCRIPTION_ID_KEY: 1}
    await session.close()
    assert watcher.unwatched == [watched]


async def test_a_listen_is_a_2026_07_28_request_only() -> None:
    session, outbox = make_session(registry)
    await initialize(session, outbox)
    handshake = request(1, "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    await session.receive(handshake)
    assert (await outbox.response(1))["error"]["code"] == METHOD_NOT_FOUND
