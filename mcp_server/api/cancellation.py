"""Cancelling an operation from an HTTP request (API or admin), wherever it runs."""

import enum

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from mcp_server.cluster import messages
from mcp_server.models import Operation
from mcp_server.runtime.runner import operation_runner
from mcp_server.services import operation_request_cancel


class CancelOutcome(enum.Enum):
    """What a cancel request achieved."""

    CANCELLING = "cancelling"
    ALREADY_FINISHED = "already_finished"


CANCEL_MESSAGES = {
    CancelOutcome.CANCELLING: "Cancellation requested; the run stops within moments.",
    CancelOutcome.ALREADY_FINISHED: "The run has already finished; there is nothing to cancel.",
}


async def _cancel_everywhere(operation_id: str) -> None:
    runner = operation_runner()
    if runner.cancel(Operation._meta.pk.to_python(operation_id)):
        return
    layer = get_channel_layer()
    if layer is not None:
        message = {"type": messages.OPERATION_CANCEL, "id": operation_id, "reason": None}
        await layer.group_send(messages.RUNNERS_GROUP, message)


def operation_cancel(*, operation: Operation) -> CancelOutcome:
    """Cancel a queued or running operation in whichever process runs it.

    The request is recorded in history first (a task turns `cancelled` at once), so the
    process running it acts on it at its next heartbeat even if the message is lost. A sync
    view runs on a worker thread while the runner's tasks belong to the server's event loop:
    the local cancel hops there with async_to_sync.
    """
    if operation.is_terminal:
        return CancelOutcome.ALREADY_FINISHED
    if not operation_request_cancel(operation_id=operation.pk, as_task=operation.is_task):
        return CancelOutcome.ALREADY_FINISHED
    async_to_sync(_cancel_everywhere)(str(operation.pk))
    return CancelOutcome.CANCELLING
