"""What a client is answered for an operation that ended: its result, or a JSON-RPC error."""

from typing import Any

from mcp_server.cluster.messages import OperationFinished
from mcp_server.history_values import truncated_bytes
from mcp_server.protocol.errors import INTERNAL_ERROR, JsonRpcError
from mcp_server.protocol.tasks import task_status, with_related_task

_OUTCOME_ERRORS = {
    "cancelled": "The operation was cancelled",
    "interrupted": "The operation was interrupted",
}


def call_outcome(finished: OperationFinished) -> dict[str, Any]:
    """What a `tools/call` answers for an operation's outcome: its result, or an error.

    A result read back from history that was larger than history keeps is not returned cut
    short: the error says so, with its size.
    """
    result = finished.result
    operation_id = str(finished.id)
    size = truncated_bytes(result)
    if size is not None:
        raise JsonRpcError(
            INTERNAL_ERROR,
            f"The operation ended ({finished.status}), but its result ({size} bytes) was "
            "larger than the server keeps in history (MCP_HISTORY_MAX_RESULT_BYTES) and "
            "cannot be returned",
            {
                "status": finished.status,
                "operationId": operation_id,
                "reason": "result_not_kept",
                "resultBytes": size,
            },
        )
    if isinstance(result, dict):
        return result
    text = _OUTCOME_ERRORS.get(finished.status, "The operation failed")
    detail = finished.error or finished.status
    raise JsonRpcError(
        INTERNAL_ERROR,
        f"{text}: {detail}",
        {"status": finished.status, "operationId": operation_id},
    )


def task_outcome(task_id: str, finished: OperationFinished) -> dict[str, Any]:
    """What tasks/result answers: exactly what the call would have, naming the task."""
    try:
        return with_related_task(call_outcome(finished), task_id)
    except JsonRpcError as exc:
        # `status` is the history's word (interrupted is finer than failed); `taskStatus` the
        # task's, as tasks/get says it.
        data = {**(exc.data or {}), "taskId": task_id}
        data["taskStatus"] = task_status(str(data.get("status", "failed")))
        raise JsonRpcError(exc.code, exc.message, data) from None
