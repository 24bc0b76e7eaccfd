"""Runs tool calls as operations: limits and queueing, progress, cancellation, history."""

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from django.conf import settings

from accounts.principal import Principal
from config import log_context
from mcp_server import metrics
from mcp_server.operations.lifecycle import OperationStatus, Stop, StopReason, stop_of
from mcp_server.operations.store import OperationStore
from mcp_server.protocol.input_required import INPUT_REQUIRED, InputRequired, InputRound
from mcp_server.protocol.tool_results import error_result
from mcp_server.runtime.admission import InFlightLimitReached, InFlightRequests
from mcp_server.runtime.context import AsksClient, CallEvents, ToolContext
from mcp_server.runtime.fanout import ChunkExecutor, ChunksLost
from mcp_server.runtime.invoke import call_tool
from mcp_server.runtime.limits import FairScheduler, Limits, SlotKey
from mcp_server.runtime.operation import RunningOperation
from mcp_server.runtime.progress import Deliver, ProgressCoalescer, ProgressReport, frames_to
from mcp_server.runtime.task_questions import Announce, TaskQuestions
from mcp_server.tools.registry import Tool

logger = logging.getLogger(__name__)

Send = Callable[[Any], Awaitable[None]]
_SUMMARY_TEXT_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One `tools/call` as the runtime sees it."""

    principal: Principal
    tool: Tool
    arguments: dict[str, Any]
    connection_id: str
    request_id: str | int
    progress_token: str | int | None
    # Set for calls published to listeners (tasks, calls handed to workers).
    operation_id: UUID | None = None
    queued_at: datetime | None = None
    is_task: bool = False
    task_ttl: int | None = None
    # A 2026-07-28 call's input round (its answers so far); None in the handshake era.
    inputs: InputRound | None = None
    # The lowest log level rank its own request let through (a 2026-07-28 request's
    # `logLevel`); None: the connection's level decides (the handshake era).
    log_rank: int | None = None
    # Whether the tool may send requests to the client (elicitation, sampling): only in the
    # handshake era; 2026-07-28 has no server-to-client requests.
    asks_client: bool = True
    # A task of the tasks extension: its questions to the client go through the task
    # (inputRequests, answered by tasks/update), within the capabilities its request declared.
    asks_through_task: bool = False
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    # Whether the row with `operation_id` exists before the call runs (False: a plain call on
    # a worker, whose row the history writer inserts, with its end for a short call).
    recorded: bool = True


class OperationEvents(CallEvents, Protocol):
    """Where a published operation's progress, logs and outcome go (its listeners)."""

    async def progress(self, report: ProgressReport) -> None:
        """Forward one coalesced progress report (each listener puts its client's token)."""

    async def asking(self, input_requests: dict[str, Any] | None) -> None:
        """Tell the listeners what the task now waits for its client to answer."""

    def record_end(self, operation: RunningOperation) -> None:
        """Note how far the operation got and when it ended (called as it finishes)."""

    async def finished(self, *, status: str, result: dict[str, Any] | None, error: str) -> None:
        """Tell the listeners how the operation ended (after it was persisted)."""


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


def _settle(flushed: "asyncio.Future[None]") -> None:
    if not flushed.done():
        flushed.set_result(None)


def _settle_from_writer(loop: asyncio.AbstractEventLoop, flushed: "asyncio.Future[None]") -> None:
    if not loop.is_closed():  # the writer's last flush may end after the loop (at exit)
        loop.call_soon_threadsafe(_settle, flushed)


