"""The operation lifecycle: transitions, why work stops and what history says, the mappings
to MCP task statuses and to JSON-RPC outcomes. Pure: no database."""

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest

from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.messages import OperationCancel, OperationFinished
from mcp_server.history_values import history_value
from mcp_server.models import Operation
from mcp_server.operations.lifecycle import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    IllegalTransition,
    OperationStatus,
    Stop,
    StopReason,
    call_outcome,
    can_move,
    check_move,
    detailed_task,
    extension_status,
    is_terminal,
    stop_of,
    task_outcome,
    task_status,
    task_view,
)
from mcp_server.protocol.errors import INTERNAL_ERROR, JsonRpcError
from mcp_server.protocol.tasks import RELATED_TASK

Q, R = OperationStatus.QUEUED, OperationStatus.RUNNING
ENDS = sorted(TERMINAL_STATUSES)


def test_every_status_is_active_or_terminal_and_the_model_offers_them_all() -> None:
    assert set(OperationStatus) == ACTIVE_STATUSES | TERMINAL_STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    assert set(TRANSITIONS) == set(OperationStatus)
    field = Operation._meta.get_field("status")
    assert [value for value, _ in field.choices] == [s.value for s in OperationStatus]  # type: ignore[union-attr]
    assert field.default == Q


@pytest.mark.parametrize("end", ENDS)
def test_queued_may_run_or_end_running_may_end(end: OperationStatus) -> None:
    assert can_move(Q, R)
    assert can_move(Q, end) and can_move(R, end)
    assert not can_move(R, Q)


@pytest.mark.parametrize("end", ENDS)
def test_terminal_is_final(end: OperationStatus) -> None:
    assert is_terminal(end)
    for status in OperationStatus:
        assert not can_move(end, status)
        with pytest.raises(IllegalTransition, match=f"from {end} to {status}"):
            check_move(end, status)


def test_check_move_gives_the_status() -> None:
    assert check_move("queued", "running") is OperationStatus.RUNNING


@pytest.mark.parametrize(
    ("stop", "status", "error"),
    [
        (Stop(StopReason.CLIENT_CANCEL), "cancelled", "cancelled"),
        (Stop(StopReason.DISCONNECT), "cancelled", "cancelled"),
        (Stop(StopReason.CANCEL_REQUESTED), "cancelled", "cancelled"),
        (
            Stop.access_revoked("token revoked"),
            "cancelled",
            "cancelled: access revoked: token revoked",
        ),
        (Stop(StopReason.SHUTDOWN), "interrupted", "interrupted: the server shut down"),
        (
            Stop(StopReason.LOST_RUNNER),
            "interrupted",
            "interrupted: its process stopped responding",
        ),
        (Stop(StopReason.UNCLAIMED), "interrupted", "interrupted: no process took it in time"),
        (
            Stop(StopReason.HAND_OFF_FAILED),
            "interrupted",
            "interrupted: could not hand the call to a worker",
        ),
        (
            Stop(StopReason.NOT_STARTED, "UnknownTool: nope"),
            "interrupted",
            "interrupted: the worker could not start it (UnknownTool: nope)",
        ),
    ],
)
def test_each_stop_reason_ends_in_one_status_with_one_history_text(
    stop: Stop, status: str, error: str
) -> None:
    assert (stop.status, stop.error) == (status, error)
    assert stop.status in TERMINAL_STATUSES


def test_every_stop_reason_has_a_text() -> None:
    for reason in StopReason:
        assert Stop(reason).error.startswith(str(Stop(reason).status))


def test_a_cancelled_error_carries_its_stop_and_a_bare_one_is_a_plain_cancel() -> None:
    stop = Stop.access_revoked("account or tenant is inactive")
    assert stop_of(asyncio.CancelledError(stop)) is stop
    assert stop_of(asyncio.CancelledError()) == Stop(StopReason.CLIENT_CANCEL)
    assert stop_of(asyncio.CancelledError("some text")) == Stop(StopReason.CLIENT_CANCEL)


async def test_a_task_cancelled_with_a_stop_raises_it() -> None:
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel(Stop(StopReason.SHUTDOWN))
    with pytest.raises(asyncio.CancelledError) as raised:
        await task
    assert stop_of(raised.value) == Stop(StopReason.SHUTDOWN)


