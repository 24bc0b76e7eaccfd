"""The life of an operation, in one place; pure (no database, no I/O).

Statuses and their legal transitions (a terminal status is final), why work stops
(`StopReason`, and the history text each reason leaves), how a status shows as an MCP task
status, and how an outcome becomes a JSON-RPC result or error.
"""

import asyncio
import dataclasses
import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from django.db import models

from mcp_server.history_values import truncated_bytes
from mcp_server.protocol import tasks
from mcp_server.protocol.errors import INTERNAL_ERROR, JsonRpcError

if TYPE_CHECKING:
    from mcp_server.models import Operation


class OperationStatus(models.TextChoices):
    """Where an operation is in its life; the last five are terminal."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"
    # A 2026-07-28 call that ended by asking the client for input (an input-required result):
    # it neither succeeded nor failed; the client's retry is a call of its own.
    INPUT_REQUIRED = "input_required", "Input required"


TERMINAL_STATUSES = frozenset(
    {
        OperationStatus.SUCCEEDED,
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.INTERRUPTED,
        OperationStatus.INPUT_REQUIRED,
    }
)
# The statuses of an operation that has not ended, in a fixed order: a query of active rows
# repeats the condition of the partial index over them term for term (`models.ACTIVE_ROWS`),
# which SQLite needs to use that index, and a frozenset's order varies between processes.
ACTIVE_STATUS_ORDER = (OperationStatus.QUEUED, OperationStatus.RUNNING)
ACTIVE_STATUSES = frozenset(ACTIVE_STATUS_ORDER)
# Every status an operation may move to from each status. A queued call may end without
# running (cancelled, refused, reaped); nothing leaves a terminal status.
TRANSITIONS: dict[OperationStatus, frozenset[OperationStatus]] = {
    OperationStatus.QUEUED: frozenset({OperationStatus.RUNNING}) | TERMINAL_STATUSES,
    OperationStatus.RUNNING: TERMINAL_STATUSES,
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


class IllegalTransition(Exception):
    """An operation was told to move to a status it cannot reach from where it is."""


def is_terminal(status: str) -> bool:
    """Whether `status` is an end (nothing changes an operation after it)."""
    return status in TERMINAL_STATUSES


# Every legal move as (current, new) -> new as a status: one look-up for each move a call
# makes (a status is a str, so a plain string finds its move too), not three enum calls.
_MOVES: dict[tuple[str, str], OperationStatus] = {
    (current, new): new for current, targets in TRANSITIONS.items() for new in targets
}


def can_move(current: str, new: str) -> bool:
    """Whether an operation in status `current` may move to `new` (ValueError when either is
    no status)."""
    if (current, new) in _MOVES:
        return True
    OperationStatus(current), OperationStatus(new)
    return False


def check_move(current: str, new: str) -> OperationStatus:
    """`new` as a status, or IllegalTransition when `current` cannot move to it."""
    moved = _MOVES.get((current, new))
    if moved is None:
        if not can_move(current, new):
            raise IllegalTransition(f"an operation cannot move from {current} to {new}")
        moved = OperationStatus(new)  # (unreachable: every legal move is in the table)
    return moved


# --- why work stops ----------------------------------------------------------------------
class StopReason(enum.Enum):
    """Why an operation stopped before it ended by itself."""

    # The client cancelled the request (notifications/cancelled), or nobody said why.
    CLIENT_CANCEL = "client_cancel"
    # The connection that waited for the call closed.
    DISCONNECT = "disconnect"
    # A cancel recorded in history: tasks/cancel, the API, the admin.
    CANCEL_REQUESTED = "cancel_requested"
    # The caller's token, account or tenant lost access.
    ACCESS_REVOKED = "access_revoked"
    # The process running it is shutting down.
    SHUTDOWN = "shutdown"
    # Its process stopped heartbeating and the reaper gave it up.
    LOST_RUNNER = "lost_runner"
    # No worker took a handed-over call before its hand-off expired.
    UNCLAIMED = "unclaimed"
    # The call could not be handed to a worker at all.
    HAND_OFF_FAILED = "hand_off_failed"
    # A worker took the call but could not start it (e.g. an unknown tool).
    NOT_STARTED = "not_started"


_INTERRUPTING = frozenset(
    {
        StopReason.SHUTDOWN,
        StopReason.LOST_RUNNER,
        StopReason.UNCLAIMED,
        StopReason.HAND_OFF_FAILED,
        StopReason.NOT_STARTED,
    }
)
# What history says after the status word ("interrupted: <why>"); None: the bare word.
_WHY: dict[StopReason, str | None] = {
    StopReason.CLIENT_CANCEL: None,
    StopReason.DISCONNECT: None,
    StopReason.CANCEL_REQUESTED: None,
    StopReason.ACCESS_REVOKED: "access revoked",
    StopReason.SHUTDOWN: "the server shut down",
    StopReason.LOST_RUNNER: "its process stopped responding",
    StopReason.UNCLAIMED: "no process took it in time",
    StopReason.HAND_OFF_FAILED: "could not hand the call to a worker",
    StopReason.NOT_STARTED: "the worker could not start it",
}


@dataclass(frozen=True, slots=True)
class Stop:
    """Why one operation stops (`reason`), with what it adds (`detail`, e.g. "token revoked").

    It travels as the message of the CancelledError that stops the work (`task.cancel(stop)`),
    and across processes as the `reason` and `detail` of an `operation.cancel` message.
    """

    reason: StopReason
    detail: str = ""

    @classmethod
    def access_revoked(cls, why: str) -> "Stop":
        """The caller lost access (`why`: e.g. "token revoked")."""
        return cls(StopReason.ACCESS_REVOKED, why)

    @property
    def status(self) -> OperationStatus:
        """The terminal status of work stopped for this reason."""
        if self.reason in _INTERRUPTING:
            return OperationStatus.INTERRUPTED
        return OperationStatus.CANCELLED

    @property
    def error(self) -> str:
        """What history records as the reason (e.g. "cancelled: access revoked: token revoked")."""
        why = _WHY[self.reason]
        if self.detail:
            # A worker's refusal names its exception in parentheses, as it always has.
            joined = f"{why} ({self.detail})" if self.reason is StopReason.NOT_STARTED else None
            why = joined or (f"{why}: {self.detail}" if why else self.detail)
        return f"{self.status}: {why}" if why else str(self.status)

    def encode(self) -> dict[str, str]:
        """The fields of a cross-process message that carry this stop."""
        return {"reason": self.reason.value, "detail": self.detail}

    @classmethod
    def decode(cls, fields: dict[str, Any]) -> "Stop | None":
        """The stop a cross-process message carries, or None when it names none."""
        try:
            reason = StopReason(fields.get("reason"))
        except ValueError:
            return None
        detail = fields.get("detail")
        return cls(reason, detail if isinstance(detail, str) else "")


def stop_of(exc: asyncio.CancelledError) -> Stop:
    """Why the work that raised `exc` stopped: the Stop it was cancelled with, else a plain
    cancel (a client's, or one that gave no reason)."""
    given = exc.args[0] if exc.args else None
    return given if isinstance(given, Stop) else Stop(StopReason.CLIENT_CANCEL)


# --- as MCP tasks see it ------------------------------------------------------------------
# Operation statuses as task statuses; interrupted work has failed.
_TASK_STATUS = {
    OperationStatus.QUEUED: tasks.WORKING,
    OperationStatus.RUNNING: tasks.WORKING,
    OperationStatus.SUCCEEDED: tasks.COMPLETED,
    OperationStatus.FAILED: tasks.FAILED,
    OperationStatus.CANCELLED: tasks.CANCELLED,
    OperationStatus.INTERRUPTED: tasks.FAILED,
    # A plain 2026-07-28 call that ended by asking, never a task's (a task waiting for answers
    # is running with `input_requests`, input_required by TaskView.status, not terminal);
    # shown as the task status of that name should it ever be asked.
    OperationStatus.INPUT_REQUIRED: tasks.INPUT_REQUIRED,
}


def task_status(operation_status: str) -> str:
    """The task status that shows an operation status."""
    return _TASK_STATUS[OperationStatus(operation_status)]


def extension_status(operation_status: str, *, produced_result: bool) -> str:
    """The tasks extension's status for an operation status: the same as `task_status`,
    except that a failed run that produced a result (its tool reported the error, isError)
    completed; `failed` is for JSON-RPC errors only."""
    status = task_status(operation_status)
    if status == tasks.FAILED and produced_result:
        return tasks.COMPLETED
    return status


def status_message(operation_status: str, *, error: str, message: str) -> str:
    """What a task says about itself: progress while it works, why when it failed."""
    status = task_status(operation_status)
    if status == tasks.WORKING:
        return message
    if status == tasks.FAILED:
        return error
    if status == tasks.CANCELLED:
        # A reason beyond the bare word (e.g. "cancelled: access revoked: token revoked").
        prefix = f"{OperationStatus.CANCELLED}: "
        why = error.removeprefix(prefix) if error.startswith(prefix) else ""
        return f"The task was cancelled ({why})." if why else "The task was cancelled."
    return ""


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TaskView:
    """What a Task object says about one durable operation."""

    task_id: str
    operation_status: str
    created_at: datetime
    last_updated_at: datetime
    ttl: int | None
    poll_interval: int
    status_message: str = ""
    # What a running task waits for its client to answer (the tasks extension), by key.
    input_requests: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """The task status (input_required while a running task waits for answers)."""
        status = task_status(self.operation_status)
        if status == tasks.WORKING and self.input_requests:
            return tasks.INPUT_REQUIRED
        return status

    @property
    def is_terminal(self) -> bool:
        """Whether the task has ended."""
        return is_terminal(self.operation_status)

    def ended(self, *, status: str, error: str, at: datetime) -> "TaskView":
        """The same task, ended with `status` (and `error`) at `at`."""
        return dataclasses.replace(
            self,
            operation_status=status,
            last_updated_at=at,
            status_message=status_message(status, error=error, message=""),
            input_requests=None,
        )

    def as_task(self) -> dict[str, Any]:
        """The MCP Task object."""
        task: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": _timestamp(self.created_at),
            "lastUpdatedAt": _timestamp(self.last_updated_at),
            "ttl": self.ttl,
        }
        if self.status_message:
            task["statusMessage"] = self.status_message
        if not self.is_terminal:
            task["pollInterval"] = self.poll_interval
        return task

    def as_extension_task(self) -> dict[str, Any]:
        """The tasks extension's Task object (2026-07-28): the same facts, its field names."""
        task: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": _timestamp(self.created_at),
            "lastUpdatedAt": _timestamp(self.last_updated_at),
            "ttlMs": self.ttl,
        }
        if self.status_message:
            task["statusMessage"] = self.status_message
        if not self.is_terminal:
            task["pollIntervalMs"] = self.poll_interval
        return task


