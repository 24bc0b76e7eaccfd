"""mcp-ws against a real server: tools, calls with progress, summaries, runs, errors, Ctrl-C."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import StreamingCli, cli_env, json_lines, run_cli, run_cli_in_pty
from tests.e2e.conftest import ALPHA, Accounts
from tests.e2e.history import operations
from tests.e2e.support import Deployment, ServerProcess, wait_until

HISTORY_TIMEOUT = 15.0
DEMO_DIR = "cli-demo"
DEMO_COUNT = 80
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def run_status(deployment: Deployment, request_id: str) -> str | None:
    """The recorded status of the run of `request_id` (None when there is no row yet)."""
    rows = operations(deployment, request_id=request_id)
    return str(rows[0]["status"]) if rows else None


def wait_for_status(deployment: Deployment, request_id: str, status: str) -> None:
    """Until the history has the run of `request_id` with `status`."""
    wait_until(
        lambda: run_status(deployment, request_id) == status,
        HISTORY_TIMEOUT,
        f"run {request_id} to be {status}",
    )


@pytest.fixture(scope="module")
def demo_images(deployment: Deployment, accounts: Accounts) -> str:
    """A small demo image set (some corrupt) in tenant alpha's data directory."""
    deployment.manage(
        "make_demo_images",
        "--tenant",
        ALPHA,
        "--count",
        str(DEMO_COUNT),
        "--corrupt",
        "0.1",
        "--dir",
        DEMO_DIR,
    )
    return DEMO_DIR


def test_tools_as_json_lines_and_as_a_table(alice_env: dict[str, str]) -> None:
    listed = run_cli(["tools"], alice_env)
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json_lines(listed.stdout)}
    assert {"add", "echo", "sleep", "process_batch", "process_images"} <= names
    table = run_cli(["tools", "--no-json"], alice_env)
    assert table.returncode == 0, table.stderr
    assert "process_images" in table.stdout
    assert "directory*: string" in table.stdout


def test_call_in_json_mode_streams_rising_progress_then_the_result(
    alice_env: dict[str, str],
) -> None:
    done = run_cli(["call", "process_batch", "count=300", "item_ms=1", "--json"], alice_env)
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert events[0]["event"] == "started"
    assert events[0]["tool"] == "process_batch"
    progress = [event for event in events if event["event"] == "progress"]
    values = [event["progress"] for event in progress]
    assert len(values) >= 2
    assert all(later > earlier for earlier, later in zip(values, values[1:], strict=False))
    assert values[-1] == 300
    assert progress[-1]["total"] == 300
    assert progress[-1]["percent"] == 100.0
    assert any(event["rate"] for event in progress), "no rate in any progress message"
    assert events[-1]["event"] == "result"
    assert events.index(progress[-1]) == len(events) - 2, "the result must come last"
    assert events[-1]["isError"] is False
    assert events[-1]["structuredContent"]["processed"] == 300


def test_process_images_summary_runs_listing_and_error_log_download(
    alice_env: dict[str, str], demo_images: str, deployment: Deployment
) -> None:
    done = run_cli(["call", "process_images", f"directory={demo_images}", "--no-json"], alice_env)
    assert done.returncode == 0, done.stderr
    summary = done.stdout
    assert f"Total     {DEMO_COUNT}" in summary
    success = int(re.search(r"Success\s+(\d+)", summary).group(1))  # type: ignore[union-attr]
    errors = int(re.search(r"Errors\s+(\d+)", summary).group(1))  # type: ignore[union-attr]
    assert errors > 0
    assert success + errors == DEMO_COUNT
    assert "Duration" in summary
    match = re.search(r"Error log (http://\S+/api/runs/(\S+)/errors\.json)", summary)
    assert match, summary
    run_id = match.group(2)
    assert f"mcp-ws errors {run_id} > errors.json" in summary

    downloaded = run_cli(["errors", run_id], alice_env)
    assert downloaded.returncode == 0, downloaded.stderr
    items = json.loads(downloaded.stdout)
    assert len(items) == errors
    assert {"item", "message"} <= set(items[0])

    def listed() -> dict[str, Any] | None:
        runs = json_lines(run_cli(["runs", "--tool", "process_images"], alice_env).stdout)
        return next((run for run in runs if run["id"] == run_id), None)

    wait_until(lambda: (listed() or {}).get("status") == "succeeded", HISTORY_TIMEOUT, "the run")
    run = listed()
    assert run is not None
    assert run["error_count"] == errors
    table = run_cli(["runs", "--no-json", "--limit", "5"], alice_env)
    assert run_id in table.stdout
    assert "succeeded" in table.stdout


