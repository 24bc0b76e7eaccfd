import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from mcp_server.models import Operation, OperationError, OperationStatus
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.protocol.errors import INTERNAL_ERROR, JsonRpcError
from mcp_server.protocol.input_required import InputRound
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.runner import CallRequest, OperationRunner
from mcp_server.tools.registry import ToolError, ToolRegistry, tool
from tests.support import Wire, make_principal, wait_until, yield_to_other_tasks

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_PERIOD = 0.05

tools = ToolRegistry()
gate = asyncio.Event()
steps: list[int] = []


@tool(into=tools)
async def count_to(n: int, ctx: ToolContext) -> dict:
    """Count to n, reporting every step and failing on multiples of 7."""
    for i in range(1, n + 1):
        if i % 7 == 0:
            ctx.item_error(f"item-{i}", "sevens are unlucky")
        ctx.progress(i, n, f"step {i}")
        await yield_to_other_tasks()
    return {"counted": n}


@tool(into=tools)
async def wait_for_gate(ctx: ToolContext) -> str:
    """Wait until the test opens the gate, one item at a time."""
    while not gate.is_set():
        steps.append(1)
        ctx.progress(len(steps), None, None)
        await asyncio.sleep(0.01)
    return "opened"


@tool(into=tools)
async def refuse(ctx: ToolContext) -> str:
    """Always fail as a tool."""
    raise ToolError("no, thank you")


@tool(into=tools)
async def crash(ctx: ToolContext) -> str:
    """Fail unexpectedly."""
    raise RuntimeError("boom")


@tool(into=tools)
async def protocol_error(ctx: ToolContext) -> str:
    """Fail with a JSON-RPC error of its own."""
    raise JsonRpcError(INTERNAL_ERROR, "upstream said no")


@tool(into=tools)
async def asks(ctx: ToolContext) -> str:
    """Ask for a name."""
    answer = await ctx.elicit("Name?", {"type": "object"}, key="name")
    return f"hello {answer['content']['name']}"