@pytest.mark.parametrize(
    "stop", [Stop(reason) for reason in StopReason] + [Stop.access_revoked("x")]
)
def test_a_stop_crosses_processes_in_a_cancel_message(stop: Stop) -> None:
    message = OperationCancel(id=UUID(int=7), reason=stop).encode()
    assert message["type"] == "operation.cancel"
    assert Stop.decode(message) == stop
    assert decode_message(message) == OperationCancel(id=UUID(int=7), reason=stop)


def test_a_cancel_message_without_a_known_reason_carries_no_stop() -> None:
    assert Stop.decode(OperationCancel(id=UUID(int=7), reason=None).encode()) is None
    assert Stop.decode({"reason": "no such reason", "detail": "x"}) is None


@pytest.mark.parametrize(
    ("status", "task"),
    [
        ("queued", "working"),
        ("running", "working"),
        ("succeeded", "completed"),
        ("failed", "failed"),
        ("interrupted", "failed"),
        ("cancelled", "cancelled"),
    ],
)
def test_each_status_shows_as_a_task_status(status: str, task: str) -> None:
    assert task_status(status) == task


def _row(status: str, **fields: Any) -> Any:
    queued = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    values: dict[str, Any] = {
        "pk": "0190-task",
        "status": status,
        "queued_at": queued,
        "started_at": queued + timedelta(seconds=1),
        "finished_at": None,
        "heartbeat_at": queued + timedelta(seconds=3),
        "task_ttl": 60_000,
        "error": "",
        "message": "batch 2/8",
        "input_requests": None,
    }
    return SimpleNamespace(**{**values, **fields})


def test_a_working_task_polls_and_an_ended_one_says_why() -> None:
    working = task_view(_row("running"), poll_interval=500).as_task()
    assert working == {
        "taskId": "0190-task",
        "status": "working",
        "createdAt": "2026-01-02T03:04:05Z",
        "lastUpdatedAt": "2026-01-02T03:04:08Z",
        "ttl": 60_000,
        "statusMessage": "batch 2/8",
        "pollInterval": 500,
    }
    view = task_view(_row("running"), poll_interval=500)
    ended = view.ended(
        status="cancelled",
        error="cancelled: access revoked: token revoked",
        at=datetime(2026, 1, 2, 3, 5, tzinfo=UTC),
    )
    assert ended.is_terminal and not view.is_terminal
    assert (
        ended.as_task()["statusMessage"]
        == "The task was cancelled (access revoked: token revoked)."
    )
    assert "pollInterval" not in ended.as_task()
    assert ended.as_task()["lastUpdatedAt"] == "2026-01-02T03:05:00Z"


OPERATION = UUID(int=1)


def _finished(status: str, result: Any = None, error: str = "") -> OperationFinished:
    return OperationFinished(id=OPERATION, status=status, result=result, error=error, progress=1)


def test_a_result_is_the_answer_and_tasks_result_names_its_task() -> None:
    result = {"content": [{"type": "text", "text": "hi"}]}
    assert call_outcome(_finished("succeeded", result)) == result
    named = task_outcome("op-1", _finished("succeeded", result))
    assert named["_meta"] == {RELATED_TASK: {"taskId": "op-1"}}


@pytest.mark.parametrize(
    ("status", "error", "text", "task"),
    [
        ("cancelled", "cancelled", "The operation was cancelled: cancelled", "cancelled"),
        (
            "interrupted",
            "interrupted: the server shut down",
            "The operation was interrupted: interrupted: the server shut down",
            "failed",
        ),
        ("failed", "ValueError: boom", "The operation failed: ValueError: boom", "failed"),
        ("failed", "", "The operation failed: failed", "failed"),
    ],
)
def test_an_outcome_without_a_result_is_an_error(
    status: str, error: str, text: str, task: str
) -> None:
    with pytest.raises(JsonRpcError) as raised:
        call_outcome(_finished(status, error=error))
    assert (raised.value.code, raised.value.message) == (INTERNAL_ERROR, text)
    assert raised.value.data == {"status": status, "operationId": str(OPERATION)}
    with pytest.raises(JsonRpcError) as raised:
        task_outcome("op-1", _finished(status, error=error))
    assert raised.value.data == {
        "status": status,
        "operationId": str(OPERATION),
        "taskId": "op-1",
        "taskStatus": task,
    }


