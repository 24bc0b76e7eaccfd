"""One `tools/call` from start to outcome: progress, Ctrl-C, and what to do after a drop.

A plain call lives and dies with its connection: the server cancels the calls of a dropped
connection. So after a drop the runner reconnects and re-runs the call once when asked to
(`--retry`), else reports the interruption. A call made as a durable task (`--task`) survives
drops and is re-attached instead: that is `TaskCallRunner` in tasks.py, which shares the
outcome, the events and `until_cancelled` defined here.
"""

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from mcp_server.cli.reconnect import ReconnectListener
from mcp_server.cli.session import ClientSession
from mcp_server.client.session import ConnectionLost, JsonObject, McpConnection

T = TypeVar("T")
CANCEL_REASON = "cancelled by the user (Ctrl-C)"


class OutcomeKind(enum.Enum):
    """How a call ended, from the client's point of view."""

    COMPLETED = "completed"  # a result arrived (it may still say isError)
    CANCELLED = "cancelled"  # the user pressed Ctrl-C
    INTERRUPTED = "interrupted"  # lost to a dropped connection or a stopped server process
    FAILED = "failed"  # a task ended without a result (cancelled by someone else, failed)
    DETACHED = "detached"  # a task was created and left running (--detach)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What to call."""

    name: str
    arguments: JsonObject = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The end of a call: its result when completed, else why not."""

    kind: OutcomeKind
    request_id: str
    duration: float
    result: JsonObject | None = None
    message: str = ""
    task_id: str | None = None
    status: str | None = None  # the task's status, when the server said why it ended


class CallEvents(ReconnectListener, Protocol):
    """What a renderer is told while a call runs."""

    def started(self, *, tool: str, request_id: str, attempt: int) -> None:
        """A request was sent (attempt 2 is the re-run after a drop)."""

    def progress(self, params: JsonObject) -> None:
        """A `notifications/progress` of the call arrived."""

    def notice(self, params: JsonObject) -> None:
        """A `notifications/message` arrived."""

    def connection_lost(self, *, reason: str) -> None:
        """The connection dropped while the call was in flight."""


class Cancelled(Exception):
    """The user asked to stop while the runner was waiting."""


async def until_cancelled(awaitable: Awaitable[T], cancel: asyncio.Event) -> T:
    """Await `awaitable` unless `cancel` is set first (then Cancelled, the work cancelled)."""
    work = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        return work.result()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    raise Cancelled


class ToolCallRunner:
    """Runs one call through drops and cancellation, and says how it ended."""

    def __init__(
        self,
        session: ClientSession,
        events: CallEvents,
        *,
        retries: int = 0,
    ) -> None:
        self._session = session
        self._events = events
        self._retries = retries

    async def run(self, call: ToolCall, cancel: asyncio.Event) -> CallOutcome:
        """Call the tool until it completes, is cancelled, or is lost to a disconnect."""
        started = time.monotonic()
        attempt = 1
        request_id = ""
        self._session.on_notice = self._events.notice
        try:
            connection = await until_cancelled(self._session.start(), cancel)
            while True:
                request_id = connection.new_request_id()
                self._events.started(tool=call.name, request_id=request_id, attempt=attempt)
                try:
                    result = await self._call_once(connection, call, request_id, cancel)
                except ConnectionLost as lost:
                    self._events.connection_lost(reason=str(lost))
                    connection = await until_cancelled(self._session.reconnect(str(lost)), cancel)
                    if attempt > self._retries:
                        return outcome_of(
                            OutcomeKind.INTERRUPTED,
                            request_id,
                            started,
                            message=(
                                "the call was interrupted by the disconnect: the server cancels "
                                "the calls of a dropped connection; run it again (or pass --retry "
                                "to re-run it automatically after reconnecting, or --task to run "
                                "it as a durable task that survives drops, when the tool allows)"
                            ),
                        )
                    attempt += 1
                    continue
                return outcome_of(OutcomeKind.COMPLETED, request_id, started, result)
        except Cancelled:
            return outcome_of(OutcomeKind.CANCELLED, request_id, started, message=CANCEL_REASON)
        finally:
            await self._session.close()

    async def _call_once(
        self, connection: McpConnection, call: ToolCall, request_id: str, cancel: asyncio.Event
    ) -> JsonObject:
        self._session.subscribe_progress(request_id, self._events.progress)
        params: JsonObject = {
            "name": call.name,
            "arguments": call.arguments,
            "_meta": {"progressToken": request_id},
        }
        try:
            return await until_cancelled(
                connection.request("tools/call", params, request_id=request_id), cancel
            )
        except Cancelled:
            connection.forget(request_id)
            # A dropped connection needs no notice: the server cancels its calls anyway.
            with contextlib.suppress(ConnectionLost):
                await connection.notify(
                    "notifications/cancelled", {"requestId": request_id, "reason": CANCEL_REASON}
                )
            raise
        finally:
            self._session.unsubscribe_progress(request_id)


def outcome_of(
    kind: OutcomeKind,
    request_id: str,
    started: float,
    result: JsonObject | None = None,
    message: str = "",
    *,
    task_id: str | None = None,
    status: str | None = None,
) -> CallOutcome:
    """A CallOutcome whose duration runs from `started` (a time.monotonic() value) to now."""
    return CallOutcome(
        kind=kind,
        request_id=request_id,
        duration=time.monotonic() - started,
        result=result,
        message=message,
        task_id=task_id,
        status=status,
    )
