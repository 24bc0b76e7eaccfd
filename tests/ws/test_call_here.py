"""A call that can send nothing before its reply runs in the task of the transport that waits
for it (`receive_message(..., here=True)`: an HTTP request's own), cancelled as a spawned
request is: by its client, by the session's close, by a cancel of its operation; a cancel
ends the call, never the transport's task."""

import asyncio
from typing import Any

from mcp_server.protocol.errors import INTERNAL_ERROR
from mcp_server.protocol.messages import parse_message
from mcp_server.runtime.context import ToolContext
from mcp_server.session import McpSession
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import (
    TIMEOUT,
    Outbox,
    SlowTool,
    call,
    initialize,
    make_session,
    notification,
)


async def _session(tool: SlowTool) -> tuple[McpSession, Outbox]:
    registry = ToolRegistry()
    registry.register(build_tool(tool.held, name="held", duration="short"))
    session, outbox = make_session(registry)
    await initialize(session, outbox)
    return session, outbox


def _transport(session: McpSession, message: dict[str, Any]) -> "asyncio.Task[int]":
    """The transport's task: hands `message` over to run here, then says how many cancels of
    itself are left pending (0: none reached it)."""

    async def receive() -> int:
        await session.receive_message(parse_message(message), here=True)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    return asyncio.create_task(receive())


async def _started(tool: SlowTool) -> None:
    await asyncio.wait_for(tool.started.wait(), timeout=TIMEOUT)


async def test_a_short_call_without_a_context_runs_in_the_transports_task() -> None:
    tool = SlowTool()
    session, outbox = await _session(tool)
    transport = _transport(session, call(1, "held"))
    await _started(tool)
    assert tool.task is transport
    assert session.running_request(1) is transport and session.in_flight == 1
    assert not session.is_idle
    tool.release.set()
    assert await asyncio.wait_for(transport, timeout=TIMEOUT) == 0
    # The reply was sent before receive_message returned.
    result = outbox.responses(1)[0]["result"]
    assert result["content"][0]["text"] == "released" and not result.get("isError")
    assert session.in_flight == 0 and session.running_request(1) is None and session.is_idle


async def test_the_clients_cancel_ends_the_call_and_not_the_transports_task() -> None:
    tool = SlowTool()
    session, outbox = await _session(tool)
    transport = _transport(session, call(1, "held"))
    await _started(tool)
    await session.receive(notification("notifications/cancelled", {"requestId": 1}))
    assert await asyncio.wait_for(transport, timeout=TIMEOUT) == 0
    assert tool.cancelled == 1 and outbox.responses(1) == []
    assert session.in_flight == 0 and session.is_idle
    # A late cancel of the same id reaches nothing: the task is the transport's again.
    await session.receive(notification("notifications/cancelled", {"requestId": 1}))
    assert transport.cancelling() == 0


async def test_closing_the_session_cancels_the_call_and_waits_for_its_end() -> None:
    tool = SlowTool()
    session, outbox = await _session(tool)
    transport = _transport(session, call(1, "held"))
    await _started(tool)
    await asyncio.wait_for(session.close(), timeout=TIMEOUT)
    assert tool.cancelled == 1  # ended by the time close returned
    assert await asyncio.wait_for(transport, timeout=TIMEOUT) == 0
    assert outbox.responses(1) == []


async def test_a_cancel_of_its_operation_answers_the_call_as_cancelled_by_the_server() -> None:
    tool = SlowTool()
    session, outbox = await _session(tool)
    transport = _transport(session, call(1, "held"))
    await _started(tool)
    runner = session.executor.runner
    (operation_id,) = runner.running_ids
    assert runner.cancel(operation_id)
    assert await asyncio.wait_for(transport, timeout=TIMEOUT) == 0
    error = outbox.responses(1)[0]["error"]
    assert error["code"] == INTERNAL_ERROR and error["data"] == {"by": "server"}


async def test_a_call_with_a_progress_token_is_spawned() -> None:
    tool = SlowTool()
    session, outbox = await _session(tool)
    message = call(1, "held")
    message["params"]["_meta"] = {"progressToken": "p"}  # a queued call reports its place
    transport = _transport(session, message)
    await _started(tool)
    assert tool.task is not transport
    tool.release.set()
    await asyncio.wait_for(transport, timeout=TIMEOUT)
    assert "result" in await outbox.response(1)


async def test_a_tool_that_takes_a_context_is_spawned() -> None:
    seen: list[asyncio.Task[Any] | None] = []

    async def with_context(ctx: ToolContext) -> str:
        seen.append(asyncio.current_task())
        return "ok"

    registry = ToolRegistry()
    registry.register(build_tool(with_context, name="with_context", duration="short"))
    session, outbox = make_session(registry)
    await initialize(session, outbox)
    transport = _transport(session, call(1, "with_context"))
    await asyncio.wait_for(transport, timeout=TIMEOUT)
    await outbox.response(1)
    assert seen and seen[0] is not transport