class OperationRunner:
    """Runs calls in this process and knows which are running, for cancellation by id."""

    def __init__(
        self,
        *,
        scheduler: FairScheduler,
        writer: OperationStore,
        progress_rate: float,
        persist_interval: float,
        name: str = "",
        admission: InFlightRequests | None = None,
    ) -> None:
        self.name = name
        self.scheduler = scheduler
        # Requests in flight in this process, by connection, user and tenant (the session's
        # spawned requests, and operations run here for listeners).
        self.admission = admission if admission is not None else InFlightRequests()
        self.writer = writer
        self.progress_rate = progress_rate
        self.persist_interval = persist_interval
        self._tasks: dict[UUID, tuple[RunningOperation, asyncio.Task[Any]]] = {}
        # The open questions of the tasks-extension tasks running here, by operation.
        self._questions: dict[UUID, TaskQuestions] = {}
        # Where the calls' fan-out chunks run: None, this process's pool; the cluster's
        # workers when there are (ProcessRuntime sets it).
        self.chunks: ChunkExecutor | None = None
        # The flush the writer has been asked for and not begun, and its end on this loop.
        self._flush_asked: Future[None] | None = None
        self._flushed: asyncio.Future[None] | None = None

    async def call(
        self,
        request: CallRequest,
        *,
        send: Send | None = None,
        events: CallEvents,
        published: bool = False,
        deliver: Deliver | None = None,
        on_finish: Callable[[RunningOperation], None] | None = None,
        client: AsksClient | None = None,
        asking: Announce | None = None,
    ) -> dict[str, Any]:
        """Run one call to completion and return its CallToolResult.

        Progress goes to `deliver` as reports, or else to the client as
        `notifications/progress` frames through `send`. Cancelling the awaiting task
        cancels the call: it is recorded as cancelled, its slot is released, nothing more is
        sent, and CancelledError propagates. A published call reports progress whether or not
        it has a token (listeners may attach later), keeps its whole result in history, and is
        written to the database before this returns. With `client` (the connection's requests
        to its client) the tool may ask the client for input or a completion; a task of the
        tasks extension asks through the task instead (TaskQuestions), telling `asking`.
        """
        operation = self.operation_for(request, keep_result=published, on_finish=on_finish)
        log_context.bind_operation(operation.id)
        if client is None and request.asks_through_task:
            client = self._questions[operation.id] = TaskQuestions(
                operation,
                capabilities=request.client_capabilities,
                timeout=settings.MCP_CLIENT_REQUEST_TIMEOUT,
                max_outstanding=settings.MCP_CLIENT_REQUESTS_PER_CONNECTION,
                announce=asking,
            )
        if request.operation_id is not None and request.recorded:
            self.writer.adopt(request.operation_id)
        token = request.progress_token
        if deliver is None and send is not None:
            deliver = frames_to(token if token is not None else 0, send)
        progress = None
        # A task reports progress even without a token: a client may attach one later.
        if deliver is not None and (token is not None or (published and request.is_task)):
            progress = ProgressCoalescer(
                deliver=deliver, max_rate=self.progress_rate, meter=operation.meter
            )
        task = asyncio.current_task()
        assert task is not None
        self._tasks[operation.id] = (operation, task)
        key = slot_key(request)
        queue_notices = 0
        asked: InputRequired | None = None

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
                # Only a tool that takes one gets a context (most short tools do not).
                context = (
                    None
                    if request.tool.context_param is None
                    else ToolContext(
                        operation=operation,
                        events=events,
                        progress=progress,
                        client=client,
                        chunks=self.chunks,
                        idempotent=request.tool.idempotent,
                        inputs=request.inputs,
                        settle=self.flush_unwritten,
                    )
                )
                try:
                    result = await call_tool(request.tool, request.arguments, context)
                except InputRequired as missing:
                    if request.inputs is None:
                        raise
                    asked, result = missing, request.inputs.result(missing)
                except ChunksLost as lost:
                    # A chunk died with its worker and may not run twice: the call is
                    # interrupted, as if its own process had stopped responding.
                    stop = Stop(StopReason.LOST_RUNNER, lost.detail)
                    if published:
                        raise asyncio.CancelledError(stop) from None
                    if progress is not None:
                        progress.abort()
                    operation.finish(stop.status, error=stop.error)
                    await self.flush_history()
                    return error_result(stop.error)
                if progress is not None:
                    await progress.close()
        except asyncio.CancelledError as exc:
            operation.cancel_requested = True
            if progress is not None:
                progress.abort()
            stop = stop_of(exc)
            operation.finish(stop.status, error=stop.error)
            raise
        except BaseException as exc:
            operation.cancel_requested = True
            if progress is not None:
                progress.abort()
            operation.finish(OperationStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._tasks.pop(operation.id, None)
            self._questions.pop(operation.id, None)
        if asked is not None:
            # What happened: the call asked for these inputs, nothing more (no outcome).
            operation.finish(
                OperationStatus.INPUT_REQUIRED, summary={"inputRequests": list(asked.requests)}
            )
        elif result.get("isError"):
            operation.finish(
                OperationStatus.FAILED,
                summary=_summary(result),
                error=_error_text(result),
                result=result,
            )
        else:
            operation.finish(OperationStatus.SUCCEEDED, summary=_summary(result), result=result)
        if operation.error_count or (published and request.is_task):
            # The result points at the error log, or a task's may be fetched from history by
            # another process: make the history complete before anyone hears of the result.
            await self.flush_history()
        return result

    def operation_for(
        self,
        request: CallRequest,
        *,
        keep_result: bool = False,
        on_finish: Callable[[RunningOperation], None] | None = None,
    ) -> RunningOperation:
        """The in-memory state of a call, whose snapshots are its history row."""
        return RunningOperation(
            principal=request.principal,
            tool_name=request.tool.name,
            arguments=request.arguments,
            connection_id=request.connection_id,
            request_id=request.request_id,
            writer=self.writer,
            persist_interval=self.persist_interval,
            operation_id=request.operation_id,
            is_task=request.is_task,
            task_ttl=request.task_ttl,
            progress_token=request.progress_token,
            keep_result=keep_result,
            on_finish=on_finish,
            runner=self.name,
            queued_at=request.queued_at,
        )

    async def flush_history(self) -> None:
        """Wait (at most 10 s) until what history holds so far is written."""
        asked = self.writer.flush_soon()
        if asked is not self._flush_asked or self._flushed is None or self._flushed.done():
            # The calls that ask before the writer begins share its flush (the writer gives
            # them one future): one wake-up of this loop from the writer's thread, not one each.
            loop = asyncio.get_running_loop()
            flushed = loop.create_future()
            asked.add_done_callback(lambda _: _settle_from_writer(loop, flushed))
            loop.call_later(10, _settle, flushed)
            self._flush_asked, self._flushed = asked, flushed
        await asyncio.shield(self._flushed)  # a caller cancelled does not cancel the others

    async def flush_unwritten(self) -> None:
        """Wait until history holds what this process has recorded (at once when it does):
        a client that reads its runs right after a call finds them."""
        if self.writer.unwritten_ids():
            await self.flush_history()

    async def run_published(self, request: CallRequest, events: OperationEvents) -> None:
        """Run a call whose events go to listeners rather than to one socket (a task, or a call
        from another process), and tell them how it ended; never raises.

        It counts as in flight for its connection, user and tenant while it runs or waits;
        past their bounds it is refused (recorded failed) instead of queued.
        """
        key = slot_key(request)
        try:
            self.admission.admit(key, request.principal.limits)
        except InFlightLimitReached as exc:
            metrics.refused(exc.data["limit"], request.principal)
            await self._refuse(request, events, str(exc))
            return
        try:
            await self._run_published(request, events)
        finally:
            self.admission.release(key)

    async def _refuse(self, request: CallRequest, events: OperationEvents, error: str) -> None:
        if request.operation_id is not None and request.recorded:
            self.writer.adopt(request.operation_id)
        operation = self.operation_for(request, keep_result=True, on_finish=events.record_end)
        operation.finish(OperationStatus.FAILED, error=error)
        await self.flush_history()
        await self._announce(
            events, request, status=OperationStatus.FAILED, result=None, error=error
        )

    async def _run_published(self, request: CallRequest, events: OperationEvents) -> None:
        try:
            result = await self.call(
                request,
                events=events,
                published=True,
                deliver=events.progress,
                on_finish=events.record_end,
                asking=events.asking,
            )
        except asyncio.CancelledError as exc:
            # Recorded by call() from the same Stop: the listeners hear what history says.
            stop = stop_of(exc)
            await self._announce(events, request, status=stop.status, result=None, error=stop.error)
            return
        except Exception as exc:
            logger.exception("operation %s failed", request.operation_id)
            error = f"{type(exc).__name__}: {exc}"
            await self._announce(
                events, request, status=OperationStatus.FAILED, result=None, error=error
            )
            return
        if result.get("resultType") == INPUT_REQUIRED:
            status = OperationStatus.INPUT_REQUIRED  # asked; the result is the question
        elif result.get("isError"):
            status = OperationStatus.FAILED
        else:
            status = OperationStatus.SUCCEEDED
        await self._announce(events, request, status=status, result=result, error="")

    async def _announce(
        self,
        events: OperationEvents,
        request: CallRequest,
        *,
        status: OperationStatus,
        result: dict[str, Any] | None,
        error: str,
    ) -> None:
        if result is None and request.is_task:
            await self.flush_history()
        elif not request.recorded:
            # A plain call whose row its runner inserts (on a worker): its client, or its next
            # call, may look the run up at once (the calls of one moment share the write).
            await self.flush_unwritten()
        try:
            await events.finished(status=str(status), result=result, error=error)
        except Exception:
            logger.warning("could not announce the end of an operation", exc_info=True)

    def answer(self, operation_id: UUID, responses: dict[str, Any]) -> bool:
        """Hand a client's input responses (tasks/update) to a task running here; False when
        it does not run here."""
        questions = self._questions.get(operation_id)
        if questions is None:
            return False
        questions.answer(responses)
        return True

    def cancel(self, operation_id: UUID, reason: Stop | None = None) -> bool:
        """Cancel a call running in this process; False when it is not running here.

        `reason` says why, and so how it is recorded (e.g. a shutdown: interrupted); none is a
        plain cancel.
        """
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
            task.cancel(reason)
        else:  # called from another thread (a sync view, the admin): hand it to the loop
            loop.call_soon_threadsafe(task.cancel, reason)
        return True

    def cancel_where(self, matches: Callable[[Principal], bool], reason: Stop) -> int:
        """Cancel every call running here whose caller `matches` (access revoked); how many."""
        keys = [key for key, (op, _) in self._tasks.items() if matches(op.principal)]
        for key in keys:
            self.cancel(key, reason)
        return len(keys)

    def is_running(self, operation_id: UUID) -> bool:
        """Whether this process runs (or queues) the operation."""
        return operation_id in self._tasks

    @property
    def running_ids(self) -> list[UUID]:
        """Ids of the calls this process is running or queueing."""
        return list(self._tasks)


def slot_key(request: CallRequest) -> SlotKey:
    """Whose slot and in-flight count a call takes: its tenant, user and connection."""
    return SlotKey(request.principal.tenant_id, request.principal.user_id, request.connection_id)


def runner_from_settings(writer: OperationStore) -> OperationRunner:
    """A runner for this process, configured from settings, writing history with `writer`."""
    return OperationRunner(
        scheduler=FairScheduler(
            Limits(
                per_connection=settings.MCP_MAX_OPERATIONS_PER_CONNECTION,
                per_user=settings.MCP_MAX_OPERATIONS_PER_USER,
                per_tenant=settings.MCP_MAX_OPERATIONS_PER_TENANT,
                total=settings.MCP_MAX_OPERATIONS,
            )
        ),
        writer=writer,
        name=f"{socket.gethostname()}:{os.getpid()}",
        progress_rate=settings.MCP_PROGRESS_MAX_RATE,
        persist_interval=settings.MCP_HISTORY_PROGRESS_INTERVAL,
    )
