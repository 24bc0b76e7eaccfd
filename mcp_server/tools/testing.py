"""Run a tool in a unit test, without a server: the helper tool authors use (docs/tools.md).

`ToolHarness` calls a registered tool the way the server does (arguments validated against
its schema, a ToolContext, the result shaped as a CallToolResult) and records what the tool
reported through its context: progress, item errors and log messages.
"""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from accounts.principal import Principal
from mcp_server.protocol.input_required import InputRound
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.invoke import call_tool
from mcp_server.tools.registry import Tool, ToolRegistry, registry


class ProgressReport(NamedTuple):
    """One `ctx.progress()` call."""

    done: float
    total: float | None
    message: str | None


class LogRecord(NamedTuple):
    """One `ctx.log()` call."""

    level: str
    data: Any
    logger: str | None


def sample_principal(
    *, tenant_slug: str = "test", username: str = "tester", user_id: int = 1, tenant_id: int = 1
) -> Principal:
    """A caller for a tool under test (every tool enabled; no token)."""
    return Principal(
        user_id=user_id,
        username=username,
        tenant_id=tenant_id,
        tenant_slug=tenant_slug,
        is_tenant_admin=False,
        enabled_tools=None,
    )


class RecordedCall:
    """Stands for the running operation and the connection: keeps what the tool reported."""

    def __init__(self, principal: Principal, tool_name: str) -> None:
        self.id = uuid.uuid4()
        self.principal = principal
        self.tool_name = tool_name
        self.connection_id = "harness"
        self.cancel_requested = False
        self.progress: list[ProgressReport] = []
        self.item_errors: list[tuple[str, str]] = []
        self.logs: list[LogRecord] = []
        # Called with each report (on the event loop, in order), e.g. to cancel at a point.
        self.on_progress: Callable[[ProgressReport], None] | None = None

    def report(self, done: float, total: float | None, message: str | None) -> None:
        """Record a progress report (the operation's side of `ctx.progress`)."""
        report = ProgressReport(done, total, message)
        self.progress.append(report)
        if self.on_progress is not None:
            self.on_progress(report)

    def add_item_error(self, item: str, message: str) -> None:
        """Record an item error (`ctx.item_error`)."""
        self.item_errors.append((item, message))

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        """Record a log message (`ctx.log`), whatever its level."""
        self.logs.append(LogRecord(level, data, logger))


def recording_context(recorded: RecordedCall, inputs: InputRound | None = None) -> ToolContext:
    """A ToolContext whose reports go to `recorded` (call it inside the running event loop);
    with `inputs`, one that asks as on a 2026-07-28 request."""
    operation: Any = recorded  # it has all a ToolContext reads of a RunningOperation
    return ToolContext(operation=operation, events=recorded, inputs=inputs)


# What a harness's client declares when a call is given answers: it can be asked anything.
_EVERY_CAPABILITY: dict[str, Any] = {"elicitation": {"form": {}}, "sampling": {}, "roots": {}}


class ToolHarness:
    """Calls one tool as the server would and records its progress, item errors and logs.

    `await harness.call({...})` returns the CallToolResult; `harness.cancel()` (from the test,
    while the call runs) is what a client's cancellation does to the tool's context.
    """

    def __init__(
        self,
        tool: str | Tool,
        *,
        principal: Principal | None = None,
        source: ToolRegistry = registry,
    ) -> None:
        found = source.get(tool) if isinstance(tool, str) else tool
        if found is None:
            raise LookupError(f"no tool named {tool!r} is registered")
        self.tool = found
        self.recorded = RecordedCall(principal or sample_principal(), found.name)
        self._task: asyncio.Task[dict[str, Any]] | None = None

    @property
    def progress(self) -> list[ProgressReport]:
        """Every progress report, in order."""
        return self.recorded.progress

    @property
    def item_errors(self) -> list[tuple[str, str]]:
        """Every item error as (item, message), in order."""
        return self.recorded.item_errors

    @property
    def logs(self) -> list[LogRecord]:
        """Every log message, in order."""
        return self.recorded.logs

    def context(self, inputs: InputRound | None = None) -> ToolContext:
        """A context recording into this harness (made inside the running event loop)."""
        return recording_context(self.recorded, inputs)

    async def call(
        self,
        arguments: dict[str, Any] | None = None,
        *,
        answers: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Run the tool with `arguments`; its result as the client would receive it.

        With `answers` (input responses by key, {} for none yet) the call runs as on a
        2026-07-28 request: a question they do not answer raises InputRequired, whose
        `requests` are what the client would be asked. Cancelled through `cancel()`, the
        call ends as the server ends it: the tool's cancellation (CancelledError or
        OperationCancelled) propagates from here.
        """
        inputs = None
        if answers is not None:
            # No request state: a test reads what was asked from InputRequired itself.
            inputs = InputRound(
                capabilities=_EVERY_CAPABILITY, seal=lambda gathered: "", responses=answers
            )
        context = self.context(inputs)
        self._task = asyncio.ensure_future(call_tool(self.tool, arguments or {}, context))
        try:
            return await self._task
        finally:
            self._task = None

    def cancel(self) -> None:
        """Cancel the running call: the context reports it cancelled and the task is
        cancelled, as a client's `notifications/cancelled` does."""
        self.recorded.cancel_requested = True
        if self._task is not None:
            self._task.cancel()

    def cancel_when(self, reached: Callable[[ProgressReport], bool]) -> None:
        """Cancel the call at the first progress report for which `reached` is true: a
        cancellation at a known point of the tool's work, without waiting for time."""

        def check(report: ProgressReport) -> None:
            if reached(report):
                self.recorded.on_progress = None
                self.cancel()

        self.recorded.on_progress = check
