"""Channel-layer names and message types that cross processes.

Channel layers deliver at most once and drop messages when full: nothing here is the only
record of something that must arrive. Results and terminal statuses are persisted first;
these messages are the fast path, and the receivers recover from the database when one is lost.
"""

import dataclasses
from typing import TYPE_CHECKING, Any

from config import log_context

if TYPE_CHECKING:
    from mcp_server.models import Operation
    from mcp_server.runtime.runner import CallRequest, OperationRunner

# The work queue of worker processes: every `operation.start` goes here, one worker takes it.
OPERATIONS_CHANNEL = "mcp-operations"
# Every process that runs operations (web processes inline, workers): cancel and attach go here.
RUNNERS_GROUP = "mcp-runners"
# Every web process (one membership per process, not per connection): broadcasts go here.
WEB_GROUP = "mcp-web"

# To a worker, through OPERATIONS_CHANNEL.
OPERATION_START = "operation.start"
# To RUNNERS_GROUP.
OPERATION_CANCEL = "operation.cancel"
OPERATION_ATTACH = "operation.attach"
OPERATION_DETACH = "operation.detach"
# To a connection's consumer channel (a listener of an operation).
OPERATION_PROGRESS = "operation.progress"
OPERATION_LOG = "operation.log"
OPERATION_FINISHED = "operation.finished"
# To WEB_GROUP.
BROADCAST = "mcp.broadcast"
# To RUNNERS_GROUP, whose members are every web process (it closes its connections) and every
# worker (it stops the work it runs): access taken away, and a tenant's new tool set.
ACCESS_REVOKED = "access.revoked"
TOOLS_CHANGED = "access.tools_changed"
ACCESS_MESSAGES = frozenset({ACCESS_REVOKED, TOOLS_CHANGED})

Message = dict[str, Any]


def broadcast_message(
    *, level: str, data: Any, tenant_id: int | None = None, user_id: int | None = None
) -> Message:
    """A `notifications/message` for every matching connected client of every web process."""
    return {
        "type": BROADCAST,
        "level": level,
        "data": data,
        "tenant_id": tenant_id,
        "user_id": user_id,
    }


def access_revoked_message(*, kind: str, ids: list[int], status: int, reason: str) -> Message:
    """Access ended for these tokens, users or tenants (`kind`); `status` and `reason` are what
    a handshake would be refused with now."""
    return {"type": ACCESS_REVOKED, "kind": kind, "ids": ids, "status": status, "reason": reason}


def tools_changed_message(*, tenant_id: int, enabled_tools: list[str] | None) -> Message:
    """A tenant's tool set is now `enabled_tools` (None: every tool)."""
    return {"type": TOOLS_CHANGED, "tenant_id": tenant_id, "enabled_tools": enabled_tools}


def queued_snapshot(request: "CallRequest", runner: "OperationRunner") -> dict[str, Any]:
    """The history row of a call that is about to be started or handed to a worker."""
    return runner.operation_for(request).snapshot()


def start_message(request: "CallRequest", listener: str) -> Message:
    """The `operation.start` that hands a call to a worker."""
    principal = dataclasses.asdict(request.principal)
    if request.principal.enabled_tools is not None:
        principal["enabled_tools"] = sorted(request.principal.enabled_tools)
    return {
        "type": OPERATION_START,
        "id": str(request.operation_id),
        "principal": principal,
        "tool": request.tool.name,
        "arguments": request.arguments,
        "connection_id": request.connection_id,
        "request_id": request.request_id,
        "progress_token": request.progress_token,
        "queued_at": request.queued_at.isoformat() if request.queued_at else None,
        "is_task": request.is_task,
        "task_ttl": request.task_ttl,
        "listener": listener,
        "traceparent": log_context.current().traceparent,
    }


def finished_message(operation: "Operation") -> Message:
    """The `operation.finished` event for an operation that history shows ended."""
    return {
        "type": OPERATION_FINISHED,
        "id": str(operation.pk),
        "status": operation.status,
        "result": operation.result,
        "error": operation.error,
        "progress": operation.progress,
        "total": operation.total,
        "finished_at": operation.finished_at.isoformat() if operation.finished_at else None,
    }
