"""Channel-layer names and message types that cross processes.

Channel layers deliver at most once and drop messages when full: nothing here is the only
record of something that must arrive. Results and terminal statuses are persisted first;
these messages are the fast path, and the receivers recover from the database when one is lost.
"""

from typing import Any

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