def task_view(operation: "Operation", poll_interval: int) -> TaskView:
    """The task an operation row is."""
    moments = [operation.queued_at, operation.started_at, operation.finished_at]
    moments.append(operation.heartbeat_at)
    return TaskView(
        task_id=str(operation.pk),
        operation_status=operation.status,
        created_at=operation.queued_at,
        last_updated_at=max(m for m in moments if m is not None),
        ttl=operation.task_ttl,
        poll_interval=poll_interval,
        status_message=status_message(
            operation.status, error=operation.error, message=operation.message
        ),
        input_requests=operation.input_requests,
    )


# --- outcomes as JSON-RPC ------------------------------------------------------------------
_OUTCOME_ERRORS: dict[str, str] = {
    OperationStatus.CANCELLED: "The operation was cancelled",
    OperationStatus.INTERRUPTED: "The operation was interrupted",
}


class Ended(Protocol):
    """How an operation ended, as its `operation.finished` event carries it."""

    @property
    def id(self) -> UUID:
        """The operation."""

    @property
    def status(self) -> str:
        """Its terminal status."""

    @property
    def result(self) -> dict[str, Any] | None:
        """Its CallToolResult, if it produced one (maybe as history truncated it)."""

    @property
    def error(self) -> str:
        """Why it failed or stopped."""


