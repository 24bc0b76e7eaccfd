"""Writes to operation history; the runtime's history writer and the API call these."""

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from mcp_server.history_insert import RowInserter
from mcp_server.models import Operation, OperationError, OperationStatus

# Fields of an operation that change after it was created.
MUTABLE_FIELDS = (
    "status",
    "progress",
    "total",
    "message",
    "started_at",
    "finished_at",
    "duration",
    "result_summary",
    "error",
    "error_count",
)


def _operation_inserter() -> RowInserter:
    # One per connection object (a thread's connection may be replaced after an error).
    inserter = getattr(connection, "_mcp_operation_inserter", None)
    if inserter is None:
        inserter = RowInserter(Operation, connection)
        connection._mcp_operation_inserter = inserter  # type: ignore[attr-defined]
    return inserter


@transaction.atomic
def operations_persist(
    *,
    created: Iterable[dict[str, Any]],
    updated: Iterable[dict[str, Any]],
    errors: Iterable[dict[str, Any]],
) -> None:
    """Write one batch of history: new operations, changed ones, then item errors."""
    new_rows = list(created)
    if new_rows:
        _operation_inserter().insert(new_rows)
    for snapshot in updated:
        fields = {name: snapshot[name] for name in MUTABLE_FIELDS if name in snapshot}
        Operation.objects.filter(pk=snapshot["id"]).update(**fields)
    error_rows = [OperationError(**row) for row in errors]
    if error_rows:
        OperationError.objects.bulk_create(error_rows, batch_size=1000)


def operation_mark_interrupted(*, operation_id: UUID, error: str) -> int:
    """Mark a non-terminal operation interrupted (its process went away); returns rows changed."""
    now = timezone.now()
    return Operation.objects.filter(
        pk=operation_id, status__in=[OperationStatus.QUEUED, OperationStatus.RUNNING]
    ).update(
        status=OperationStatus.INTERRUPTED,
        finished_at=now,
        duration=now - F("queued_at"),
        error=error,
    )
