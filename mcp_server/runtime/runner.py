"""Runs tool calls as operations: limits and queueing, progress, cancellation, history."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.conf import settings

from accounts.principal import Principal
from mcp_server.models import OperationStatus
from mcp_server.runtime.context import CallEvents, ToolContext
from mcp_server.runtime.history import HistoryWriter, history_writer
from mcp_server.runtime.invoke import call_tool
from mcp_server.runtime.limits import FairScheduler, Limits, SlotKey
from mcp_server.runtime.operation import RunningOperation
from mcp_server.runtime.progress import ProgressCoalescer
from mcp_server.tools.registry import Tool

logger = logging.getLogger(__name__)

Send = Callable[[Any], Awaitable[None]]
_SUMMARY_TEXT_LIMIT = 2000
# The cancellation message that marks work stopped because its process is shutting down.
INTERRUPTED_BY_SHUTDOWN = "interrupted: server shutdown"


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One `tools/call` as the runtime sees it."""

    principal: Principal
    tool: Tool
    arguments: dict[str, Any]
    connection_id: str
    request_id: str | int
    progress_token: str | int | None


def _summary(result: dict[str, Any]) -> Any:
    if "structuredContent" in result:
        return result["structuredContent"]
    texts = [
        item.get("text", "") for item in result.get("content", ()) if item.get("type") == "text"
    ]
    return {"text": "\n".join(texts)[:_SUMMARY_TEXT_LIMIT]} if texts else None


def _error_text(result: dict[str, Any]) -> str:
    return "\n".join(
        item.get("text", "") for item in result.get("content", ()) if item.get("type") == "text"
    )


class OperationRunner:
    """Runs calls in this process and knows which are running, for cancellation by id."""

    def __init__(
        self,
        *,
        scheduler: FairScheduler,
        writer: HistoryWriter,
        progress_rate: float,
        persist_interval: float,
    ) -> None:
        self.scheduler = scheduler
        self.writer = writer
        self.progress_rate = progress_rate
        self.persist_interval = persist_interval
        self._tasks: dict[UUID, tuple[RunningOperation, asyncio.Task[Any]]] = {}

    async def call(self, request: CallRequest, *, send: Send, events: CallEvents) -> dict[str, Any]:
        """Run one call to completion and return its CallToolResult.

        Cancelling the awaiting task cancels the call: it is recorded as cancelled, its slot
        is released, nothing more is sent, and CancelledError propagates.
        """
        operation = RunningOperation(
            principal=request.principal,
            tool_name=request.tool.name,
            arguments=request.arguments,
            connection_id=request.connection_id,
            request_id=request.request_id,
            writer=self.writer,
            persist_interval=self.persist_interval,
        )
        progress = None
        if request.progress_token is not None:
            progress = ProgressCoalescer(
                token=request.progress_token,
                send=send,
                max_rate=self.progress_rate,
                meter=operation.meter,
            )
        task = asyncio.current_task()
        assert task is not None
        self._tasks[operation.id] = (operation, task)
        key = SlotKey(request.principal.tenant_id, request.principal.user_id, request.connection_id)
        queue_notices = 0

        def on_position(position: int) -> None:
            # While queued, progress stays at zero but must still rise with each notice.
            nonlocal queue_notices
            queue_notices += 1
            operation.queued_at_position(position)
            if progress is not None:
                progress.report(queue_notices * 1e-9 - 1e-9, None, operation.message)

        try:
            async with self.scheduler.slot(key, on_position):
                operation.mark_running()
                context = ToolContext(operation=operation, events=events, progress=progress)
                result = await call_tool(request.tool, request.arguments, context)
                if progress is not None:
                    await progress.close()
        except asyncio.CancelledError as exc:
            operation.cancel_requested = True
            if progress is not None:
                progress.abort()
            if exc.args and exc.args[0] == INTERRUPTED_BY_SHUTDOWN:
                operation.finish(OperationStatus.INTERRUPTED, error="the server shut down")
            else:
                operation.finish(OperationStatus.CANCELLED, error="cancelled")
            raise
        except BaseException as exc:
            operation.cancel_requested = True
            if progress is not None:
                progress.abort()
            operation.finish(OperationStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._tasks.pop(operation.id, None)
        if result.get("isError"):
            operation.finish(
                OperationStatus.FAILED, summary=_summary(result), error=_error_text(result)
            )
        else:
            operation.finish(OperationStatus.SUCCEEDED, summary=_summary(result))
        if operation.error_count:
            # The result points at the error log: make it complete before the client reads it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wrap_future(self.writer.flush_soon()), 10)
        return result

    def cancel(self, operation_id: UUID) -> bool:
        """Cancel a call running in this process; False when it is not running here."""
        entry = self._tasks.get(operation_id)
        if entry is None:
            return False
        operation, task = entry
        operation.cancel_requested = True
        loop = task.get_loop()
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            task.cancel()
        else:  # called from another thread (a sync view, the admin): hand it to the loop
            loop.call_soon_threadsafe(task.cancel)
        return True

    @property
    def running_ids(self) -> list[UUID]:
        """Ids of the calls this process is running or queueing."""
        return list(self._tasks)


@lru_cache(maxsize=1)
def operation_runner() -> OperationRunner:
    """The process's runner, configured from settings."""
    return OperationRunner(
        scheduler=FairScheduler(
            Limits(
                per_connection=settings.MCP_MAX_OPERATIONS_PER_CONNECTION,
                per_user=settings.MCP_MAX_OPERATIONS_PER_USER,
                per_tenant=settings.MCP_MAX_OPERATIONS_PER_TENANT,
                total=settings.MCP_MAX_OPERATIONS,
            )
        ),
        writer=history_writer(),
        progress_rate=settings.MCP_PROGRESS_MAX_RATE,
        persist_interval=settings.MCP_HISTORY_PROGRESS_INTERVAL,
    )