def test_a_result_history_cut_short_is_not_returned() -> None:
    kept = history_value({"content": [{"type": "text", "text": "x" * 5000}]}, 100)
    with pytest.raises(JsonRpcError) as raised:
        call_outcome(_finished("succeeded", kept))
    assert raised.value.data is not None
    assert raised.value.data["reason"] == "result_not_kept"


# --- the tasks extension's vocabulary over the same statuses ------------------------------
@pytest.mark.parametrize(
    ("status", "produced_result", "task"),
    [
        ("queued", False, "working"),
        ("running", False, "working"),
        ("succeeded", True, "completed"),
        # The tool ran and reported an error (isError): completed, not failed.
        ("failed", True, "completed"),
        ("failed", False, "failed"),
        ("interrupted", False, "failed"),
        ("cancelled", False, "cancelled"),
    ],
)
def test_each_status_shows_as_an_extension_status(
    status: str, produced_result: bool, task: str
) -> None:
    assert extension_status(status, produced_result=produced_result) == task


def _ended_row(status: str, **fields: Any) -> Any:
    finished = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)
    return _row(status, finished_at=finished, progress=1.0, total=None, **fields)


def test_a_working_extension_task_has_the_extension_field_names() -> None:
    view = task_view(_row("running"), poll_interval=500)
    assert detailed_task(view, None) == {
        "taskId": "0190-task",
        "status": "working",
        "createdAt": "2026-01-02T03:04:05Z",
        "lastUpdatedAt": "2026-01-02T03:04:08Z",
        "ttlMs": 60_000,
        "statusMessage": "batch 2/8",
        "pollIntervalMs": 500,
    }


def test_a_completed_task_inlines_its_result_without_naming_the_task_again() -> None:
    result = {"content": [{"type": "text", "text": "hi"}], "isError": False}
    row = _ended_row("succeeded", result=result, message="")
    task = detailed_task(task_view(row, poll_interval=500), OperationFinished.from_row(row))
    assert task["status"] == "completed"
    assert task["result"] == result
    assert "error" not in task and "pollIntervalMs" not in task
    assert task["lastUpdatedAt"] == "2026-01-02T03:04:09Z"


def test_a_tool_error_completes_with_its_result() -> None:
    result = {"content": [{"type": "text", "text": "no"}], "isError": True}
    row = _ended_row("failed", result=result, error="no")
    task = detailed_task(task_view(row, poll_interval=500), OperationFinished.from_row(row))
    assert (task["status"], task["result"]) == ("completed", result)
    assert "error" not in task


@pytest.mark.parametrize(
    ("status", "error"),
    [("failed", "JsonRpcError: boom"), ("interrupted", "interrupted: the server shut down")],
)
def test_an_end_without_a_result_fails_with_the_json_rpc_error(status: str, error: str) -> None:
    row = _ended_row(status, result=None, error=error)
    task = detailed_task(task_view(row, poll_interval=500), OperationFinished.from_row(row))
    assert task["status"] == "failed"
    assert task["error"]["code"] == INTERNAL_ERROR
    assert error in task["error"]["message"]
    assert "result" not in task


def test_a_cancelled_task_carries_neither_result_nor_error() -> None:
    row = _ended_row("cancelled", result=None, error="cancelled")
    task = detailed_task(task_view(row, poll_interval=500), OperationFinished.from_row(row))
    assert task["status"] == "cancelled"
    assert "result" not in task and "error" not in task


def test_a_result_history_cut_short_fails_the_task_saying_so() -> None:
    kept = history_value({"content": [{"type": "text", "text": "x" * 5000}]}, 100)
    row = _ended_row("succeeded", result=kept)
    task = detailed_task(task_view(row, poll_interval=500), OperationFinished.from_row(row))
    assert task["status"] == "failed"
    assert task["error"]["data"]["reason"] == "result_not_kept"
