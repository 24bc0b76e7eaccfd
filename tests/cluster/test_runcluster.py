"""`manage.py runcluster`: the cluster serves, a process that dies is restarted while the
others keep serving, Ctrl-C stops every process; failures say why.

The cluster runs as an operator runs it: a subprocess of `manage.py` (which becomes
supervisord), reached through its output, its ports and its processes' log files.
"""

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from mcp_server.processes import ManagedProcess, http_ok
from tests.cluster.support import WORKER_READY_LINE
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
    pid_alive,
    wait_until,
)

# Migrating a fresh database comes before the processes start.
READY_TIMEOUT = 2 * SERVER_START_TIMEOUT
# supervisord waits longer than a worker's grace (30 s) before SIGKILL; a web process alone
# stops in about a second.
STOP_TIMEOUT = 60.0
SPAWNED = re.compile(r" spawned: '(\S+)' with pid (\d+)")


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


def runcluster_args(port: int, *, web: int = 1, workers: int = 0) -> list[str]:
    return [
        PYTHON,
        "manage.py",
        "runcluster",
        "--web",
        str(web),
        "--workers",
        str(workers),
        "--base-port",
        str(port),
    ]


def healthy(port: int) -> bool:
    return http_ok(f"http://{HOST}:{port}/healthz")


class Cluster:
    """A `runcluster` subprocess writing to a log file, and the processes supervisord started."""

    def __init__(self, env: dict[str, str], root: Path, *, web: int = 1, workers: int = 0):
        self.root = root
        # Consecutive ports from a free one: the second may be taken, very rarely.
        self.port = free_port()
        self.ports = list(range(self.port, self.port + web))
        managed = ManagedProcess.start(
            "runcluster",
            runcluster_args(self.port, web=web, workers=workers),
            env=env,
            cwd=PROJECT_DIR,
            log_path=root / "runcluster.log",
            group=False,
        )
        # Only its port, log and process are used: log_text(), is_alive(), scrape().
        self.supervisor = ServerProcess(port=self.port, managed=managed, env=env)

    def children(self) -> dict[str, int]:
        """Name -> pid of the latest start supervisord reported of each process."""
        return {name: int(pid) for name, pid in SPAWNED.findall(self.supervisor.log_text())}

    def child_log(self, name: str) -> str:
        """What the process `name` wrote (in every one of its runs)."""
        path = self.root / "cluster" / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_ready(self, workers: int = 0) -> None:
        """Until every web port answers /healthz and every worker runs (fails if it exits)."""
        wait_until(
            lambda: (
                not self.supervisor.is_alive()
                or (
                    all(healthy(port) for port in self.ports)
                    and all(
                        WORKER_READY_LINE in self.child_log(f"worker-{n}")
                        for n in range(1, workers + 1)
                    )
                )
            ),
            READY_TIMEOUT,
            "every process of the cluster to serve",
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


def test_ctrl_c_stops_the_cluster_and_its_processes(cluster: Cluster) -> None:
    log = cluster.supervisor.log_text()
    assert f"serving ws://{HOST}:{cluster.port}/mcp" in log, log
    web = f"web-{cluster.port}"
    children = cluster.children()
    assert list(children) == [web], log
    # The process's own lines go to its log file.
    wait_until(
        lambda: "GET /healthz" in cluster.child_log(web),
        SERVER_START_TIMEOUT,
        "the web process's access line for /healthz",
    )

    cluster.supervisor.process.send_signal(signal.SIGINT)

    assert cluster.wait_exit() == 0, cluster.supervisor.log_text()
    assert not pid_alive(children[web]), f"{web} (pid {children[web]}) outlived runcluster"
    assert not healthy(cluster.port)
    assert f"stopped: {web} (exit status 0)" in cluster.supervisor.log_text()


def test_a_killed_web_process_or_worker_is_restarted_while_the_others_serve(
    cluster_env: dict[str, str], tmp_path: Path
) -> None:
    cluster = Cluster(cluster_env, tmp_path, web=2, workers=1)
    try:
        cluster.wait_ready(workers=1)
        first, second = (f"web-{port}" for port in cluster.ports)
        before = cluster.children()
        assert set(before) == {first, second, "worker-1"}, cluster.supervisor.log_text()

        os.kill(before[first], signal.SIGKILL)
        wait_until(
            lambda: cluster.children()[first] != before[first],
            READY_TIMEOUT,
            f"supervisord to start {first} again",
        )
        # The other one served all along, untouched.
        assert healthy(cluster.ports[1])
        wait_until(lambda: healthy(cluster.ports[0]), READY_TIMEOUT, f"{first} to serve again")
        os.kill(before["worker-1"], signal.SIGKILL)
        wait_until(
            lambda: cluster.children()["worker-1"] != before["worker-1"],
            READY_TIMEOUT,
            "supervisord to start the worker again",
        )
        wait_until(
            lambda: cluster.child_log("worker-1").count(WORKER_READY_LINE) == 2,
            READY_TIMEOUT,
            "the new worker to take work",
        )

        log = cluster.supervisor.log_text()
        assert f"exited: {first} (terminated by SIGKILL; not expected)" in log, log
        assert "exited: worker-1 (terminated by SIGKILL; not expected)" in log, log
        after = cluster.children()
        assert after[second] == before[second]
        assert after["worker-1"] != before["worker-1"]
        assert all(healthy(port) for port in cluster.ports)
        assert cluster.supervisor.is_alive()
    finally:
        cluster.kill_everything()


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
