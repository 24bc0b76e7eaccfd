"""The end of a call for people: a Total/Success/Errors/Duration table, or the result text."""

import json
import re
from typing import Any
from urllib.parse import urljoin

from rich.console import Console

from mcp_server.client.session import JsonObject

_RUN_IN_ERROR_LOG = re.compile(r"/runs/([^/]+)/errors\.json$")
_BATCH_KEYS = ("total", "succeeded", "errors")


def result_text(result: JsonObject) -> str:
    """The text items of a CallToolResult, joined by newlines."""
    items = result.get("content") or []
    return "\n".join(
        str(item.get("text", ""))
        for item in items
        if isinstance(item, dict) and item.get("type") == "text"
    )


def run_id_of(error_log: str) -> str | None:
    """The run id in an error log path such as /api/runs/<id>/errors.json."""
    match = _RUN_IN_ERROR_LOG.search(error_log)
    return match.group(1) if match else None


def absolute_url(api_url: str, path: str) -> str:
    """`path` (e.g. /api/runs/1/errors.json) on the host of the REST API."""
    return urljoin(api_url + "/", path)


def is_batch_summary(structured: Any) -> bool:
    """Whether structuredContent reads like process_images': total, succeeded and errors."""
    return isinstance(structured, dict) and all(
        isinstance(structured.get(key), int) for key in _BATCH_KEYS
    )


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


def batch_summary_lines(structured: JsonObject, api_url: str) -> list[str]:
    """Total, Success, Errors, where the error log is, and Duration, one line each (markup)."""
    errors = structured["errors"]
    lines = [
        f"[bold]{'Total':<10}[/]{structured['total']:,}",
        f"[bold]{'Success':<10}[/][green]{structured['succeeded']:,}[/]",
        f"[bold]{'Errors':<10}[/]" + (f"[red]{errors:,}[/]" if errors else "0"),
    ]
    error_log = structured.get("error_log")
    if errors and isinstance(error_log, str) and error_log:
        lines.append(f"[bold]{'Error log':<10}[/]{absolute_url(api_url, error_log)}")
        run_id = run_id_of(error_log)
        if run_id:
            lines.append(f"{'':<10}[dim]mcp-ws errors {run_id} > errors.json[/]")
    duration = structured.get("duration_s")
    if isinstance(duration, int | float):
        line = f"[bold]{'Duration':<10}[/]{_seconds(float(duration))}"
        for key, unit in (("images_per_s", "images/s"), ("items_per_s", "items/s")):
            rate = structured.get(key)
            if isinstance(rate, int | float):
                line += f" · {rate:,.0f} {unit}"
                break
        lines.append(line)
    return lines


def print_result(
    console: Console, result: JsonObject, *, api_url: str, duration: float | None
) -> None:
    """Print a successful result: the summary table when there is one, else its text.

    `duration` (seconds) is how long the call took, when this client saw all of it.
    """
    structured = result.get("structuredContent")
    if is_batch_summary(structured):
        assert isinstance(structured, dict)
        for line in batch_summary_lines(structured, api_url):
            console.print(line, soft_wrap=True)
        return
    text = result_text(result)
    if not text and structured is not None:
        text = json.dumps(structured, indent=2)
    if text:
        console.print(text, markup=False, highlight=False)
    if duration is not None:
        console.print(f"[dim]Duration {_seconds(duration)}[/]")
