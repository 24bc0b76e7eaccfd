"""The CLI through a server restart: it reconnects with backoff, then reports the interrupted
call (exit 4) or, with --retry, runs it again and succeeds."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.restart import BACKOFF, Restart, restarted_during
from tests.cli.test_cli_e2e import run_status
from tests.e2e.conftest import Accounts
from tests.e2e.support import Deployment

RETRIED_SECONDS = 2


@pytest.fixture(scope="module")
def restart(
    deployment: Deployment, accounts: Accounts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restart]:
    """Start a dedicated server and two calls; SIGTERM it; start a new one on the same port."""
    with restarted_during(
        deployment,
        Path(tmp_path_factory.mktemp("cli-home")),
        accounts.alice,
        reported=["call", "sleep", "seconds=60", *BACKOFF],
        retried=["call", "sleep", f"seconds={RETRIED_SECONDS}", "--retry", *BACKOFF],
    ) as restart:
        yield restart


def test_reconnects_then_reports_the_interrupted_call(
    restart: Restart, deployment: Deployment
) -> None:
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
    status = run_status(deployment, ended.events[0]["requestId"])
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
