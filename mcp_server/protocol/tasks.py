"""MCP tasks (2025-11-25): request parameters, the Task object and status names; pure."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mcp_server.protocol.errors import invalid_params

RELATED_TASK = "io.modelcontextprotocol/related-task"

WORKING = "working"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

# Operation statuses (history) as task statuses; interrupted work has failed.
_STATUS_OF_OPERATION = {
    "queued": WORKING,
    "running": WORKING,
    "succeeded": COMPLETED,
    "failed": FAILED,
    "cancelled": CANCELLED,
    "interrupted": FAILED,
}


def task_status(operation_status: str) -> str:
    """The task status that shows an operation status."""
    return _STATUS_OF_OPERATION[operation_status]


def status_message(operation_status: str, *, error: str, message: str) -> str:
    """What a task says about itself: progress while it works, why when it failed."""
    status = task_status(operation_status)
    if status == WORKING:
        return message
    if status == FAILED:
        return error
    if status == CANCELLED:
        # A reason beyond the bare word (e.g. "cancelled: access revoked: token revoked").
        why = error.removeprefix("cancelled: ") if error.startswith("cancelled: ") else ""
        return f"The task was cancelled ({why})." if why else "The task was cancelled."
    return ""


def requested_ttl(params: dict[str, Any], *, default: int, maximum: int) -> int | None:
    """The ttl (ms) granted for `params.task`, or None when the request is not a task."""
    task = params.get("task")
    if task is None:
        return None
    if not isinstance(task, dict):
        raise invalid_params("task must be an object")
    ttl = task.get("ttl")
    if ttl is None:
        return default
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise invalid_params("task.ttl must be a positive number of milliseconds")
    return min(int(ttl), maximum)


def task_id_param(params: dict[str, Any]) -> str:
    """The `taskId` of a tasks/* request."""
    task_id = params.get("taskId")
    if not isinstance(task_id, str) or not task_id:
        raise invalid_params("taskId must be a non-empty string")
    return task_id


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

    @property
    def status(self) -> str:
        """The task status."""
        return task_status(self.operation_status)

    @property
    def is_terminal(self) -> bool:
        """Whether the task has ended."""
        return self.status in TERMINAL

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


def with_related_task(result: dict[str, Any], task_id: str) -> dict[str, Any]:
    """`result` with `_meta` naming the task it belongs to (tasks/result)."""
    meta = dict(result.get("_meta") or {})
    meta[RELATED_TASK] = {"taskId": task_id}
    return {**result, "_meta": meta}
