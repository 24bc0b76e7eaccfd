"""Cancelling an operation from an HTTP request (API or admin), wherever it runs."""

import enum
from uuid import UUID

from asgiref.sync import async_to_sync, sync_to_async

from mcp_server.models import Operation
from mcp_server.operations.store import operation_request_cancel


class CancelOutcome(enum.Enum):
    """What a cancel request achieved."""

    CANCELLING = "cancelling"
    ALREADY_FINISHED = "already_finished"


CANCEL_MESSAGES = {
    CancelOutcome.CANCELLING: "Cancellation requested; the run stops within moments.",
    CancelOutcome.ALREADY_FINISHED: "The run has already finished; there is nothing to cancel.",
}


async def _request_cancel(operation_id: UUID, as_task: bool) -> bool:
    # Thread-sensitive: the record runs back on the request's thread, with its connection.
    # Here, not at the top: the admin imports this module in every process that sets Django
    # up, and the runtime's modules (the bus, metrics, listens…) are most of a start-up.
    from mcp_server.process_runtime import current_runtime

    record = sync_to_async(operation_request_cancel, thread_sensitive=True)
    bus = current_runtime().bus
    return await bus.request_cancel(operation_id, as_task=as_task, record=record)


def operation_cancel(*, operation: Operation) -> CancelOutcome:
    """Cancel a queued or running operation in whichever process runs it.

    The request is recorded in history first, on this request's own database connection (a
    task turns `cancelled` at once), so the process running it acts on it at its next
    heartbeat even if the message is lost. A sync view runs on a worker thread while the
    runner's tasks belong to the server's event loop: the cancel hops there with async_to_sync.
    Django calls this without our arguments, so the process's runtime is the one it installed
    at start-up (`current_runtime()`).
    """
    if operation.is_terminal:
        return CancelOutcome.ALREADY_FINISHED
    if not async_to_sync(_request_cancel)(operation.pk, operation.is_task):
        return CancelOutcome.ALREADY_FINISHED
    return CancelOutcome.CANCELLING
