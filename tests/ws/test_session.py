"""McpSession without a socket: in-flight calls, cancellation, close, paging and batches."""

import asyncio
from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS, INVALID_REQUEST
from mcp_server.session import McpSession
from mcp_server.session_state import SessionState
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import (
    TIMEOUT,
    Outbox,
    SlowTool,
    call,
    initialize,
    make_session,
    notification,
    request,
)


def _tasks_of(session: McpSession) -> list[asyncio.Task[Any]]:
    # The session's spawned request tasks, to await their end without sleeping.
    return session._spawned.tasks


async def _wait_done(tasks: list[asyncio.Task[Any]]) -> None:
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=TIMEOUT)
        assert not pending, "in-flight calls did not end"


@pytest.fixture
def slow_tool() -> SlowTool:
    return SlowTool()


@pytest.fixture
def registry(slow_tool: SlowTool) -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(build_tool(slow_tool.slow, name="slow"))

    async def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    async def boom() -> str:
        """Fail."""
        raise RuntimeError("secret detail")

    for fn in (add, boom):
        reg.register(build_tool(fn))
    for index in range(3):

        async def extra() -> str:
            return ""

        reg.register(build_tool(extra, name=f"extra{index}"))
    return reg


@pytest.fixture
async def ready(registry: ToolRegistry) -> tuple[McpSession, Outbox]:
    session, outbox = make_session(registry)
    await initialize(session, outbox)
    return session, outbox


# --- cancellation ------------------------------------------------------------------------


