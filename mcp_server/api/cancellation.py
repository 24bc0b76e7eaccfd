"""Cancelling an operation from an HTTP request (API or admin), wherever it runs."""

import enum
from uuid import UUID

from asgiref.sync import async_to_sync

from mcp_server.models import Operation
from mcp_server.process_runtime import current_runtime
from mcp_server.services import operation_request_cancel


class CancelOutcome(enum.Enum):
    """What a cancel request achieved."""

    CANCELLING = "cancelling"
    ALREADY_FINISHED = "already_finished"


CANCEL_MESSAGES = {
    CancelOutcome.CANCELLING: "Cancellation requested; the run stops within moments.",
    CancelOutcome.ALREADY_FINISHED: "The run has already finished; there is nothing to cancel.",
}


async def _cancel(operation_id: UUID) -> None:
    await current_runtime().bus.cancel(operation_id)


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
    if not operation_request_cancel(operation_id=operation.pk, as_task=operation.is_task):
        return CancelOutcome.ALREADY_FINISHED
    async_to_sync(_cancel)(operation.pk)
    return CancelOutcome.CANCELLING