class Ended(Wire):
    """A published call's listener: what it was told at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[tuple[str, dict[str, Any] | None]] = []

    async def progress(self, report: Any) -> None:  # type: ignore[override]
        """Drop progress."""

    async def asking(self, input_requests: dict[str, Any] | None) -> None:
        """Nothing asks here."""

    def record_end(self, operation: Any) -> None:
        """Nothing to note."""

    async def finished(self, *, status: str, result: dict[str, Any] | None, error: str) -> None:
        """Keep the end."""
        self.outcomes.append((status, result))


def _round(responses: dict[str, Any] | None = None) -> InputRound:
    return InputRound(capabilities={"elicitation": {}}, seal=lambda a: "state", responses=responses)


def _request(
    principal, name: str, arguments: dict[str, Any], *, token=None, rid=1, inputs=None
) -> CallRequest:
    found = tools.get(name)
    assert found is not None
    return CallRequest(
        principal=principal,
        tool=found,
        arguments=arguments,
        connection_id="conn-1",
        request_id=rid,
        progress_token=token,
        inputs=inputs,
    )


async def _rows(writer: HistoryWriter) -> list[Operation]:
    await database_sync_to_async(writer.flush)()
    return await database_sync_to_async(lambda: list(Operation.objects.order_by("queued_at")))()


async def test_success_records_history_progress_and_item_errors(
    runner: OperationRunner, writer
) -> None:
    principal = await database_sync_to_async(make_principal)("acme", "ann")
    wire = Wire()
    result = await runner.call(
        _request(principal, "count_to", {"n": 30}, token="p"), send=wire.send, events=wire
    )
    assert result["structuredContent"] == {"counted": 30} if "structuredContent" in result else True
    progress = [p["progress"] for p in wire.progress()]
    assert progress[0] == 1 and progress[-1] == 30
    assert all(b > a for a, b in zip(progress, progress[1:], strict=False))
    (row,) = await _rows(writer)
    assert row.status == OperationStatus.SUCCEEDED
    assert row.tool == "count_to" and row.arguments == {"n": 30}
    assert row.progress == 30 and row.total == 30
    assert row.started_at and row.finished_at and row.duration is not None
    assert row.error_count == 4
    assert row.request_id == "1" and row.connection_id == "conn-1"
    errors = await database_sync_to_async(
        lambda: list(OperationError.objects.filter(operation=row))
    )()
    assert [e.item for e in errors] == ["item-7", "item-14", "item-21", "item-28"]


async def test_is_error_and_crash_are_failed_rows(runner: OperationRunner, writer) -> None:
    principal = await database_sync_to_async(make_principal)("acme", "bob")
    wire = Wire()
    refused = await runner.call(_request(principal, "refuse", {}), send=wire.send, events=wire)
    crashed = await runner.call(
        _request(principal, "crash", {}, rid=2), send=wire.send, events=wire
    )
    assert refused["isError"] and crashed["isError"]
    assert "boom" not in crashed["content"][0]["text"]
    rows = await _rows(writer)
    assert [r.status for r in rows] == [OperationStatus.FAILED, OperationStatus.FAILED]
    assert rows[0].error == "no, thank you"
    assert "reference" in rows[1].error


async def test_a_json_rpc_error_of_a_tool_fails_the_request_with_no_result(
    runner: OperationRunner, writer
) -> None:
    principal = await database_sync_to_async(make_principal)("acme", "bob")
    wire = Wire()
    with pytest.raises(JsonRpcError) as raised:
        await runner.call(_request(principal, "protocol_error", {}), send=wire.send, events=wire)
    assert raised.value.message == "upstream said no"
    (row,) = await _rows(writer)
    assert (row.status, row.result) == (OperationStatus.FAILED, None)
    assert row.error == "JsonRpcError: upstream said no"


async def test_a_call_that_asks_is_recorded_input_required_and_its_retry_succeeded(
    runner: OperationRunner, writer
) -> None:
    principal = await database_sync_to_async(make_principal)("acme", "ada")
    wire = Wire()
    asked = await runner.call(
        _request(principal, "asks", {}, inputs=_round()), send=wire.send, events=wire
    )
    assert asked == {
        "resultType": "input_required",
        "inputRequests": {
            "name": {
                "method": "elicitation/create",
                "params": {"message": "Name?", "requestedSchema": {"type": "object"}},
            }
        },
        "requestState": "state",
    }
    answer = {"name": {"action": "accept", "content": {"name": "Ada"}}}
    done = await runner.call(
        _request(principal, "asks", {}, rid=2, inputs=_round(answer)), send=wire.send, events=wire
    )
    assert done["content"][0]["text"] == "hello Ada"
    first, second = await _rows(writer)
    assert (first.status, first.result_summary) == ("input_required", {"inputRequests": ["name"]})
    assert first.error == "" and first.finished_at is not None
    assert second.status == OperationStatus.SUCCEEDED


async def test_a_published_call_that_asks_is_announced_input_required(
    runner: OperationRunner, writer
) -> None:
    principal = await database_sync_to_async(make_principal)("acme", "alan")
    ended = Ended()
    await runner.run_published(_request(principal, "asks", {}, inputs=_round()), ended)
    ((status, result),) = ended.outcomes
    assert status == "input_required"
    assert result is not None and result["resultType"] == "input_required"


async def test_cancel_records_cancelled_releases_the_slot_and_sends_nothing(runner, writer) -> None:
    gate.clear()
    steps.clear()
    principal = await database_sync_to_async(make_principal)("acme", "cat")
    wire = Wire()
    task = asyncio.create_task(
        runner.call(_request(principal, "wait_for_gate", {}, token=7), send=wire.send, events=wire)
    )
    await wait_until(lambda: len(steps) >= 3)
    (operation_id,) = runner.running_ids
    assert runner.cancel(operation_id)
    with pytest.raises(asyncio.CancelledError):
        await task
    sent_at_cancel = len(wire.messages)
    count_at_cancel = len(steps)
    # Nothing to wait for: this checks that nothing happens, over a few tool steps' time.
    await asyncio.sleep(QUIET_PERIOD)
    assert len(steps) == count_at_cancel
    assert len(wire.messages) == sent_at_cancel
    assert runner.scheduler.running == 0
    assert runner.running_ids == []
    (row,) = await _rows(writer)
    assert row.status == OperationStatus.CANCELLED
    assert not runner.cancel(operation_id)


async def test_per_user_limit_queues_the_next_call_and_says_so(runner, writer) -> None:
    gate.clear()
    steps.clear()
    principal = await database_sync_to_async(make_principal)("acme", "dan")
    first_wire, second_wire = Wire(), Wire()
    first = asyncio.create_task(
        runner.call(
            _request(principal, "wait_for_gate", {}, token="a"),
            send=first_wire.send,
            events=first_wire,
        )
    )
    await wait_until(lambda: len(steps) >= 1)
    second = asyncio.create_task(
        runner.call(
            _request(principal, "count_to", {"n": 3}, token="b", rid=2),
            send=second_wire.send,
            events=second_wire,
        )
    )
    await wait_until(lambda: bool(second_wire.progress()))
    assert second_wire.progress()[0]["message"].startswith("queued, position 1")
    rows = await _rows(writer)
    assert {r.tool: r.status for r in rows}["count_to"] == OperationStatus.QUEUED
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    progress = [p["progress"] for p in second_wire.progress()]
    assert progress[-1] == 3
    assert all(b > a for a, b in zip(progress, progress[1:], strict=False))
    rows = await _rows(writer)
    assert {r.status for r in rows} == {OperationStatus.SUCCEEDED}


async def test_a_shutdown_interrupts_rather_than_cancels(runner, writer) -> None:
    gate.clear()
    steps.clear()
    principal = await database_sync_to_async(make_principal)("acme", "eve")
    wire = Wire()
    task = asyncio.create_task(
        runner.call(_request(principal, "wait_for_gate", {}), send=wire.send, events=wire)
    )
    await wait_until(lambda: len(steps) >= 1)
    task.cancel(Stop(StopReason.SHUTDOWN))
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = await _rows(writer)
    assert row.status == OperationStatus.INTERRUPTED
    assert runner.scheduler.running == 0


def test_askers_before_a_flush_begins_share_it() -> None:
    writer = HistoryWriter(interval=3600, threaded=False)
    asked = writer.flush_soon()
    assert writer.flush_soon() is asked  # one future for every asker until the flush begins
    writer.flush()
    assert asked.done()
    assert writer.flush_soon() is not asked


async def test_a_caller_that_stops_waiting_for_a_flush_leaves_the_others_waiting(
    runner, writer
) -> None:
    principal = await database_sync_to_async(make_principal)("acme", "eve")
    for _ in range(3):
        await runner.call(
            _request(principal, "count_to", {"n": 1}), send=Wire().send, events=Wire()
        )
    waiting = [asyncio.create_task(runner.flush_history()) for _ in range(50)]
    waiting[0].cancel()
    await asyncio.wait_for(asyncio.gather(*waiting[1:]), 30)
    assert waiting[0].cancelled()
    assert len(await _rows(writer)) == 3