def test_live_bar_under_a_terminal(alice_env: dict[str, str]) -> None:
    status, output = run_cli_in_pty(["call", "process_batch", "count=400", "item_ms=2"], alice_env)
    assert status == 0, output
    plain = ANSI.sub("", output)
    assert "\x1b[" in output, "no terminal control codes: the bar was not live"
    assert "process_batch" in plain
    assert "400/400" in plain
    assert "100%" in plain
    assert re.search(r"\d+/400 +\d+% +[\d,]+ items/s", plain), plain[-2000:]
    assert "ETA" in plain
    assert '"processed":400' in plain
    assert "Duration" in plain


def test_tool_error_is_reported_with_status_1(alice_env: dict[str, str]) -> None:
    done = run_cli(["call", "divide", "a=1", "b=0", "--no-json"], alice_env)
    assert done.returncode == 1
    assert "Division by zero" in done.stderr
    unknown = run_cli(["call", "no_such_tool"], alice_env)
    assert unknown.returncode == 1
    assert "Unknown tool" in unknown.stderr


def test_ctrl_c_cancels_the_call_and_exits_130(
    alice_env: dict[str, str], deployment: Deployment
) -> None:
    cli = StreamingCli.start(["call", "process_batch", "count=5000", "item_ms=5"], alice_env)
    try:
        started = cli.next_event()
        assert started["event"] == "started"
        status, events, stderr = cli.interrupt_at_progress()
    finally:
        cli.kill()
    assert status == 130, stderr
    assert events[-1]["event"] == "cancelled"
    assert events[-1]["requestId"] == started["requestId"]
    wait_for_status(deployment, started["requestId"], "cancelled")


def test_token_from_the_config_file(home: Path, server: ServerProcess, accounts: Accounts) -> None:
    config = home / ".config" / "mcp-ws" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{server.ws_url()}"\ntoken = "{accounts.bob}"\n', encoding="utf-8")
    done = run_cli(["call", "add", "a=2", "b=3"], cli_env(home))
    assert done.returncode == 0, done.stderr
    assert json_lines(done.stdout)[-1]["structuredContent"] == {"result": 5.0}


def test_refused_token_exits_3_without_echoing_any_token(
    home: Path, server: ServerProcess, accounts: Accounts
) -> None:
    secret_in_url = "mcp_in_the_url_" + "x" * 30
    env = cli_env(home, MCP_TOKEN=accounts.alice_revoked)
    done = run_cli(["--url", f"{server.ws_url()}?token={secret_in_url}", "tools"], env)
    assert done.returncode == 3
    assert "token=***" in done.stderr
    for secret in (secret_in_url, accounts.alice_revoked):
        assert secret not in done.stderr
        assert secret not in done.stdout
    rest = run_cli(["runs", "--no-json"], cli_env(home, MCP_URL=server.ws_url()))
    assert rest.returncode == 1
    assert "401" in rest.stderr
    assert "MCP_TOKEN" in rest.stderr


def test_unreachable_server_exits_3(home: Path) -> None:
    done = run_cli(["--url", "ws://127.0.0.1:9/mcp", "call", "add", "a=1", "b=1"], cli_env(home))
    assert done.returncode == 3
    assert "cannot connect" in done.stderr
