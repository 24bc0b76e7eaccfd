"""Cancelling an operation from an HTTP request (API or admin) through this process's runner."""

import asyncio
import enum
from uuid import UUID

from asgiref.sync import async_to_sync

from mcp_server.models import Operation
from mcp_server.runtime.runner import operation_runner


class CancelOutcome(enum.Enum):
    """What a cancel request achieved."""

    CANCELLING = "cancelling"
    ALREADY_FINISHED = "already_finished"
    NOT_IN_THIS_PROCESS = "not_in_this_process"


CANCEL_MESSAGES = {
    CancelOutcome.CANCELLING: "Cancellation requested; the run stops within moments.",
    CancelOutcome.ALREADY_FINISHED: "The run has already finished; there is nothing to cancel.",
    CancelOutcome.NOT_IN_THIS_PROCESS: (
        "The run is not running in the server process that received this request, so it "
        "cannot be cancelled from here yet; cancelling across processes arrives with the "
        "scale-out work. Cancel it from the client that started it."
    ),
}


async def _cancel_on_loop(operation_id: UUID) -> bool:
    return operation_runner().cancel(operation_id)


def runner_cancel(operation_id: UUID) -> bool:
    """Ask the runner to cancel, on the event loop that runs the operations (thread-safe).

    A sync view under ASGI runs on a worker thread, while the runner's tasks belong to the
    server's event loop: asyncio tasks may only be cancelled from their loop's thread, so the
    call hops there with async_to_sync.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return async_to_sync(_cancel_on_loop)(operation_id)
    return operation_runner().cancel(operation_id)


def operation_cancel(*, operation: Operation) -> CancelOutcome:
    """Cancel a queued or running operation if this process runs it."""
    if operation.is_terminal:
        return CancelOutcome.ALREADY_FINISHED
    if runner_cancel(operation.pk):
        return CancelOutcome.CANCELLING
    return CancelOutcome.NOT_IN_THIS_PROCESS
