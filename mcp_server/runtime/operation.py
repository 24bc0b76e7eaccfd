"""The in-memory state of one running operation, and its snapshots for history."""

import time
from datetime import datetime
from typing import Any

from django.utils import timezone
from uuid_utils.compat import uuid7

from accounts.principal import Principal
from mcp_server.models import OperationStatus
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.progress import ProgressMeter, describe

_MESSAGE_LIMIT = 500
_ITEM_LIMIT = 1000


class RunningOperation:
    """Status, progress and item errors of one call, persisted through the history writer."""

    __slots__ = (
        "_last_persist",
        "_persist_interval",
        "_writer",
        "arguments",
        "cancel_requested",
        "connection_id",
        "done",
        "error",
        "error_count",
        "finished_at",
        "id",
        "message",
        "meter",
        "principal",
        "queued_at",
        "request_id",
        "result_summary",
        "started_at",
        "status",
        "tool_name",
        "total",
    )

    def __init__(
        self,
        *,
        principal: Principal,
        tool_name: str,
        arguments: dict[str, Any],
        connection_id: str,
        request_id: str | int,
        writer: HistoryWriter,
        persist_interval: float,
    ) -> None:
        self.id = uuid7()
        self.principal = principal
        self.tool_name = tool_name
        self.arguments = arguments
        self.connection_id = connection_id
        self.request_id = request_id
        self.status = OperationStatus.QUEUED
        self.done: float = 0
        self.total: float | None = None
        self.message = ""
        self.queued_at: datetime = timezone.now()
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.result_summary: Any = None
        self.error = ""
        self.error_count = 0
        self.cancel_requested = False
        self.meter = ProgressMeter()
        self._writer = writer
        self._persist_interval = persist_interval
        # Not persisted yet: a call that gets its slot at once is first written as running.
        self._last_persist = time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        """The operation's history row as field values."""
        end = self.finished_at
        return {
            "id": self.id,
            "tenant_id": self.principal.tenant_id,
            "user_id": self.principal.user_id,
            "tool": self.tool_name,
            "arguments": self.arguments,
            "status": self.status,
            "progress": self.done,
            "total": self.total,
            "message": self.message[:_MESSAGE_LIMIT],
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "finished_at": end,
            "duration": end - self.queued_at if end else None,
            "result_summary": self.result_summary,
            "error": self.error,
            "error_count": self.error_count,
            "connection_id": self.connection_id,
            "request_id": str(self.request_id)[:128],
        }

    def persist(self) -> None:
        """Hand the current state to the history writer."""
        self._last_persist = time.monotonic()
        self._writer.record(self.snapshot())

    def queued_at_position(self, position: int) -> None:
        """Note (and persist) the call's place in the queue."""
        self.message = f"queued, position {position}"
        self.persist()

    def mark_running(self) -> None:
        """The call got its slot and starts now."""
        self.status = OperationStatus.RUNNING
        self.started_at = timezone.now()
        self.message = ""
        self.persist()

    def report(self, done: float, total: float | None, message: str | None) -> None:
        """Record progress; persisted at most once per persist interval."""
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self._last_persist >= self._persist_interval:
            self.meter.sample(now, done)
            self.message = describe(message, self.meter.rate(), self.meter.eta(done, self.total))
            self.persist()
        elif message:
            self.message = message

    def add_item_error(self, item: str, message: str) -> None:
        """Log one failed item; the run goes on."""
        self.error_count += 1
        self._writer.record_errors(
            [
                {
                    "operation_id": self.id,
                    "item": str(item)[:_ITEM_LIMIT],
                    "message": str(message),
                    "created_at": timezone.now(),
                }
            ]
        )

    def finish(self, status: OperationStatus, *, summary: Any = None, error: str = "") -> None:
        """Record how the operation ended."""
        self.status = status
        self.finished_at = timezone.now()
        self.result_summary = summary
        self.error = error
        self.persist()
