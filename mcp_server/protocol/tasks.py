"""MCP tasks (2025-11-25): request parameters and status names; pure.

How an operation shows as a task (its status, the Task object) is the operation lifecycle's
(`mcp_server.operations.lifecycle`).
"""

from typing import Any

from mcp_server.protocol.errors import invalid_params

RELATED_TASK = "io.modelcontextprotocol/related-task"

WORKING = "working"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
INPUT_REQUIRED = "input_required"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})


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


def with_related_task(result: dict[str, Any], task_id: str) -> dict[str, Any]:
    """`result` with `_meta` naming the task it belongs to (tasks/result)."""
    meta = dict(result.get("_meta") or {})
    meta[RELATED_TASK] = {"taskId": task_id}
    return {**result, "_meta": meta}
