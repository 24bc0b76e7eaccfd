"""`manage.py runcluster`: ready line, serving, Ctrl-C stops every child; failures say why.

The cluster runs as an operator runs it: a subprocess of `manage.py`, reached through its
output and its port. `--workers 0` keeps these tests independent of `manage.py runoperations`.
"""

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from mcp_server.processes import ManagedProcess
from tests.e2e.metrics_support import scrape
from tests.e2e.support import (
    COMMAND_TIMEOUT,
    HOST,
    PROJECT_DIR,
    PYTHON,
    SERVER_START_TIMEOUT,
    ServerProcess,
    base_child_env,
    create_postgres_database,
    database_url_for,
    drop_postgres_database,
    free_port,
    is_postgres_url,
    wait_until,
)

# Migrating a fresh database comes before the web process starts.
READY_TIMEOUT = 2 * SERVER_START_TIMEOUT
# The supervisor waits longer than a worker's grace (30 s) before SIGKILL; a web process alone
# stops in about a second.
STOP_TIMEOUT = 60.0
STARTED = re.compile(r"^runcluster \| started (\S+) \(pid (\d+)\)", re.MULTILINE)


@pytest.fixture
def cluster_env(tmp_path: Path, redis_url: str) -> Iterator[dict[str, str]]:
    """A child environment on a fresh database (PostgreSQL when DATABASE_URL names one)."""
    outer_url = os.environ.get("DATABASE_URL", "")
    database_name = create_postgres_database(outer_url) if is_postgres_url(outer_url) else None
    try:
        child_url = database_url_for(outer_url, database_name) if database_name else None
        env = base_child_env(tmp_path, child_url)
        env["REDIS_URL"] = redis_url
        yield env
    finally:
        if database_name is not None:
            drop_postgres_database(outer_url, database_name)


def runcluster_args(port: int) -> list[str]:
    return [
        PYTHON,
        "manage.py",
        "runcluster",
        "--web",
        "1",
        "--workers",
        "0",
        "--base-port",
        str(port),
    ]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Cluster:
    """A `runcluster` subprocess writing to a log file, and the children it said it started."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.port = free_port()
        managed = ManagedProcess.start(
            "runcluster",
            runcluster_args(self.port),
            env=env,
            cwd=PROJECT_DIR,
            log_path=root / "runcluster.log",
            group=False,
        )
        # Only its port, log and process are used: health_status(), log_text(), is_alive().
        self.supervisor = ServerProcess(port=self.port, managed=managed, env=env)

    def children(self) -> dict[str, int]:
        """Name -> pid of every child the supervisor reported starting."""
        return {name: int(pid) for name, pid in STARTED.findall(self.supervisor.log_text())}

    def wait_ready(self) -> None:
        """Until the ready line is printed (fails if the supervisor exits first)."""
        wait_until(
            lambda: "ready:" in self.supervisor.log_text() or not self.supervisor.is_alive(),
            READY_TIMEOUT,
            "the cluster's ready line",
        )
        assert self.supervisor.is_alive(), self.supervisor.log_text()

    def wait_exit(self) -> int:
        """The supervisor's exit code, once it has exited."""
        try:
            return self.supervisor.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"runcluster did not exit; its log:\n{self.supervisor.log_text()}"
            ) from None

    def kill_everything(self) -> None:
        """Clean-up after a failed test: no process of this cluster survives it."""
        self.supervisor.stop()
        for pid in self.children().values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cluster(cluster_env: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    """`runcluster --web 1 --workers 0` on a free port, ready."""
    started = Cluster(cluster_env, tmp_path)
    try:
        started.wait_ready()
        yield started
    finally:
        started.kill_everything()


def test_ctrl_c_stops_the_cluster_and_its_children(cluster: Cluster) -> None:
    log = cluster.supervisor.log_text()
    assert f"ready: ws://{HOST}:{cluster.port}/mcp" in log, log
    web = f"web-{cluster.port}"
    children = cluster.children()
    assert list(children) == [web], log
    assert cluster.supervisor.health_status() == 200
    # The child's own lines come through, prefixed with its name.
    wait_until(
        lambda: (
            re.search(rf"^{web} \| .*GET /healthz", cluster.supervisor.log_text(), re.M) is not None
        ),
        SERVER_START_TIMEOUT,
        "the web process's access line for /healthz",
    )

    cluster.supervisor.process.send_signal(signal.SIGINT)

    assert cluster.wait_exit() == 0, cluster.supervisor.log_text()
    assert not pid_alive(children[web]), f"{web} (pid {children[web]}) outlived runcluster"
    assert cluster.supervisor.health_status() is None
    assert "runcluster | stopped" in cluster.supervisor.log_text()


def test_a_child_that_dies_stops_the_cluster_naming_it(cluster: Cluster) -> None:
    web = f"web-{cluster.port}"
    os.kill(cluster.children()[web], signal.SIGKILL)

    assert cluster.wait_exit() != 0
    assert f"{web} exited unexpectedly (signal SIGKILL)" in cluster.supervisor.log_text()


def test_without_redis_it_exits_non_zero_saying_how_to_start_it(tmp_path: Path) -> None:
    closed_port = free_port()
    redis_url = f"redis://{HOST}:{closed_port}/0"
    env = {**base_child_env(tmp_path, None), "REDIS_URL": redis_url}

    completed = subprocess.run(
        runcluster_args(free_port()),
        cwd=PROJECT_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )

    assert completed.returncode != 0, completed.stdout
    assert f"Redis does not answer at {redis_url}" in completed.stderr, completed.stderr
    assert "redis-server" in completed.stderr, completed.stderr
    assert "started" not in completed.stdout, completed.stdout


def test_it_empties_the_metrics_directory_of_a_previous_run(
    cluster_env: dict[str, str], tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    stale = metrics_dir / "counter_4242.db"
    # A counter a process of an earlier run left behind, in prometheus-client's own format.
    values = MmapedDict(str(stale))
    values.write_value(
        mmap_key("mcp_refusals", "mcp_refusals_total", ["limit"], ["stale_run"], "stale"), 7.0, 0.0
    )
    values.close()
    started = Cluster({**cluster_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, tmp_path)
    try:
        started.wait_ready()
        answer = scrape(started.supervisor)
        assert answer.status == 200, answer.text
        assert "stale_run" not in answer.label_values()
        assert not stale.exists()
        assert list(metrics_dir.glob("gauge_livesum_*.db")), "the web process writes its gauges"
        started.supervisor.process.send_signal(signal.SIGINT)
        assert started.wait_exit() == 0, started.supervisor.log_text()
        # A process that exits takes its live gauges (open connections...) with it.
        assert not list(metrics_dir.glob("gauge_livesum_*.db"))
    finally:
        started.kill_everything()
