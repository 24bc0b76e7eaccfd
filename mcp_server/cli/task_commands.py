"""The `tasks` subcommands: list, get, result (re-attach with the live bar) and cancel.

A task is the caller's own: another user's task id is an unknown one (-32602).
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rich import box
from rich.table import Table

from mcp_server.cli.calls import CallOutcome
from mcp_server.cli.commands import CallRenderer, ask_server, call_renderer, run_call
from mcp_server.cli.config import ClientConfig
from mcp_server.cli.output import ExitCode, Output
from mcp_server.cli.reconnect import Backoff
from mcp_server.cli.session import ClientSession
from mcp_server.cli.tasks import REQUEST_TIMEOUT, TaskCallRunner, cancel_task
from mcp_server.client.session import JsonObject, McpConnection

T = TypeVar("T")

STATUS_STYLES = {
    "working": "cyan",
    "input_required": "blue",
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
}


def format_ttl(milliseconds: Any) -> str:
    """A task ttl for people: 86400000 -> "24 h", 90000 -> "1.5 min", None -> "unlimited"."""
    if not isinstance(milliseconds, int | float) or isinstance(milliseconds, bool):
        return "unlimited"
    seconds = milliseconds / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return (
                f"{seconds / size:g} {unit}" if seconds % size else f"{seconds // size:.0f} {unit}"
            )
    return f"{seconds:g} s"


def format_moment(value: Any) -> str:
    """An ISO 8601 UTC timestamp as "2026-11-22 06:03:50"."""
    return str(value or "")[:19].replace("T", " ")


def _status_markup(status: Any) -> str:
    return f"[{STATUS_STYLES.get(str(status), 'white')}]{status}[/]"


def _ask(
    config: ClientConfig,
    output: Output,
    what: str,
    work: Callable[[McpConnection], Awaitable[T]],
) -> T | ExitCode:
    """Run `work` on a fresh connection within REQUEST_TIMEOUT; its value, or the exit status."""
    return ask_server(
        config,
        output,
        what,
        lambda connection: asyncio.wait_for(work(connection), REQUEST_TIMEOUT),
        timeout=REQUEST_TIMEOUT,
    )


async def list_tasks(connection: McpConnection, limit: int) -> list[JsonObject]:
    """The newest `limit` tasks, following tasks/list pages."""
    tasks: list[JsonObject] = []
    cursor: str | None = None
    while len(tasks) < limit:
        result = await connection.request("tasks/list", {"cursor": cursor} if cursor else {})
        tasks.extend(task for task in result.get("tasks", []) if isinstance(task, dict))
        cursor = result.get("nextCursor")
        if not cursor:
            break
    return tasks[:limit]


def tasks_list_command(config: ClientConfig, output: Output, *, limit: int) -> int:
    """Your tasks, newest first (tasks/list)."""
    tasks = _ask(config, output, "tasks/list", lambda connection: list_tasks(connection, limit))
    if isinstance(tasks, ExitCode):
        return tasks
    if output.json:
        for task in tasks:
            output.json_line(task)
        return ExitCode.OK
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=36)  # whole: `mcp-ws tasks result ID` needs it
    table.add_column("Status", no_wrap=True, min_width=9)
    table.add_column("Created (UTC)", no_wrap=True)
    table.add_column("Updated (UTC)", no_wrap=True)
    table.add_column("TTL", justify="right", no_wrap=True)
    table.add_column("Message", overflow="ellipsis", no_wrap=True)
    for task in tasks:
        table.add_row(
            str(task.get("taskId", "")),
            _status_markup(task.get("status", "")),
            format_moment(task.get("createdAt")),
            format_moment(task.get("lastUpdatedAt")),
            format_ttl(task.get("ttl")),
            str(task.get("statusMessage", "")),
        )
    console = output.console()
    console.print(table)
    if not tasks:
        console.print("[dim]No tasks yet: `mcp-ws call TOOL ... --task` makes one.[/]")
    return ExitCode.OK


def _print_task(output: Output, task: JsonObject) -> None:
    console = output.console()
    task_id = task.get("taskId", "")
    rows = [
        ("Task", str(task_id)),
        ("Status", _status_markup(task.get("status", ""))),
        ("Created", f"{format_moment(task.get('createdAt'))} UTC"),
        ("Updated", f"{format_moment(task.get('lastUpdatedAt'))} UTC"),
        ("TTL", format_ttl(task.get("ttl"))),
    ]
    if task.get("statusMessage"):
        rows.append(("Message", str(task["statusMessage"]).replace("[", "\\[")))
    for name, value in rows:
        console.print(f"[bold]{name:<9}[/]{value}", highlight=False, soft_wrap=True)
    if task.get("status") in ("working", "input_required"):
        console.print(
            f"[dim]mcp-ws tasks result {task_id}  follows it to its result; "
            f"mcp-ws tasks cancel {task_id}  stops it[/]",
            highlight=False,
        )
    elif task.get("status") == "completed":
        console.print(f"[dim]mcp-ws tasks result {task_id}  prints its result[/]", highlight=False)


def _show_task(output: Output, task: JsonObject | ExitCode) -> int:
    """Print the task a request answered with (JSON or for people); the exit status."""
    if isinstance(task, ExitCode):
        return task
    if output.json:
        output.json_line(task)
    else:
        _print_task(output, task)
    return ExitCode.OK


def tasks_get_command(config: ClientConfig, output: Output, task_id: str) -> int:
    """One task's state (tasks/get)."""
    task = _ask(
        config,
        output,
        "tasks/get",
        lambda connection: connection.request("tasks/get", {"taskId": task_id}),
    )
    return _show_task(output, task)


def tasks_cancel_command(config: ClientConfig, output: Output, task_id: str) -> int:
    """Cancel a task (tasks/cancel); status 1 when it had already ended."""
    task = _ask(config, output, "tasks/cancel", lambda connection: cancel_task(connection, task_id))
    return _show_task(output, task)


def tasks_result_command(
    config: ClientConfig, output: Output, task_id: str, *, backoff: Backoff
) -> int:
    """Attach to a task and wait for its result with the live bar, re-attaching after drops.

    Ctrl-C stops following (status 130) and leaves the task running.
    """

    async def body(
        session: ClientSession, events: CallRenderer, cancel: asyncio.Event
    ) -> CallOutcome:
        return await TaskCallRunner(session, events).follow(task_id, cancel)

    renderer = call_renderer(config, output)
    return run_call(config, output, renderer, body, backoff, refused="tasks/result failed")
