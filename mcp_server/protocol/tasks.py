"""MCP tasks in both vocabularies: 2025-11-25 (`params.task`, tasks/get|result|list|cancel)
and the 2026-07-28 tasks extension (`io.modelcontextprotocol/tasks`: the server decides,
tasks/get|update|cancel); request parameters, status names and the extension's negotiation;
pure.

How an operation shows as a task (its status, the Task object in either vocabulary) is the
operation lifecycle's (`mcp_server.operations.lifecycle`).
"""

from typing import Any

from mcp_server.protocol.errors import JsonRpcError, invalid_params, missing_capability

RELATED_TASK = "io.modelcontextprotocol/related-task"
# The tasks extension, as a request's client capabilities and server/discover name it.
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"

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


def declares_extension(client_capabilities: dict[str, Any]) -> bool:
    """Whether a 2026-07-28 request's client capabilities declare the tasks extension."""
    extensions = client_capabilities.get("extensions")
    return isinstance(extensions, dict) and isinstance(extensions.get(TASKS_EXTENSION), dict)


def extension_required() -> JsonRpcError:
    """The -32021 error of a request that needs the tasks extension it did not declare."""
    return missing_capability({"extensions": {TASKS_EXTENSION: {}}})


def becomes_task(
    *, task_support: str, takes_long: bool, client_capabilities: dict[str, Any]
) -> bool:
    """Whether the server makes a 2026-07-28 `tools/call` a task: only for a request that
    declares the extension, of a tool that supports tasks and takes long (or runs only as
    one); -32021 for a tool that runs only as a task when the request does not declare it."""
    if not declares_extension(client_capabilities):
        if task_support == "required":
            raise extension_required()
        return False
    return task_support == "required" or (task_support == "optional" and takes_long)
