"""The in-memory state of one running operation, and its snapshots for history."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7

from accounts.principal import Principal
from mcp_server import metrics
from mcp_server.operations.lifecycle import OperationStatus, check_move
from mcp_server.operations.store import OperationStore
from mcp_server.runtime.progress import ProgressMeter, describe

_MESSAGE_LIMIT = 500
# The time now, aware, in UTC: what django.utils.timezone.now gives with USE_TZ (always on here,
# config/settings.py) without reading the setting through the lazy settings object three
# times per call.
_now = partial(datetime.now, UTC)
_ITEM_LIMIT = 1000


class RunningOperation:
    """Status, progress and item errors of one call, persisted through the operation store."""

    __slots__ = (
        "_last_persist",
        "_persist_interval",
        "_queue_persisted",
        "_writer",
        "arguments",
        "cancel_requested",
        "connection_id",
        "done",
        "error",
        "error_count",
        "finished_at",
        "id",
        "input_requests",
        "is_task",
        "keep_result",
        "message",
        "meter",
        "on_finish",
        "principal",
        "progress_token",
        "queued_at",
        "request_id",
        "result",
        "result_summary",
        "runner",
        "started_at",
        "status",
        "task_ttl",
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
        writer: OperationStore,
        persist_interval: float,
        operation_id: UUID | None = None,
        is_task: bool = False,
        task_ttl: int | None = None,
        progress_token: str | int | None = None,
        keep_result: bool = False,
        on_finish: "Callable[[RunningOperation], None] | None" = None,
        runner: str = "",
        queued_at: datetime | None = None,
    ) -> None:
        # A given id names a row inserted before the call started (a task, a worker's call).
        self.id = operation_id or uuid7()
        self.is_task = is_task
        self.task_ttl = task_ttl
        self.progress_token = progress_token
        self.keep_result = keep_result
        self.on_finish = on_finish
        self.runner = runner
        self.result: dict[str, Any] | None = None
        self.principal = principal
        self.tool_name = tool_name
        self.arguments = arguments
        self.connection_id = connection_id
        self.request_id = request_id
        self.status = OperationStatus.QUEUED
        self.done: float = 0
        self.total: float | None = None
        self.message = ""
        self.queued_at: datetime = queued_at or _now()
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.result_summary: Any = None
        # A task's questions its client has not answered yet (the tasks extension), by key.
        self.input_requests: dict[str, Any] | None = None
        self.error = ""
        self.error_count = 0
        self.cancel_requested = False
        self.meter = ProgressMeter()
        self._writer = writer
        self._persist_interval = persist_interval
        # Not persisted yet: a call that gets its slot at once is first written as running.
        self._last_persist = time.monotonic()
        self._queue_persisted = False

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
            "connection_id": self.connection_id[:64],
            "request_id": str(self.request_id)[:128],
            "is_task": self.is_task,
            "task_ttl": self.task_ttl,
            "progress_token": self.progress_token,
            "result": self.result,
            "heartbeat_at": None,
            "cancel_requested": False,
            "runner": self.runner[:200],
            "token_id": self.principal.token_id,
            "input_requests": self.input_requests,
        }

    def persist(self) -> None:
        """Hand the current state to the history writer (no snapshot is built when the
        writer keeps nothing of this operation: history of plain calls off)."""
        self._last_persist = time.monotonic()
        if self._writer.keeps(self.id):
            self._writer.record(self.snapshot())

    def queued_at_position(self, position: int) -> None:
        """Note the call's place in the queue: persisted at once the first time, then at most
        once per persist interval (thousands of queued calls move up with every grant)."""
        self.message = f"queued, position {position}"
        if (
            not self._queue_persisted
            or time.monotonic() - self._last_persist >= self._persist_interval
        ):
            self._queue_persisted = True
            self.persist()

    def mark_running(self) -> None:
        """The call got its slot and starts now."""
        self.status = check_move(self.status, OperationStatus.RUNNING)
        self.started_at = _now()
        self.message = ""
        self.persist()
        metrics.operation_started(self)

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
                    "created_at": _now(),
                }
            ]
        )

    def finish(
        self,
        status: OperationStatus,
        *,
        summary: Any = None,
        error: str = "",
        result: dict[str, Any] | None = None,
    ) -> None:
        """Record how the operation ended (and its whole result, when it is kept); an
        operation ends once (IllegalTransition otherwise)."""
        self.status = check_move(self.status, status)
        if self.keep_result:
            self.result = result
        self.finished_at = _now()
        self.input_requests = None
        self.result_summary = summary
        self.error = error
        self.persist()
        metrics.operation_finished(self)
        if self.on_finish is not None:
            self.on_finish(self)
