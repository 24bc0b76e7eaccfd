"""The CLI through a server restart: it reconnects with backoff, then reports the interrupted
call (exit 4) or, with --retry, runs it again and succeeds."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import StreamingCli, cli_env
from tests.cli.test_cli_e2e import run_status
from tests.e2e.conftest import Accounts
from tests.e2e.support import Deployment, free_port, start_server_on_port

# Small delays so the CLI keeps trying while the new server boots (about 2-3 s).
BACKOFF = ["--reconnect-attempts", "60", "--backoff-initial", "0.1", "--backoff-max", "0.4"]
RETRIED_SECONDS = 2


@dataclass(frozen=True)
class Ended:
    """How one CLI ended."""

    status: int
    events: list[dict[str, Any]]
    stderr: str

    def kinds(self) -> list[str]:
        """The event names, in order."""
        return [event["event"] for event in self.events]


@dataclass(frozen=True)
class Restart:
    """Two calls that were in flight when the server restarted on the same port."""

    reported: Ended
    retried: Ended
    deployment: Deployment


@pytest.fixture(scope="module")
def restart(
    deployment: Deployment, accounts: Accounts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restart]:
    """Start a dedicated server and two calls; SIGTERM it; start a new one on the same port."""
    port = free_port()
    home = Path(tmp_path_factory.mktemp("cli-home"))
    first = start_server_on_port(deployment, port)
    env = cli_env(home, MCP_URL=first.ws_url(), MCP_TOKEN=accounts.alice)
    reported = StreamingCli.start(["call", "sleep", "seconds=60", *BACKOFF], env)
    retried = StreamingCli.start(
        ["call", "sleep", f"seconds={RETRIED_SECONDS}", "--retry", *BACKOFF], env
    )
    second = None
    try:
        for cli in (reported, retried):
            cli.wait_for_event(lambda event: event["event"] == "progress")
        first.stop()
        second = start_server_on_port(deployment, port)
        outcomes = [Ended(*cli.finish()) for cli in (reported, retried)]
        yield Restart(reported=outcomes[0], retried=outcomes[1], deployment=deployment)
    finally:
        for cli in (reported, retried):
            cli.kill()
        first.stop()
        if second is not None:
            second.stop()


def test_reconnects_then_reports_the_interrupted_call(restart: Restart) -> None:
    ended = restart.reported
    assert ended.status == 4, ended.stderr
    kinds = ended.kinds()
    assert kinds[0] == "started"
    lost = kinds.index("connection_lost")
    assert "progress" in kinds[:lost]
    assert kinds[lost + 1] == "reconnecting"
    assert "reconnected" in kinds
    assert kinds[-1] == "interrupted"
    assert "interrupted by the disconnect" in ended.events[-1]["message"]
    assert "--retry" in ended.events[-1]["message"]
    reconnecting = [event for event in ended.events if event["event"] == "reconnecting"]
    assert [event["attempt"] for event in reconnecting] == list(range(1, len(reconnecting) + 1))
    assert all(0 < event["delay"] <= 0.4 for event in reconnecting)
    status = run_status(restart.deployment, ended.events[0]["requestId"])
    assert status in {"interrupted", "cancelled"}, status


def test_with_retry_the_call_runs_again_and_succeeds(restart: Restart) -> None:
    ended = restart.retried
    assert ended.status == 0, ended.stderr
    kinds = ended.kinds()
    starts = [event for event in ended.events if event["event"] == "started"]
    assert [event["attempt"] for event in starts] == [1, 2]
    assert kinds.index("connection_lost") < kinds.index("reconnected") < kinds.index("started", 1)
    second_run = ended.events[kinds.index("started", 1) :]
    progress = [event["progress"] for event in second_run if event["event"] == "progress"]
    assert progress and all(b > a for a, b in zip(progress, progress[1:], strict=False))
    assert ended.events[-1]["event"] == "result"
    assert ended.events[-1]["isError"] is False
    assert ended.events[-1]["content"][0]["text"] == f"slept {RETRIED_SECONDS} s"
    assert ended.events[-1]["requestId"] == starts[1]["requestId"]
