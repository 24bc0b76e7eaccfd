"""A deployment for the scale-out benchmark: a fresh PostgreSQL database, a Redis key prefix
of its own, one account, and the web and worker processes started from it.

Nothing here imports the product: processes are started with `manage.py`, as an operator
would (see docs/operations.md), and stopped on every exit path.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

from bench.process import (
    ServerProcess,
    free_port,
    http_ok,
    logged_errors,
    spawn,
    wait_until,
)
from bench.targets import BENCH_LIMITS, HOST, PYTHON, ROOT, create_account

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
WORKER_READY_LINE = "takes work from mcp-operations"
START_TIMEOUT = 30.0
# Stopping: web processes say goodbye within MCP_SHUTDOWN_TIMEOUT, workers drain within
# MCP_WORKER_GRACE; both are short here (nothing should be running when they are stopped).
SHUTDOWN_TIMEOUT_S = 5
WORKER_GRACE_S = 5


def database_url_for(server_url: str, database: str) -> str:
    """`server_url` with its database name replaced."""
    return urlsplit(server_url)._replace(path=f"/{database}").geturl()


def services_available(postgres_url: str, redis_url: str) -> str | None:
    """Why the cluster benchmark cannot run here (PostgreSQL or Redis unreachable), or None."""
    try:
        with psycopg.connect(postgres_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {postgres_url} is unreachable: {exc}"
    return redis_unavailable(redis_url)


def redis_unavailable(url: str) -> str | None:
    """Why Redis at `url` cannot be used, or None when it answers."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"Redis at {url} is unreachable: {exc}"
    return None


def redis_server_pid(redis_url: str) -> int | None:
    """The process id of the Redis server (INFO server), when it runs on this machine."""
    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    try:
        pid = int(client.info("server").get("process_id", 0))
    except (redis.RedisError, ValueError):
        return None
    finally:
        client.close()
    return pid if pid and Path(f"/proc/{pid}").exists() else None


@dataclass
class ClusterDeployment:
    """One installation: a database made for this run, an account, and a channel prefix."""

    postgres_url: str
    redis_url: str
    var_dir: Path
    account: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")
    prefix: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}-")
    database: str | None = None
    token: str | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    @property
    def database_url(self) -> str:
        """DATABASE_URL of every process."""
        if self.database is None:
            raise RuntimeError("ClusterDeployment.create() has not run")
        return database_url_for(self.postgres_url, self.database)

    def env(self, execution: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of every process: production settings, this database and prefix."""
        scrubbed = ("MCP_", "DATABASE_", "REDIS_", "DJANGO_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(scrubbed)}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DJANGO_DEBUG="false",
            SECRET_KEY=self.secret_key,
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            MCP_VAR_DIR=str(self.var_dir),
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            MCP_CHANNEL_PREFIX=self.prefix,
            MCP_EXECUTION=execution,
            MCP_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT_S),
            MCP_WORKER_GRACE=str(WORKER_GRACE_S),
            **BENCH_LIMITS,
        )
        env.update(BENCH_LIMITS)
        env.update(extra or {})
        return env

    def create(self) -> None:
        """Create the database, migrate it, and make a tenant, a user and a token."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        name = f"mcp_bench_{secrets.token_hex(6)}"
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.database = name
        self.token = create_account(self.env("inline"), self.account)

    def drop(self) -> None:
        """Drop the database (even with sessions open) and this run's Redis keys."""
        if self.database is not None:
            with psycopg.connect(self.postgres_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.database)
                    )
                )
            self.database = None
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()

    def ws_url(self, port: int) -> str:
        """The MCP endpoint of the web process on `port`, with the token."""
        return f"ws://{HOST}:{port}/mcp?token={self.token}"


@dataclass
class ClusterProcesses:
    """The web processes and workers of one measurement, with their ports and logs."""

    web: list[ServerProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    workers: list[ServerProcess] = field(default_factory=list)

    @property
    def all(self) -> list[ServerProcess]:
        """Every process, web first."""
        return [*self.web, *self.workers]

    def check_alive(self, during: str) -> None:
        """Fail, with the log tail, when a process died."""
        for process in self.all:
            if not process.alive():
                raise RuntimeError(f"{process.name} died during {during}:\n{process.log_tail()}")

    def stop(self) -> None:
        """Stop the workers first (nothing should be running), then the web processes."""
        for process in [*self.workers, *self.web]:
            with contextlib.suppress(Exception):
                process.stop()


def error_lines(processes: ClusterProcesses) -> dict[str, list[str]]:
    """The lines of each process's log that report an error."""
    found: dict[str, list[str]] = {}
    for process in processes.all:
        hits = logged_errors(process.log_path)
        if hits:
            found[process.name] = hits
    return found


def count_in_logs(processes: ClusterProcesses, needle: str) -> int:
    """How many log lines of all processes contain `needle`."""
    total = 0
    for process in processes.all:
        with contextlib.suppress(OSError):
            total += sum(needle in line for line in process.log_path.read_text().splitlines())
    return total


@contextlib.contextmanager
def running_cluster(
    deployment: ClusterDeployment,
    *,
    name: str,
    execution: str,
    web: int,
    workers: int,
    cpu: int | None,
    logs: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[ClusterProcesses]:
    """Start `web` serve processes and `workers` runoperations, all on `cpu` (None: not
    pinned); ready when every /healthz answers and every worker says it takes work."""
    env = deployment.env(execution, extra_env)
    processes = ClusterProcesses()
    try:
        for index in range(web):
            port = free_port()
            command = [PYTHON, "manage.py", "serve", "--host", HOST, "--port", str(port)]
            process = spawn(
                f"{name}-web{index + 1}",
                command,
                env=env,
                cwd=ROOT,
                log_path=logs / f"{name}-web{index + 1}.log",
                cpu=cpu,
            )
            processes.web.append(process)
            processes.ports.append(port)
        # INFO for workers: their ready line is logged at INFO (they log nothing per call).
        worker_env = {**env, "LOG_LEVEL": "INFO"}
        for index in range(workers):
            processes.workers.append(
                spawn(
                    f"{name}-worker{index + 1}",
                    [PYTHON, "manage.py", "runoperations"],
                    env=worker_env,
                    cwd=ROOT,
                    log_path=logs / f"{name}-worker{index + 1}.log",
                    cpu=cpu,
                )
            )
        for process, port in zip(processes.web, processes.ports, strict=True):
            url = f"http://{HOST}:{port}/healthz"
            _wait_ready(process, functools.partial(http_ok, url), f"{process.name} at {url}")
        for process in processes.workers:
            ready = functools.partial(_worker_ready, process)
            _wait_ready(process, ready, f"{process.name} ready line")
        yield processes
    finally:
        processes.stop()


def _worker_ready(process: ServerProcess) -> bool:
    try:
        return WORKER_READY_LINE in process.log_path.read_text(errors="replace")
    except OSError:
        return False


def _wait_ready(process: ServerProcess, ready: Callable[[], bool], what: str) -> None:
    try:
        wait_until(ready, timeout=START_TIMEOUT, what=what, alive=process.alive)
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"{exc}\n--- {process.name} log ---\n{process.log_tail()}") from exc


def read_status_kib(pid: int, field_name: str) -> int | None:
    """A KiB field of /proc/PID/status (VmRSS, VmHWM), or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return None
