"""mcp-ws with tasks run by a worker process (MCP_EXECUTION=worker, on Redis and PostgreSQL as
the cluster tests run them): the web process restarts during a task, the CLI reconnects to its
successor and re-attaches with `tasks/result`; the progress goes on and the result arrives."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import StreamingCli, cli_env, json_lines, run_cli
from tests.cli.test_cli_tasks import BACKOFF, kinds, rising
from tests.cluster.support import start_worker, worker_mode_deployment
from tests.e2e.support import (
    Deployment,
    free_port,
    start_server_on_port,
    tenant_command,
    token_command,
    user_command,
)
from tests.e2e.templates import DatabaseTemplates

# About 15 s of work: it outlasts the web restart (a few seconds) by a wide margin.
COUNT = 150
ITEM_MS = 100


@dataclass(frozen=True)
class WorkerDeployment:
    """A deployment whose web processes hand tasks to workers, and a user's token."""

    deployment: Deployment
    token: str


@pytest.fixture(scope="module")
def worker_deployment(
    tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates
) -> Iterator[WorkerDeployment]:
    """A migrated installation on a fresh PostgreSQL database, in worker mode, with alice."""
    root = tmp_path_factory.mktemp("cli-worker")
    with worker_mode_deployment(root, database_templates) as deployment:
        *_, token = deployment.run_together(
            [
                tenant_command("alpha"),
                user_command("alice", "alpha"),
                token_command("alice", name="alice-cli"),
            ]
        )
        yield WorkerDeployment(deployment, token)


def test_a_web_restart_during_a_task_is_re_attached_and_the_result_arrives(
    worker_deployment: WorkerDeployment, tmp_path: Path
) -> None:
    deployment = worker_deployment.deployment
    port = free_port()
    worker = start_worker(deployment, {})
    first = start_server_on_port(deployment, port)
    second = None
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(home, MCP_URL=first.ws_url(), MCP_TOKEN=worker_deployment.token)
    cli = StreamingCli.start(
        ["call", "process_batch", f"count={COUNT}", f"item_ms={ITEM_MS}", "--task", *BACKOFF], env
    )
    try:
        task = cli.wait_for_event(lambda event: event["event"] == "task")
        before = cli.wait_for_event(lambda event: event["event"] == "progress")
        first.stop()
        second = start_server_on_port(deployment, port)
        status, events, stderr = cli.finish()
        got = json_lines(run_cli(["tasks", "get", task["taskId"]], env).stdout)
    finally:
        cli.kill()
        first.stop()
        if second is not None:
            second.stop()
        worker.stop()
    logs = f"{stderr}\n--- worker ---\n{worker.log_text()}"
    assert status == 0, logs
    names = kinds(events)
    lost = names.index("connection_lost")
    notices = [event for event in events[:lost] if event["event"] == "notice"]
    assert any(event["data"].get("reason") == "shutdown" for event in notices), names
    reattached = lost + names[lost:].index("attached")
    assert "reconnected" in names[lost:reattached]
    assert events[reattached] == {**events[reattached], "taskId": task["taskId"], "again": True}
    # The progress goes on past where it was, and rises strictly throughout.
    values = rising(events)
    after = [event["progress"] for event in events[reattached:] if event["event"] == "progress"]
    assert after, f"no progress after re-attaching: {names}"
    assert after[0] > before["progress"]
    assert values[-1] == COUNT
    result: dict[str, Any] = events[-1]
    assert result["event"] == "result", names
    assert result["taskId"] == task["taskId"]
    assert result["structuredContent"]["processed"] == COUNT
    assert got == [{**got[0], "taskId": task["taskId"], "status": "completed"}]
