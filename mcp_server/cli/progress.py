"""How a call looks while it runs: a live rich bar for people, JSON lines for programs.

The server's progress message reads like "batch 3/20 · 350 items/s · ETA 16 s": the bar
shows its detail, rate and ETA, falling back to its own estimate when the server gave none.
Both renderers also take a task's events (tasks.py: created, attached, status) and outcomes.
"""

import json
import re
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskProgressColumn
from rich.text import Text

from mcp_server.cli.calls import CallOutcome, OutcomeKind
from mcp_server.cli.summary import print_result, result_text
from mcp_server.client.session import JsonObject

_RATE = re.compile(r"^[\d.,]+\s+\S+/s$")
_SEPARATOR = " · "


@dataclass(frozen=True, slots=True)
class ProgressText:
    """A server progress message split into its parts."""

    detail: str = ""
    rate: str = ""
    eta: str = ""


def parse_progress_message(message: str | None) -> ProgressText:
    """Split "img_1.png · 350 items/s · ETA 16 s" into detail, rate and ETA."""
    if not message:
        return ProgressText()
    detail: list[str] = []
    rate = eta = ""
    for part in message.split(_SEPARATOR):
        part = part.strip()
        if part.startswith("ETA "):
            eta = part[4:]
        elif _RATE.match(part):
            rate = part
        elif part:
            detail.append(part)
    return ProgressText(_SEPARATOR.join(detail), rate, eta)


def format_amount(value: float | None) -> str:
    """1234 -> "1,234"; 1.5 -> "1.5"; None -> "?"."""
    if value is None:
        return "?"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def percent(progress: float, total: float | None) -> float | None:
    """Progress as a percentage of total, when known."""
    if not total:
        return None
    return round(min(progress / total, 1.0) * 100, 2)


class CountColumn(ProgressColumn):
    """ "1,234/10,000"."""

    def render(self, task: Task) -> Text:
        """The count of the task."""
        return Text(
            f"{format_amount(task.completed)}/{format_amount(task.total)}", "progress.download"
        )


class RateColumn(ProgressColumn):
    """The server's rate, else rich's own estimate."""

    def render(self, task: Task) -> Text:
        """The rate of the task."""
        rate = str(task.fields.get("rate") or "")
        if not rate and task.speed:
            rate = f"{task.speed:,.1f}/s"
        return Text(rate, "progress.data.speed")


class EtaColumn(ProgressColumn):
    """The server's ETA, else rich's own estimate."""

    def render(self, task: Task) -> Text:
        """The time left of the task."""
        eta = str(task.fields.get("eta") or "")
        if not eta and task.time_remaining is not None and not task.finished:
            eta = f"{task.time_remaining:.0f} s"
        return Text(f"ETA {eta}" if eta else "", "progress.remaining")


class DetailColumn(ProgressColumn):
    """What the server says it is doing (a file name, a batch number, a queue position)."""

    def render(self, task: Task) -> Text:
        """The detail text of the task."""
        return Text(str(task.fields.get("detail") or ""), "dim", overflow="ellipsis", no_wrap=True)


