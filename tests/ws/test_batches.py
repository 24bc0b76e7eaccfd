"""Batched requests (2025-03-26) behave like single ones: spawned, cancellable, cancelled on
close, answered together as one array once all are done."""

import asyncio
from typing import Any

import pytest

from mcp_server.protocol.errors import INVALID_REQUEST
from mcp_server.session import McpSession
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import (
    TIMEOUT,
    Outbox,
    call,
    initialize,
    make_session,
    notification,
    request,
)
from tests.ws.test_session import SlowTool

BATCH_VERSION = "2025-03-26"


@pytest.fixture
def slow_tool() -> SlowTool:
    return SlowTool()


@pytest.fixture
async def ready(slow_tool: SlowTool) -> tuple[McpSession, Outbox]:
    registry = ToolRegistry()
    registry.register(build_tool(slow_tool.slow, name="slow"))

    async def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    registry.register(build_tool(add))
    session, outbox = make_session(registry)
    await initialize(session, outbox, version=BATCH_VERSION)
    return session, outbox


async def receive(session: McpSession, payload: Any) -> None:
    """Hand the session a frame; the handler must return at once whatever the frame runs."""
    await asyncio.wait_for(session.receive(payload), TIMEOUT)


def is_batch(message: Any) -> bool:
    """Whether `message` is the array answering a batch."""
    return isinstance(message, list)


async def test_a_batched_call_runs_while_the_session_answers(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await receive(session, [call(1, "slow"), request(2, "ping"), call(3, "add", {"a": 1, "b": 2})])
    await slow_tool.wait_started()
    assert 1 in session._spawned  # a batched call is in flight like any other

    await receive(session, request(4, "ping"))
    assert (await outbox.response(4))["result"] == {}
    assert not any(is_batch(message) for message in outbox.messages)

    slow_tool.release.set()
    batch = await outbox.wait_for(is_batch)
    assert [reply["id"] for reply in batch] == [1, 2, 3]
    assert batch[0]["result"]["content"] == [{"type": "text", "text": "released"}]
    assert batch[1]["result"] == {}
    assert batch[2]["result"]["content"][0]["text"] == "3"
    assert not any(
        is_batch(message) for message in outbox.messages[outbox.messages.index(batch) + 1 :]
    )


async def test_a_batched_call_is_cancelled_by_its_id(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await receive(session, [call("slow-one", "slow"), call("sum", "add", {"a": 2, "b": 2})])
    await slow_tool.wait_started()

    await receive(session, notification("notifications/cancelled", {"requestId": "slow-one"}))
    batch = await outbox.wait_for(is_batch)
    # The cancelled request gets no response, as outside a batch; the rest of the batch does.
    assert [reply["id"] for reply in batch] == ["sum"]
    assert slow_tool.cancelled == 1
    assert slow_tool.finished == 0
    assert session.in_flight == 0


async def test_a_batch_whose_requests_are_all_cancelled_gets_no_reply(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await receive(session, [call(1, "slow")])
    await slow_tool.wait_started()
    await receive(session, notification("notifications/cancelled", {"requestId": 1}))
    await receive(session, request(2, "ping"))
    await outbox.response(2)
    await asyncio.wait_for(_until_idle(session), TIMEOUT)
    assert not any(is_batch(message) for message in outbox.messages)


async def _until_idle(session: McpSession) -> None:
    """Wait for the session's requests and batch answers to end (each end is an event)."""
    while pending := session._tasks.running:
        await asyncio.wait(pending)


async def test_closing_the_session_cancels_batched_calls(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await receive(session, [call(1, "slow"), request(2, "ping")])
    await slow_tool.wait_started()
    sent = len(outbox.messages)

    await asyncio.wait_for(session.close(), TIMEOUT)
    assert slow_tool.cancelled == 1
    assert session.in_flight == 0
    assert len(outbox.messages) == sent, "a closed session sent the batch's replies"


async def test_a_batch_id_already_in_flight_is_refused_in_the_array(
    ready: tuple[McpSession, Outbox], slow_tool: SlowTool
) -> None:
    session, outbox = ready
    await receive(session, call(1, "slow"))
    await slow_tool.wait_started()
    await receive(session, [call(1, "add", {"a": 1, "b": 1}), call(2, "add", {"a": 1, "b": 1})])
    batch = await outbox.wait_for(is_batch)
    assert [reply["id"] for reply in batch] == [1, 2]
    assert batch[0]["error"]["code"] == INVALID_REQUEST
    assert "already in flight" in batch[0]["error"]["message"]
    assert batch[1]["result"]["content"][0]["text"] == "2"
    slow_tool.release.set()
    assert "result" in await outbox.response(1)