async def test_cancelled_call_never_answers(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await session.receive(call(7, "slow"))
    await slow_tool.wait_started()
    assert session.in_flight == 1
    tasks = _tasks_of(session)

    await session.receive(
        notification("notifications/cancelled", {"requestId": 7, "reason": "user hit stop"})
    )
    await _wait_done(tasks)
    assert session.in_flight == 0
    assert slow_tool.cancelled == 1
    assert slow_tool.finished == 0

    # Releasing the tool now changes nothing, and the connection goes on.
    slow_tool.release.set()
    await session.receive(request(8, "ping"))
    assert (await outbox.response(8))["result"] == {}
    assert outbox.responses(7) == []


async def test_cancelling_one_call_leaves_the_others(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await session.receive(call("a", "slow"))
    await session.receive(call("b", "slow"))
    await slow_tool.wait_started(calls=2)
    assert session.in_flight == 2
    cancelled = session._spawned.task("a")

    await session.receive(notification("notifications/cancelled", {"requestId": "a"}))
    await _wait_done([cancelled])
    assert session.in_flight == 1

    slow_tool.release.set()
    reply = await outbox.response("b")
    assert reply["result"]["content"] == [{"type": "text", "text": "released"}]
    await _wait_done(_tasks_of(session))
    assert session.in_flight == 0
    assert outbox.responses("a") == []


@pytest.mark.parametrize(
    "params",
    [
        {"requestId": 99},
        {"requestId": "7"},  # a string is not the integer id 7
        {"requestId": 7.0},
        {"requestId": None},
        {"requestId": [7]},
        {},
    ],
)
async def test_cancel_of_unknown_ids_is_ignored(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool, params: dict[str, Any]
) -> None:
    session, outbox = ready
    await session.receive(call(7, "slow"))
    await slow_tool.wait_started()
    await session.receive(notification("notifications/cancelled", params))
    assert session.in_flight == 1
    slow_tool.release.set()
    assert "result" in await outbox.response(7)
    assert slow_tool.cancelled == 0


async def test_cancel_with_boolean_request_id_does_not_cancel_id_1(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    # true is not a valid request id (parse_message refuses it), yet True == 1 in Python.
    session, outbox = ready
    await session.receive(call(1, "slow"))
    await slow_tool.wait_started()
    (task,) = _tasks_of(session)
    await session.receive(notification("notifications/cancelled", {"requestId": True}))
    assert not task.cancelling(), "requestId true cancelled the request with id 1"
    slow_tool.release.set()
    reply = await outbox.response(1)
    assert "result" in reply
    assert slow_tool.cancelled == 0


async def test_cancel_after_the_response_is_ignored(ready: tuple[McpSession, Outbox]) -> None:
    session, outbox = ready
    await session.receive(call(3, "add", {"a": 1, "b": 2}))
    assert (await outbox.response(3))["result"]["content"][0]["text"] == "3"
    await _wait_done(_tasks_of(session))
    await session.receive(notification("notifications/cancelled", {"requestId": 3}))
    await session.receive(request(4, "ping"))
    await outbox.response(4)
    assert len(outbox.responses(3)) == 1


async def test_duplicate_in_flight_id_is_refused(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await session.receive(call(5, "slow"))
    await slow_tool.wait_started()
    await session.receive(call(5, "add", {"a": 1, "b": 1}))
    refusal = await outbox.response(5)
    assert refusal["error"]["code"] == INVALID_REQUEST
    assert "in flight" in refusal["error"]["message"]
    assert session.in_flight == 1
    assert slow_tool.calls == 1

    slow_tool.release.set()
    await outbox.wait_for(lambda m: m.get("id") == 5 and "result" in m)
    await _wait_done(_tasks_of(session))
    assert len(outbox.responses(5)) == 2  # the refusal, then the original call's result
    # Once finished, the id may be used again.
    await session.receive(call(5, "add", {"a": 2, "b": 2}))
    await outbox.wait_for(lambda m: m.get("id") == 5 and m.get("result", {}).get("content"))
    assert outbox.responses(5)[-1]["result"]["content"][0]["text"] == "4"


async def test_connection_stays_responsive_during_a_call(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await session.receive(call(1, "slow"))
    await slow_tool.wait_started()
    await session.receive(request(2, "ping"))
    await session.receive(call(3, "add", {"a": 20, "b": 22}))
    assert (await outbox.response(2))["result"] == {}
    assert (await outbox.response(3))["result"]["content"][0]["text"] == "42"
    assert session.in_flight == 1
    assert outbox.responses(1) == []
    slow_tool.release.set()
    await outbox.response(1)


async def test_close_cancels_in_flight_calls(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await session.receive(call(1, "slow"))
    await session.receive(call(2, "slow"))
    await slow_tool.wait_started(calls=2)
    sent_before = len(outbox.messages)

    await asyncio.wait_for(session.close(), timeout=TIMEOUT)
    assert session.state is SessionState.CLOSED
    assert session.in_flight == 0
    assert slow_tool.cancelled == 2
    assert len(outbox.messages) == sent_before

    # A closed session answers nothing and sends no logs.
    await session.receive(request(3, "ping"))
    await session.receive(call(4, "add", {"a": 1, "b": 1}))
    await session.log("emergency", "still there?", None)
    assert len(outbox.messages) == sent_before


async def test_close_without_calls(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    await session.close()
    assert session.state is SessionState.CLOSED
    assert outbox.messages == []


async def test_tool_crash_is_an_error_result(ready: tuple[McpSession, Outbox]) -> None:
    session, outbox = ready
    await session.receive(call(1, "boom"))
    reply = await outbox.response(1)
    assert reply["result"]["isError"] is True
    assert "secret detail" not in reply["result"]["content"][0]["text"]


async def test_tools_call_params_errors(ready: tuple[McpSession, Outbox]) -> None:
    session, outbox = ready
    cases: list[dict[str, Any]] = [
        {"name": "nope", "arguments": {}},
        {"arguments": {}},
        {"name": 5},
        {"name": "add", "arguments": [1, 2]},
    ]
    for index, params in enumerate(cases):
        await session.receive(request(index, "tools/call", params))
        reply = await outbox.response(index)
        assert reply["error"]["code"] == INVALID_PARAMS, params


# --- lifecycle ---------------------------------------------------------------------------


async def test_requests_before_initialize(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    await session.receive(request(1, "ping"))
    assert (await outbox.response(1))["result"] == {}
    for index, method in enumerate(["tools/list", "tools/call", "logging/setLevel"], start=2):
        await session.receive(request(index, method, {}))
        reply = await outbox.response(index)
        assert reply["error"]["code"] == INVALID_REQUEST
        assert "initialize" in reply["error"]["message"]
    assert session.state is SessionState.AWAITING_INITIALIZE


async def test_initialize_twice_is_refused(ready: tuple[McpSession, Outbox]) -> None:
    session, outbox = ready
    await session.receive(request(2, "initialize", {"protocolVersion": "2025-11-25"}))
    assert (await outbox.response(2))["error"]["code"] == INVALID_REQUEST
    assert session.state is SessionState.READY


async def test_failed_initialize_leaves_the_session_waiting(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    await session.receive(request(1, "initialize", {"capabilities": {}}))
    assert (await outbox.response(1))["error"]["code"] == INVALID_PARAMS
    assert session.state is SessionState.AWAITING_INITIALIZE
    await session.receive(request(2, "initialize", {"protocolVersion": "2024-11-05"}))
    assert (await outbox.response(2))["result"]["protocolVersion"] == "2024-11-05"
    assert session.protocol_version == "2024-11-05"
    assert session.state is SessionState.READY


async def test_initialized_notification_is_recorded(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    assert not session.client_initialized
    await initialize(session, outbox)
    assert session.client_initialized
    # Notifications are never answered, known or not.
    count = len(outbox.messages)
    await session.receive(notification("notifications/whatever", {"x": 1}))
    await session.receive({"jsonrpc": "2.0", "method": "notifications/progress", "params": [1]})
    await session.receive({"jsonrpc": "2.0", "id": 77, "result": {}})
    assert len(outbox.messages) == count


# --- tools/list paging -------------------------------------------------------------------


async def test_tools_list_pages(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry, page_size=2)
    await initialize(session, outbox)
    names: list[str] = []
    cursor: str | None = None
    for page in range(10):
        params = {} if cursor is None else {"cursor": cursor}
        await session.receive(request(f"list-{page}", "tools/list", params))
        result = (await outbox.response(f"list-{page}"))["result"]
        assert len(result["tools"]) <= 2
        names.extend(tool["name"] for tool in result["tools"])
        cursor = result.get("nextCursor")
        if cursor is None:
            break
    assert names == [tool.name for tool in registry]
    assert page == 2  # 6 tools, 2 per page

    await session.receive(request("bad", "tools/list", {"cursor": "not-a-cursor"}))
    assert (await outbox.response("bad"))["error"]["code"] == INVALID_PARAMS


# --- batches -----------------------------------------------------------------------------


async def test_batches_only_in_2025_03_26(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    await initialize(session, outbox, version="2025-03-26")
    await session.receive(
        [
            request(1, "ping"),
            notification("notifications/initialized"),
            call(2, "add", {"a": 1, "b": 2}),
            {"jsonrpc": "2.0", "id": 3},
        ]
    )
    batch = await outbox.wait_for(lambda message: isinstance(message, list))
    assert [reply["id"] for reply in batch] == [1, 2, 3]
    assert batch[0]["result"] == {}
    assert batch[1]["result"]["content"][0]["text"] == "3"
    assert batch[2]["error"]["code"] == INVALID_REQUEST

    await session.receive([])
    empty = await outbox.wait_for(lambda m: isinstance(m, dict) and m.get("id") is None)
    assert empty["error"]["code"] == INVALID_REQUEST

    count = len(outbox.messages)
    await session.receive([notification("notifications/initialized")])
    assert len(outbox.messages) == count


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2024-11-05", None])
async def test_batches_refused_elsewhere(registry: ToolRegistry, version: str | None) -> None:
    session, outbox = make_session(registry)
    if version is not None:
        await initialize(session, outbox, version=version)
    await session.receive([request(1, "ping")])
    refusal = await outbox.wait_for(lambda m: isinstance(m, dict) and m.get("id") is None)
    assert refusal["error"]["code"] == INVALID_REQUEST
    assert "batch" in refusal["error"]["message"]
    assert outbox.responses(1) == []
