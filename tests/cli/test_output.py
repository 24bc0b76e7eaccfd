"""Rendering without a server: progress messages, backoff, the summary, the bar as SVG."""

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mcp_server.cli.calls import CallOutcome, OutcomeKind
from mcp_server.cli.progress import (
    JsonLinesCallRenderer,
    RichCallRenderer,
    format_amount,
    parse_progress_message,
    percent,
)
from mcp_server.cli.reconnect import Backoff
from mcp_server.cli.summary import batch_summary_lines, run_id_of

PROJECT_DIR = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_DIR / "test-artifacts"
RUN_ID = "6f1c2a4e-0d3b-4a57-9c1e-2b8f5d7a9e10"
IMAGES_RESULT: dict[str, Any] = {
    "content": [{"type": "text", "text": "Total 10,000 · ..."}],
    "structuredContent": {
        "total": 10_000,
        "succeeded": 9_850,
        "errors": 150,
        "duration_s": 24.6,
        "images_per_s": 406.5,
        "formats": {"JPEG": 4000},
        "thumbnails": f"thumbnails/{RUN_ID}",
        "error_log": f"/api/runs/{RUN_ID}/errors.json",
    },
}


def test_progress_message_split_into_detail_rate_and_eta() -> None:
    parsed = parse_progress_message("batch 3/20 · 1,350 items/s · ETA 2 min 05 s")
    assert (parsed.detail, parsed.rate, parsed.eta) == ("batch 3/20", "1,350 items/s", "2 min 05 s")
    assert parse_progress_message("queued, position 2").detail == "queued, position 2"
    assert parse_progress_message("0.5 items/s").rate == "0.5 items/s"
    assert parse_progress_message(None).detail == ""


def test_amounts_and_percentages() -> None:
    assert format_amount(10_000) == "10,000"
    assert format_amount(1.25) == "1.2"
    assert format_amount(None) == "?"
    assert percent(25, 200) == 12.5
    assert percent(5, None) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, multiplier=2.0, attempts=6)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (6, 8.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), attempt
        assert max(delays) - min(delays) > ceiling / 10, "no jitter"


def test_summary_has_total_success_errors_log_and_duration() -> None:
    console = Console(record=True, width=120, color_system=None)
    for line in batch_summary_lines(IMAGES_RESULT["structuredContent"], "http://h:8000/api"):
        console.print(line, soft_wrap=True)
    text = console.export_text()
    assert "Total     10,000" in text
    assert "Success   9,850" in text
    assert "Errors    150" in text
    assert f"http://h:8000/api/runs/{RUN_ID}/errors.json" in text
    assert f"mcp-ws errors {RUN_ID} > errors.json" in text
    assert "Duration  24.6 s · 406 images/s" in text
    assert run_id_of(f"/api/runs/{RUN_ID}/errors.json") == RUN_ID


def test_json_lines_renderer_writes_one_object_per_event() -> None:
    stream = io.StringIO()
    renderer = JsonLinesCallRenderer(stream)
    renderer.started(tool="t", request_id="r-1", attempt=1)
    renderer.progress(
        {"progressToken": "r-1", "progress": 5, "total": 10, "message": "x · 2 items/s"}
    )
    renderer.finished(CallOutcome(OutcomeKind.CANCELLED, "r-1", 1.0, message="stopped"))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [event["event"] for event in events] == ["started", "progress", "cancelled"]
    assert events[1]["percent"] == 50.0
    assert events[1]["rate"] == "2 items/s"


def _replay(console: Console) -> None:
    """Feed a process_images run to the renderer; show the bar halfway, then the end."""
    renderer = RichCallRenderer(console, console, api_url="http://127.0.0.1:8000/api")
    console.print("[dim]$[/] mcp-ws call process_images directory=demo")
    renderer.started(tool="process_images", request_id="r-1", attempt=1)
    for done in range(0, 10_001, 250):
        renderer.progress(
            {
                "progressToken": "r-1",
                "progress": done,
                "total": 10_000,
                "message": f"img_{done:06d}.jpg · 406 items/s · ETA {(10_000 - done) // 406} s",
            }
        )
        if done == 6_000:
            console.print(renderer.renderable())
            console.print("[dim]…[/]")
    renderer.finished(CallOutcome(OutcomeKind.COMPLETED, "r-1", 24.7, result=IMAGES_RESULT))


def test_bar_and_summary_render_to_svg_for_the_docs() -> None:
    # A non-interactive console prints the bar once, in its final state, then the summary.
    console = Console(
        record=True,
        width=100,
        force_terminal=False,
        color_system="truecolor",
        highlight=False,
        file=io.StringIO(),
    )
    _replay(console)
    text = console.export_text(clear=False)
    assert "6,000/10,000  60% 406 items/s ETA 9 s" in text
    assert "10,000/10,000 100% 406 items/s" in text
    assert "Errors    150" in text
    ARTIFACTS.mkdir(exist_ok=True)
    console.save_svg(str(ARTIFACTS / "cli-progress.svg"), title="mcp-ws call process_images")
    assert (ARTIFACTS / "cli-progress.svg").read_text().startswith("<svg")


@pytest.mark.parametrize("kind", [OutcomeKind.CANCELLED, OutcomeKind.INTERRUPTED])
def test_early_endings_are_reported_on_stderr(kind: OutcomeKind) -> None:
    out, err = io.StringIO(), io.StringIO()
    renderer = RichCallRenderer(
        Console(file=out, width=100), Console(file=err, width=100), api_url="http://h/api"
    )
    renderer.started(tool="sleep", request_id="r-1", attempt=1)
    renderer.finished(CallOutcome(kind, "r-1", 1.0, message="because"))
    assert "because" in err.getvalue()
