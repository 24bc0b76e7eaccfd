"""The context object every tool call runs with; tools see nothing of the wire."""

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from accounts.principal import Principal

if TYPE_CHECKING:
    from mcp_server.runtime.operation import RunningOperation
    from mcp_server.runtime.progress import ProgressCoalescer

T = TypeVar("T")


class OperationCancelled(Exception):
    """Raised inside a tool (on its worker thread) when its operation was cancelled."""


class CallEvents(Protocol):
    """Where a running call's events go (the session implements it for its connection)."""

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        """Deliver a log message, if the client's logging level lets it through."""


class ToolContext:
    """What a tool may use while it runs: progress, cancellation, logs and item errors.

    `progress` and `item_error` may be called from any thread (a sync tool runs on a worker
    thread); `log` is a coroutine for tools on the event loop.
    """

    __slots__ = ("_events", "_loop", "_loop_thread", "_operation", "_progress")

    def __init__(
        self,
        *,
        operation: "RunningOperation",
        events: CallEvents,
        progress: "ProgressCoalescer | None" = None,
    ) -> None:
        self._operation = operation
        self._events = events
        self._progress = progress
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    @property
    def principal(self) -> Principal:
        """Who called."""
        return self._operation.principal

    @property
    def tool_name(self) -> str:
        """The tool being run."""
        return self._operation.tool_name

    @property
    def operation_id(self) -> str:
        """The history id of this call (the run's id in the REST API)."""
        return str(self._operation.id)

    @property
    def cancelled(self) -> bool:
        """Whether the call was cancelled; a loop that does not await should check it."""
        return self._operation.cancel_requested

    def raise_if_cancelled(self) -> None:
        """Raise OperationCancelled when the call was cancelled (for code on worker threads)."""
        if self._operation.cancel_requested:
            raise OperationCancelled(self.operation_id)

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report `done` of `total` items; cheap enough to call for every item."""
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._report, done, total, message)
        else:
            self._report(done, total, message)

    def _report(self, done: float, total: float | None, message: str | None) -> None:
        self._operation.report(done, total, message)
        if self._progress is not None:
            self._progress.report(done, total, message)

    def item_error(self, item: str, message: str) -> None:
        """Record that one item failed; the run goes on."""
        self._operation.add_item_error(item, message)

    async def log(self, level: str, message: Any) -> None:
        """Send `message` to the client as `notifications/message` at `level` (RFC 5424 name)."""
        await self._events.log(level, message, self.tool_name)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking or CPU-bound work on a worker thread.

        A thread cannot be stopped: when the call is cancelled, this waits for the item in hand
        to finish (so the tool's cleanup never races with it) and then raises CancelledError.
        """
        work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait({work})
            raise