class RichCallRenderer:
    """A live progress bar on a terminal, notices above it, and a summary at the end.

    With `live=False` (`--detach`) there is no bar: only the outcome is printed.
    """

    def __init__(
        self, console: Console, error_console: Console, *, api_url: str, live: bool = True
    ) -> None:
        self.console = console
        self.error_console = error_console
        self.api_url = api_url
        self.live = live
        self._followed_only = False  # attached to an existing task: no duration of our own
        self._progress = Progress(
            "[bold]{task.description}",
            BarColumn(bar_width=None),
            CountColumn(),
            TaskProgressColumn(),
            RateColumn(),
            EtaColumn(),
            DetailColumn(),
            console=console,
            refresh_per_second=10,
            expand=True,
        )
        self._task: Any = None

    def _start_bar(self, description: str) -> None:
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=None, detail="starting", rate="", eta=""
        )

    def started(self, *, tool: str, request_id: str, attempt: int) -> None:
        """Show an empty bar (or reset it for a re-run)."""
        if not self.live:
            return
        if self._task is None:
            self._start_bar(tool)
            return
        self._progress.console.print(f"[yellow]Re-running {tool} (attempt {attempt})[/]")
        self._progress.reset(self._task, total=None, detail="starting", rate="", eta="")

    def task_created(self, task: JsonObject) -> None:
        """Name the task above the bar (it can be re-attached from anywhere by its id)."""
        if self.live:
            self._progress.console.print(f"[dim]Task {task.get('taskId')}[/]", highlight=False)

    def attached(self, *, task_id: str, request_id: str, again: bool) -> None:
        """Say the task is followed again after a drop (or start the bar for `tasks result`)."""
        if not self.live:
            return
        if self._task is None:
            self._followed_only = True
            self._progress.console.print(f"[dim]Following task {task_id}[/]", highlight=False)
            self._start_bar("task")
        elif again:
            self._progress.console.print(
                f"[green]Re-attached to task {task_id}.[/]", highlight=False
            )

    def task_status(self, task: JsonObject) -> None:
        """Nothing to show: the outcome says how the task ended."""

    def progress(self, params: JsonObject) -> None:
        """Move the bar."""
        if self._task is None:
            return
        text = parse_progress_message(params.get("message"))
        total = params.get("total")
        self._progress.update(
            self._task,
            completed=float(params.get("progress", 0)),
            total=float(total) if isinstance(total, int | float) else None,
            detail=text.detail,
            rate=text.rate,
            eta=text.eta,
        )

    def notice(self, params: JsonObject) -> None:
        """Print a server log message above the bar."""
        level = str(params.get("level", "info"))
        source = f" {params['logger']}" if params.get("logger") else ""
        data = params.get("data")
        body = data if isinstance(data, str) else json.dumps(data)
        self._progress.console.print(f"[cyan]\\[{level}{source}][/] {body}", highlight=False)

    def connection_lost(self, *, reason: str) -> None:
        """Say the connection dropped."""
        self._progress.console.print(f"[yellow]Connection lost: {reason}[/]", highlight=False)

    def reconnecting(self, *, attempt: int, attempts: int, delay: float, reason: str) -> None:
        """Say when the next attempt starts."""
        self._progress.console.print(
            f"[yellow]Reconnecting in {delay:.1f} s (attempt {attempt}/{attempts})…[/]",
            highlight=False,
        )

    def reconnected(self, *, attempt: int) -> None:
        """Say the connection is back."""
        self._progress.console.print(f"[green]Reconnected (attempt {attempt}).[/]")

    def finished(self, outcome: CallOutcome) -> None:
        """Stop the bar and print the summary, the error, or why the call ended early."""
        if outcome.kind is OutcomeKind.COMPLETED and self._task is not None:
            task = self._progress.tasks[0]
            if task.total is not None and not (outcome.result or {}).get("isError"):
                self._progress.update(self._task, completed=task.total, eta="")
        self.close()
        if outcome.kind is OutcomeKind.DETACHED:
            # stdout is the id alone, for `id=$(mcp-ws call ... --detach --no-json)`.
            self.console.print(outcome.task_id, markup=False, highlight=False)
            self.error_console.print(
                f"[dim]Task {outcome.task_id} is {outcome.status or 'working'}: "
                f"`mcp-ws tasks result {outcome.task_id}` follows it to its result, "
                f"`mcp-ws tasks cancel {outcome.task_id}` stops it.[/]",
                highlight=False,
            )
        elif outcome.kind is OutcomeKind.CANCELLED:
            self.error_console.print(f"[yellow]Cancelled:[/] {outcome.message}", highlight=False)
        elif outcome.kind is OutcomeKind.INTERRUPTED:
            self.error_console.print(f"[red]Interrupted:[/] {outcome.message}", highlight=False)
        elif outcome.kind is OutcomeKind.FAILED:
            self.error_console.print(f"[red]Failed:[/] {outcome.message}", highlight=False)
        elif outcome.result is not None and outcome.result.get("isError"):
            self.error_console.print("[red]The tool reported an error:[/]")
            self.error_console.print(result_text(outcome.result), markup=False, highlight=False)
        elif outcome.result is not None:
            duration = None if self._followed_only else outcome.duration
            print_result(self.console, outcome.result, api_url=self.api_url, duration=duration)

    def renderable(self) -> RenderableType:
        """The bar as it looks now (for a picture of it)."""
        return self._progress.get_renderable()

    def close(self) -> None:
        """Stop the live display (idempotent)."""
        if self._task is not None:
            self._progress.stop()


