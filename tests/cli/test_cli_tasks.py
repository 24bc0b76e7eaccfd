"""mcp-ws and durable tasks against a real server (inline execution): `call --task` with
progress and the result, `--detach` then `tasks result` from a second process, `tasks list`,
`get` and `cancel`, Ctrl-C cancelling a task (and only stopping `tasks result`), and a server
restart during a task, whose interruption is reported (or, with --retry, run again)."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.restart import BACKOFF, Restart, restarted_during
from tests.cli.support import StreamingCli, cli_env, json_lines, kinds, run_cli, run_cli_in_pty
from tests.cli.test_cli_e2e import ANSI, wait_for_status
from tests.e2e.conftest import Accounts
from tests.e2e.support import Deployment

RELATED_TASK = "io.modelcontextprotocol/related-task"
# Long enough to still run when the server is stopped, short enough to finish after --retry.
RESTARTED_BATCH = ["count=60", "item_ms=100"]


def rising(events: list[dict[str, Any]]) -> list[float]:
    """The progress values of `events`, checked to rise strictly."""
    values = [event["progress"] for event in events if event["event"] == "progress"]
    assert all(later > earlier for earlier, later in zip(values, values[1:], strict=False)), values
    return values


def task_of(env: dict[str, str], task_id: str) -> dict[str, Any]:
    """`mcp-ws tasks get ID` as JSON."""
    done = run_cli(["tasks", "get", task_id], env)
    assert done.returncode == 0, done.stderr
    (task,) = json_lines(done.stdout)
    return task


def detach(env: dict[str, str], *arguments: str) -> str:
    """`mcp-ws call process_batch ARGS --detach`; the task id it printed."""
    done = run_cli(["call", "process_batch", *arguments, "--detach"], env)
    assert done.returncode == 0, done.stderr
    # The task's first progress may reach the client before the reply that created it (the
    # server sends both while the task starts): a progress line may come before the task's.
    events = [event for event in json_lines(done.stdout) if event["event"] != "progress"]
    assert kinds(events) == ["started", "task", "detached"], events
    assert events[1]["status"] == "working"
    assert events[-1]["taskId"] == events[1]["taskId"]
    return str(events[-1]["taskId"])


def test_call_as_a_task_streams_rising_progress_then_the_result(
    alice_env: dict[str, str], deployment: Deployment
) -> None:
    done = run_cli(["call", "process_batch", "count=300", "item_ms=1", "--task"], alice_env)
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    names = kinds(events)
    # As in `detach`: the task's first progress may come before the reply that created it.
    opening = [event for event in events if event["event"] != "progress"][:3]
    assert kinds(opening) == ["started", "task", "attached"], names
    started, task, attached = opening
    task_id = task["taskId"]
    assert task["status"] == "working"
    assert task["ttl"] > 0 and task["pollInterval"] > 0
    assert attached == {**attached, "taskId": task_id, "again": False}
    values = rising(events)
    assert len(values) >= 2 and values[-1] == 300
    progress = [event for event in events if event["event"] == "progress"]
    assert progress[-1]["total"] == 300 and progress[-1]["percent"] == 100.0
    assert any(event["rate"] for event in progress), "no rate in any progress message"
    result = events[-1]
    assert result["event"] == "result", names
    assert result["isError"] is False
    assert result["structuredContent"]["processed"] == 300
    assert result["taskId"] == task_id
    assert result["requestId"] == started["requestId"]
    statuses = [event for event in events if event["event"] == "task_status"]
    assert statuses and statuses[-1]["status"] == "completed"
    # The task is recorded: tasks get, tasks list, and the run in the history.
    assert task_of(alice_env, task_id)["status"] == "completed"
    listed = json_lines(run_cli(["tasks", "list", "--limit", "50"], alice_env).stdout)
    assert task_id in [task["taskId"] for task in listed]
    wait_for_status(deployment, started["requestId"], "succeeded")


def test_detach_then_a_second_cli_follows_the_task_to_its_result(
    alice_env: dict[str, str],
) -> None:
    # About 5 s of work: the second CLI attaches long before it ends.
    task_id = detach(alice_env, "count=100", "item_ms=50")
    done = run_cli(["tasks", "result", task_id], alice_env)
    assert done.returncode == 0, done.stderr
    events = json_lines(done.stdout)
    assert events[0] == {**events[0], "event": "attached", "taskId": task_id}
    assert rising(events)[-1] == 100
    assert events[-1]["event"] == "result"
    assert events[-1]["structuredContent"]["processed"] == 100
    assert events[-1]["taskId"] == task_id
    # Once ended, the result is still there (from history), at once.
    again = run_cli(["tasks", "result", task_id], alice_env)
    assert again.returncode == 0, again.stderr
    assert json_lines(again.stdout)[-1]["structuredContent"]["processed"] == 100


def test_detach_prints_only_the_id_for_scripts_and_the_bar_follows_it(
    alice_env: dict[str, str],
) -> None:
    # About 5 s of work, so the bar has something to follow.
    done = run_cli(
        ["call", "process_batch", "count=200", "item_ms=25", "--detach", "--no-json"], alice_env
    )
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id), done.stdout
    assert f"mcp-ws tasks result {task_id}" in " ".join(done.stderr.split())
    status, output = run_cli_in_pty(["tasks", "result", task_id], alice_env)
    assert status == 0, output
    plain = ANSI.sub("", output)
    assert "\x1b[" in output, "no terminal control codes: the bar was not live"
    assert f"Following task {task_id}" in plain
    assert "200/200" in plain and "100%" in plain
    assert '"processed":200' in plain


def test_ctrl_c_cancels_the_task_with_tasks_cancel_and_exits_130(
    alice_env: dict[str, str], deployment: Deployment
) -> None:
    cli = StreamingCli.start(
        ["call", "process_batch", "count=5000", "item_ms=5", "--task"], alice_env
    )
    try:
        started = cli.next_event()
        task = cli.wait_for_event(lambda event: event["event"] == "task")
        status, events, stderr = cli.interrupt_at_progress()
    finally:
        cli.kill()
    assert status == 130, stderr
    last = events[-1]
    assert last["event"] == "cancelled", events[-3:]
    assert last["taskId"] == task["taskId"]
    assert last["status"] == "cancelled"
    assert f"task {task['taskId']} is cancelled" in last["message"]
    got = task_of(alice_env, task["taskId"])
    assert got["status"] == "cancelled"
    wait_for_status(deployment, started["requestId"], "cancelled")
    # Cancelling it again: it has already ended.
    again = run_cli(["tasks", "cancel", task["taskId"]], alice_env)
    assert again.returncode == 1
    assert "already ended (cancelled)" in again.stderr


def test_ctrl_c_on_tasks_result_stops_following_and_tasks_cancel_stops_the_task(
    alice_env: dict[str, str],
) -> None:
    task_id = detach(alice_env, "count=5000", "item_ms=5")
    cli = StreamingCli.start(["tasks", "result", task_id], alice_env)
    try:
        status, events, stderr = cli.interrupt_at_progress()
    finally:
        cli.kill()
    assert status == 130, stderr
    assert events[-1]["event"] == "cancelled"
    assert "goes on running" in events[-1]["message"]
    assert task_of(alice_env, task_id)["status"] == "working"

    cancelled = run_cli(["tasks", "cancel", task_id, "--no-json"], alice_env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert re.search(r"Status\s+cancelled", cancelled.stdout), cancelled.stdout
    assert task_of(alice_env, task_id)["status"] == "cancelled"
    # Someone else cancelled it: following it now says so, with status 1.
    followed = run_cli(["tasks", "result", task_id], alice_env)
    assert followed.returncode == 1, followed.stderr
    ended = json_lines(followed.stdout)[-1]
    assert ended == {**ended, "event": "failed", "status": "cancelled", "taskId": task_id}


def test_tasks_list_and_get_for_people_and_unknown_or_foreign_ids(
    alice_env: dict[str, str], home: Path, accounts: Accounts
) -> None:
    task_id = detach(alice_env, "count=20", "item_ms=1")
    table = run_cli(["tasks", "list", "--no-json"], alice_env)
    assert table.returncode == 0, table.stderr
    assert task_id in table.stdout
    shown = run_cli(["tasks", "get", task_id, "--no-json"], alice_env)
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"Task\s+{task_id}", shown.stdout)
    assert re.search(r"TTL\s+\S+", shown.stdout)
    unknown = run_cli(["tasks", "get", "no-such-task"], alice_env)
    assert unknown.returncode == 1
    assert "Unknown task: no-such-task" in unknown.stderr
    # Another user's task is an unknown one, for every command.
    bob = cli_env(home, MCP_URL=alice_env["MCP_URL"], MCP_TOKEN=accounts.bob)
    for action in ("get", "result", "cancel"):
        foreign = run_cli(["tasks", action, task_id], bob)
        assert foreign.returncode == 1, (action, foreign.stdout)
        assert f"Unknown task: {task_id}" in foreign.stderr
    assert task_id not in run_cli(["tasks", "list"], bob).stdout


def test_a_tool_without_task_support_is_refused_as_a_task(alice_env: dict[str, str]) -> None:
    done = run_cli(["call", "sleep", "seconds=1", "--task"], alice_env)
    assert done.returncode == 1
    assert "does not support tasks" in done.stderr


# --- a server restart during a task (inline execution: the task dies with its process) ---


@pytest.fixture(scope="module")
def restart(
    deployment: Deployment, accounts: Accounts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restart]:
    """Start a dedicated server and two task calls; SIGTERM it; start a new one on the port."""
    with restarted_during(
        deployment,
        Path(tmp_path_factory.mktemp("cli-task-home")),
        accounts.alice,
        reported=["call", "process_batch", *RESTARTED_BATCH, "--task", *BACKOFF],
        retried=["call", "process_batch", *RESTARTED_BATCH, "--task", "--retry", *BACKOFF],
    ) as restart:
        yield restart


def test_after_a_restart_the_task_is_re_attached_and_reported_interrupted(
    restart: Restart,
) -> None:
    ended = restart.reported
    assert ended.status == 4, ended.stderr
    names = kinds(ended.events)
    task_id = ended.events[names.index("task")]["taskId"]
    lost = names.index("connection_lost")
    assert "progress" in names[:lost]
    assert "reconnected" in names[lost:]
    reattached = [event for event in ended.events[lost:] if event["event"] == "attached"]
    assert reattached and reattached[0]["again"] is True
    assert reattached[0]["taskId"] == task_id
    last = ended.events[-1]
    assert last["event"] == "interrupted", names
    assert last["taskId"] == task_id
    assert last["status"] == "interrupted"
    assert f"task {task_id} was interrupted on the server" in last["message"]
    assert "--retry" in last["message"]
    got = task_of(restart.env, task_id)
    assert got["status"] == "failed"
    assert got.get("statusMessage"), got  # why it failed, in the server's words


def test_with_retry_an_interrupted_task_is_created_again_and_completes(
    restart: Restart,
) -> None:
    ended = restart.retried
    assert ended.status == 0, ended.stderr
    names = kinds(ended.events)
    starts = [event for event in ended.events if event["event"] == "started"]
    assert [event["attempt"] for event in starts] == [1, 2]
    tasks = [event["taskId"] for event in ended.events if event["event"] == "task"]
    assert len(tasks) == 2 and tasks[0] != tasks[1]
    second_run = ended.events[names.index("started", 1) :]
    assert rising(second_run)[-1] == 60
    assert ended.events[-1]["event"] == "result"
    assert ended.events[-1]["taskId"] == tasks[1]
    assert ended.events[-1]["structuredContent"]["processed"] == 60
    assert task_of(restart.env, tasks[0])["status"] == "failed"