def call_outcome(ended: Ended) -> dict[str, Any]:
    """What a `tools/call` answers for an operation's outcome: its result, or an error.

    A result read back from history that was larger than history keeps is not returned cut
    short: the error says so, with its size.
    """
    result, status, operation_id = ended.result, str(ended.status), str(ended.id)
    size = truncated_bytes(result)
    if size is not None:
        raise JsonRpcError(
            INTERNAL_ERROR,
            f"The operation ended ({status}), but its result ({size} bytes) was "
            "larger than the server keeps in history (MCP_HISTORY_MAX_RESULT_BYTES) and "
            "cannot be returned",
            {
                "status": status,
                "operationId": operation_id,
                "reason": "result_not_kept",
                "resultBytes": size,
            },
        )
    if isinstance(result, dict):
        return result
    text = _OUTCOME_ERRORS.get(status, "The operation failed")
    detail = ended.error or status
    raise JsonRpcError(
        INTERNAL_ERROR, f"{text}: {detail}", {"status": status, "operationId": operation_id}
    )


def detailed_task(view: TaskView, ended: Ended | None) -> dict[str, Any]:
    """The tasks extension's DetailedTask (tasks/get, notifications/tasks): the Task, with
    the questions it waits for its client to answer (`inputRequests`) while input_required,
    the call's result inlined once it completed, or the JSON-RPC error it failed with.

    `ended` is the outcome of a task that has ended (None while it runs). What the result
    inlines is exactly what the call would have answered (`call_outcome`), without the
    2025-11-25 `related-task` note: the task's id is already at the root.
    """
    task = view.as_extension_task()
    if ended is None or not view.is_terminal:
        if view.status == tasks.INPUT_REQUIRED:
            task["inputRequests"] = dict(view.input_requests or {})
        return task
    status = extension_status(view.operation_status, produced_result=isinstance(ended.result, dict))
    if status == tasks.CANCELLED:
        return task
    try:
        task["result"] = call_outcome(ended)
    except JsonRpcError as exc:
        # No result (an interrupted run, a JSON-RPC error), or one history did not keep.
        task["status"] = tasks.FAILED
        task["error"] = exc.to_error()
    else:
        task["status"] = tasks.COMPLETED
    return task


def task_outcome(task_id: str, ended: Ended) -> dict[str, Any]:
    """What tasks/result answers: exactly what the call would have, naming the task."""
    try:
        return tasks.with_related_task(call_outcome(ended), task_id)
    except JsonRpcError as exc:
        # `status` is the history's word (interrupted is finer than failed); `taskStatus` the
        # task's, as tasks/get says it.
        data = {**(exc.data or {}), "taskId": task_id}
        data["taskStatus"] = task_status(str(data.get("status", OperationStatus.FAILED)))
        raise JsonRpcError(exc.code, exc.message, data) from None