class JsonLinesCallRenderer:
    """One JSON object per line on stdout for every event, then the outcome."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event line and flush it."""
        self._stream.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
        self._stream.flush()

    def started(self, *, tool: str, request_id: str, attempt: int) -> None:
        """{"event": "started", ...}."""
        self.emit("started", tool=tool, requestId=request_id, attempt=attempt)

    def progress(self, params: JsonObject) -> None:
        """{"event": "progress", "progress", "total", "percent", "message", "rate", "eta"}."""
        done = float(params.get("progress", 0))
        total = params.get("total")
        text = parse_progress_message(params.get("message"))
        self.emit(
            "progress",
            progress=params.get("progress"),
            total=total,
            percent=percent(done, total if isinstance(total, int | float) else None),
            message=params.get("message"),
            rate=text.rate or None,
            eta=text.eta or None,
        )

    def notice(self, params: JsonObject) -> None:
        """{"event": "notice", "level", "logger", "data"}."""
        self.emit("notice", **params)

    def task_created(self, task: JsonObject) -> None:
        """{"event": "task", "taskId", "status", "createdAt", "ttl", "pollInterval", ...}."""
        self.emit("task", **{key: value for key, value in task.items() if key != "event"})

    def attached(self, *, task_id: str, request_id: str, again: bool) -> None:
        """{"event": "attached", "taskId", "requestId", "again"}."""
        self.emit("attached", taskId=task_id, requestId=request_id, again=again)

    def task_status(self, task: JsonObject) -> None:
        """{"event": "task_status", "taskId", "status", ...}: a notifications/tasks/status."""
        self.emit("task_status", **{key: value for key, value in task.items() if key != "event"})

    def connection_lost(self, *, reason: str) -> None:
        """{"event": "connection_lost", "reason"}."""
        self.emit("connection_lost", reason=reason)

    def reconnecting(self, *, attempt: int, attempts: int, delay: float, reason: str) -> None:
        """{"event": "reconnecting", "attempt", "attempts", "delay", "reason"}."""
        self.emit(
            "reconnecting", attempt=attempt, attempts=attempts, delay=round(delay, 3), reason=reason
        )

    def reconnected(self, *, attempt: int) -> None:
        """{"event": "reconnected", "attempt"}."""
        self.emit("reconnected", attempt=attempt)

    def finished(self, outcome: CallOutcome) -> None:
        """{"event": "result" | "cancelled" | "interrupted" | "failed" | "detached", ...}.

        A task's outcome also has its `taskId`, and `status` when the server said how it ended.
        """
        common: dict[str, Any] = {
            "requestId": outcome.request_id,
            "durationSeconds": round(outcome.duration, 3),
        }
        if outcome.task_id is not None:
            common["taskId"] = outcome.task_id
        if outcome.status is not None:
            common["status"] = outcome.status
        if outcome.kind is OutcomeKind.COMPLETED and outcome.result is not None:
            result = outcome.result
            self.emit(
                "result",
                isError=bool(result.get("isError")),
                content=result.get("content", []),
                structuredContent=result.get("structuredContent"),
                **common,
            )
        else:
            self.emit(outcome.kind.value, message=outcome.message, **common)

    def close(self) -> None:
        """Nothing to stop."""
