"""The REST subcommands: `runs` (a table of past runs) and `errors` (a run's error log)."""

import io
from typing import Any
from urllib.parse import quote

from rich import box
from rich.table import Table

from mcp_server.cli.config import ClientConfig
from mcp_server.cli.output import ExitCode, Output
from mcp_server.cli.rest import RestClient, RestError

STATUS_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
    "interrupted": "magenta",
    "input_required": "blue",  # a 2026-07-28 call that ended by asking (its retry is a run too)
}


def _when(value: Any) -> str:
    return str(value or "")[5:19].replace("T", " ")


def _duration(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, int | float) else ""


def runs_command(
    config: ClientConfig,
    output: Output,
    *,
    limit: int,
    tool: str | None,
    statuses: list[str],
) -> int:
    """The latest runs from GET /api/runs/, newest first."""
    client = RestClient(config.api_url, config.token)
    query: dict[str, Any] = {"page_size": limit, "tool": tool, "status": statuses or None}
    try:
        page = client.get_json("runs/", query)
    except RestError as exc:
        output.error(config, str(exc))
        return ExitCode.FAILED if exc.status else ExitCode.CONNECTION
    runs = page.get("results", []) if isinstance(page, dict) else []
    if output.json:
        for run in runs:
            output.json_line(run)
        return ExitCode.OK
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=36)  # whole: `mcp-ws errors ID` needs it
    table.add_column("Tool", no_wrap=True, overflow="ellipsis")
    table.add_column("Status", no_wrap=True, min_width=9)
    for name in ("Progress", "Errors"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("Queued (UTC)", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("User", overflow="ellipsis", no_wrap=True)
    for run in runs:
        status = str(run.get("status", ""))
        progress = run.get("progress_percent")
        table.add_row(
            str(run.get("id", "")),
            str(run.get("tool", "")),
            f"[{STATUS_STYLES.get(status, 'white')}]{status}[/]",
            f"{progress:.0f} %" if isinstance(progress, int | float) else "",
            f"{run.get('error_count', 0):,}",
            _when(run.get("queued_at")),
            _duration(run.get("duration_seconds")),
            str(run.get("username", "")),
        )
    console = output.console()
    console.print(table)
    if not runs:
        console.print("[dim]No runs yet.[/]")
    return ExitCode.OK


def errors_command(config: ClientConfig, output: Output, run_id: str) -> int:
    """Stream /api/runs/{id}/errors.json to stdout."""
    client = RestClient(config.api_url, config.token)
    binary = getattr(output.stdout, "buffer", None)
    stream = binary if binary is not None else io.BytesIO()
    try:
        output.stdout.flush()
        client.download(f"runs/{quote(run_id, safe='')}/errors.json", stream)
        if binary is None:  # a text-only stdout (an embedding program's StringIO)
            output.stdout.write(stream.getvalue().decode("utf-8"))
    except RestError as exc:
        # stdout is the downloaded file: the error goes to stderr only.
        output.error(config, str(exc), event=False)
        return ExitCode.FAILED if exc.status else ExitCode.CONNECTION
    return ExitCode.OK
