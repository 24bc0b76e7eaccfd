"""The servers under test and their deployments, set up with `manage.py` as an operator would
(docs/operations.md); nothing here imports the product's Django code."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

from bench.http_load import HTTP_KINDS
from bench.report import ROOT
from bench.scenarios import LoadTarget
from clients.envs import DJANGO_MCPZ, PythonEnv
from clients.envs import FASTMCP as FASTMCP_ENV
from mcp_server.processes import ManagedProcess, free_port, run_checked, scrubbed_env, stop_all

PYTHON = sys.executable
HOST = "127.0.0.1"
# process_images inputs: the demo set and a small set to warm the server up on.
DEMO_DIR, WARMUP_DIR, WARMUP_IMAGES = "demo", "warmup", 200
IMAGES_TIMEOUT = 900.0
# Tenant isolation limits far above any load the benchmarks make, but left on: the figures
# include the cost of checking them, never a refusal (10,000 calls queued on one connection,
# 10,000 connections of one user). Idle clients never answer MCP pings: those wait an hour.
LIMITS = "MAX_CONNECTIONS_PER_USER MAX_CONNECTIONS_PER_TENANT MAX_IN_FLIGHT_PER_CONNECTION "
LIMITS += "MAX_IN_FLIGHT_PER_USER MAX_IN_FLIGHT_PER_TENANT MESSAGE_RATE_PER_USER "
LIMITS += "MESSAGE_BURST_PER_USER MESSAGE_RATE_PER_TENANT MESSAGE_BURST_PER_TENANT "
LIMITS += "API_REQUESTS_PER_MINUTE_USER API_REQUESTS_PER_MINUTE_TENANT HTTP_SESSIONS_PER_USER "
LIMITS += "HTTP_SESSIONS_PER_TENANT"
BENCH_LIMITS = {f"MCP_{name}": str(10**9) for name in LIMITS.split()}
BENCH_LIMITS["MCP_CLIENT_PING_INTERVAL"] = "3600"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
WORKER_READY_LINE = "takes work from the dispatch streams"
# Short: nothing should be running when a deployment is stopped.
SHUTDOWN_TIMEOUT_S = 5


def manage(env: Mapping[str, str], *args: str, timeout: float = 120.0) -> str:
    """Run `manage.py ARGS` with `env` from the repository root; its stdout."""
    return run_checked([PYTHON, "manage.py", *args], env=env, cwd=ROOT, timeout=timeout)


def create_account(env: Mapping[str, str], account: str) -> str:
    """Migrate the database of `env`, make tenant and user `account` and a token; the token."""
    manage(env, "migrate", "--noinput")
    manage(env, "createtenant", account)
    manage(env, "createuser", account, "--tenant", account)
    lines = manage(env, "createtoken", account).strip().splitlines()
    if not lines or not lines[-1].strip():
        raise RuntimeError("createtoken printed no token")
    return lines[-1].strip()


def create_database(server_url: str) -> tuple[str, str]:
    """A new empty database on the PostgreSQL server of `server_url`: its name and URL."""
    name = f"mcp_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, urlsplit(server_url)._replace(path=f"/{name}").geturl()


def drop_database(server_url: str, name: str) -> None:
    """Drop a database of `create_database`, even with sessions open."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


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


def services_unavailable(postgres_url: str, redis_url: str) -> str | None:
    """Why the cluster benchmark cannot run here (PostgreSQL or Redis unreachable), or None."""
    try:
        with psycopg.connect(postgres_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {postgres_url} is unreachable: {exc}"
    return redis_unavailable(redis_url)


def serve_command(port: int) -> list[str]:
    """`manage.py serve` on `port`."""
    return [PYTHON, "manage.py", "serve", "--host", HOST, "--port", str(port)]


def start_process(
    name: str, command: list[str], env: Mapping[str, str], logs: Path, cpu: int | None
) -> ManagedProcess:
    """A benchmark process from the repository root, on `cpu`, logging to `logs/NAME.log`."""
    log_path = logs / f"{name}.log"
    return ManagedProcess.start(
        name, command, env=env, cwd=ROOT, log_path=log_path, cpu=cpu, benchmark=True
    )


def production_env(var_dir: Path, **settings: str) -> dict[str, str]:
    """Production settings for a process of this benchmark, quiet logs and BENCH_LIMITS."""
    env = scrubbed_env(names=())
    env.update(
        MCP_VAR_DIR=str(var_dir),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",
        PYTHONUNBUFFERED="1",
    )
    return env | BENCH_LIMITS | settings


class Target(ABC):
    """A server the harness starts on a port and points the load generator at."""

    key: str
    title: str
    description: str
    kinds: tuple[str, ...] | None = None  # the scenario kinds it runs (None: all)

    def prepare(self, workdir: Path) -> None:  # noqa: B027 - an optional hook
        """One-time setup before the first start (database, credentials); none by default."""

    @abstractmethod
    def command(self, port: int) -> list[str]:
        """The server's command line."""

    def env(self) -> dict[str, str]:
        """The server's environment."""
        return dict(os.environ)

    def load_target(self, port: int, pid: int, cpu: int | None) -> LoadTarget:
        """Where the load generator finds the server on `port` (process `pid`, on `cpu`)."""
        return LoadTarget([f"ws://{HOST}:{port}/mcp"], {"server": pid}, cpu)


@dataclass
class ServiceSetup:
    """A fresh database, two tenants' tokens and demo images for this service's variants."""

    database_url: str | None = None
    var_dir: Path | None = None
    images: int = 0  # demo images for process_images (0: none)
    token: str | None = None
    peer_token: str | None = None  # a second tenant's, for tenants side by side
    account: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")

    @property
    def tenant_root(self) -> Path:
        """The bench tenant's data directory (where the demo images and thumbnails go)."""
        assert self.var_dir is not None
        return self.var_dir / "data" / self.account

    def env(self) -> dict[str, str]:
        """SQLite in the temp dir (or --database-url), no Redis."""
        assert self.var_dir is not None
        extra = {"DATABASE_URL": self.database_url} if self.database_url else {}
        return production_env(self.var_dir, MCP_DATA_ROOT=str(self.var_dir / "data"), **extra)

    def prepare(self, workdir: Path) -> None:
        """Migrate, create both tenants, users and tokens, write the demo images (once)."""
        if self.token is not None:
            return
        self.var_dir = self.var_dir or workdir / "service-var"
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        self.token = create_account(env, self.account)
        self.peer_token = create_account(env, f"{self.account}-peer")
        for directory, count in ((DEMO_DIR, self.images), (WARMUP_DIR, WARMUP_IMAGES)):
            if self.images:
                demo = ("--tenant", self.account, "--count", str(count), "--corrupt", "0.015")
                manage(env, "make_demo_images", *demo, "--dir", directory, timeout=IMAGES_TIMEOUT)


class ServiceTarget(Target):
    """(a) This service, production settings and auth on: `manage.py serve` (uvicorn), daphne,
    or `serve` with REDIS_URL (the channel layer of a cluster, for the `kinds` given)."""

    description = "Django Channels consumer, token auth on, SQLite, production settings"

    def __init__(
        self,
        setup: ServiceSetup,
        server: str = "uvicorn",
        redis_url: str | None = None,
        kinds: tuple[str, ...] | None = None,
        metrics: bool = True,
        history: bool = True,
        writer: str = "thread",
        writer_cpus: str = "",
    ) -> None:
        self.setup, self.server, self.redis_url, self.kinds = setup, server, redis_url, kinds
        self.metrics, self.history = metrics, history
        self.writer, self.writer_cpus = writer, writer_cpus
        self.prefix = f"bench-{secrets.token_hex(4)}-"
        if redis_url is not None:
            self.key = "service-redis"
            self.title = "this service (manage.py serve) with REDIS_URL: channels-redis layer"
        elif server == "daphne":
            self.key, self.title = "service-daphne", "this service under daphne"
        else:
            self.key = "service"
            self.title = "this service (manage.py serve: uvicorn + uvloop + httptools)"
        # Each setting off its default adds a suffix to the key and names itself in the title.
        for suffix, setting, on in (
            ("metrics-off", "MCP_METRICS=false", not metrics),
            ("history-off", "MCP_HISTORY_ENABLED=false", not history),
            (f"{writer}-writer", f"MCP_HISTORY_WRITER={writer}", writer != "thread"),
            (
                f"cpu{writer_cpus}",
                f"MCP_HISTORY_WRITER_CPUS={writer_cpus}",
                writer != "thread" and writer_cpus,
            ),
        ):
            if on:
                self.key, self.title = f"{self.key}-{suffix}", f"{self.title}, {setting}"

    def prepare(self, workdir: Path) -> None:
        """Set up the shared database and tokens."""
        self.setup.prepare(workdir)

    def command(self, port: int) -> list[str]:
        """`manage.py serve`, or `daphne` on config.asgi:application."""
        if self.server == "daphne":
            daphne = str(Path(PYTHON).parent / "daphne")
            # -v 0: no access log, as LOG_LEVEL=WARNING silences uvicorn's.
            return [daphne, "-b", HOST, "-p", str(port), "-v", "0", "config.asgi:application"]
        return serve_command(port)

    def env(self) -> dict[str, str]:
        """The service's environment (with Redis under a key prefix of this run, if set), its
        metrics recorded as with several processes (multiprocess files) or off, and history
        recording on or off."""
        env = self.setup.env() | {"MCP_HISTORY_WRITER": self.writer}
        if self.writer_cpus:
            env |= {"MCP_HISTORY_WRITER_CPUS": self.writer_cpus}
        if not self.history:
            env |= {"MCP_HISTORY_ENABLED": "false"}
        if self.redis_url is not None:
            env |= {"REDIS_URL": self.redis_url, "MCP_CHANNEL_PREFIX": self.prefix}
        if not self.metrics:
            return env | {"MCP_METRICS": "false"}
        assert self.setup.var_dir is not None
        # A new directory for each start: a process must not add to the last one's values.
        metrics_dir = self.setup.var_dir / f"metrics-{secrets.token_hex(4)}"
        metrics_dir.mkdir()
        return env | {"MCP_METRICS": "true", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}

    def load_target(self, port: int, pid: int, cpu: int | None) -> LoadTarget:
        """The endpoint with each tenant's token in the query (as the SDK clients must send
        it), and the same path over Streamable HTTP (the token in a header, never the URL)."""
        ws, token, peer = f"ws://{HOST}:{port}/mcp?token=", self.setup.token, self.setup.peer_token
        http = f"http://{HOST}:{port}/mcp"
        return LoadTarget([f"{ws}{token}"], {"server": pid}, cpu, f"{ws}{peer}", http, token)


class ScriptTarget(Target):
    """A comparison server run from a script in bench/ (`--host`, `--port`), by this
    environment's Python or by that of a pinned environment of its own (clients/envs.py);
    with `python_env`, one with a Streamable HTTP endpoint at /mcp, no WebSocket and no auth,
    that runs only the HTTP scenarios."""

    def __init__(
        self,
        key: str,
        script: str,
        title: str,
        description: str,
        python_env: PythonEnv | None = None,
    ) -> None:
        self.key, self.script, self.title, self.description = key, script, title, description
        self.python_env, self.kinds = python_env, HTTP_KINDS if python_env else None

    def prepare(self, workdir: Path) -> None:
        """Build the script's environment when it has one and it is missing."""
        if self.python_env is not None:
            self.python_env.ensure()

    def command(self, port: int) -> list[str]:
        """`python bench/<script> --host 127.0.0.1 --port PORT`."""
        python = str(self.python_env.python) if self.python_env is not None else PYTHON
        return [python, str(ROOT / "bench" / self.script), "--host", HOST, "--port", str(port)]

    def load_target(self, port: int, pid: int, cpu: int | None) -> LoadTarget:
        """The WebSocket endpoint, or for an HTTP server `http://127.0.0.1:PORT/mcp` alone."""
        if self.python_env is None:
            return super().load_target(port, pid, cpu)
        return LoadTarget([], {"server": pid}, cpu, http_url=f"http://{HOST}:{port}/mcp")


SDK = ScriptTarget(
    "sdk",
    "sdk_server.py",
    "official MCP SDK 1.30.0 WebSocket transport (FastMCP, uvicorn + uvloop)",
    "FastMCP with the same add tool behind mcp.server.websocket.websocket_server, no auth",
)
RAW = ScriptTarget(
    "raw",
    "raw_server.py",
    "raw websockets 17 server, JSON-RPC by hand (uvloop, orjson)",
    "no auth, no validation: the floor of what one Python process can do",
)
FASTMCP = ScriptTarget(
    "fastmcp",
    "fastmcp_server.py",
    "FastMCP 4.1.6 on the official SDK 2.3, Streamable HTTP (uvicorn + uvloop + httptools)",
    "its default http_app(): stateful sessions, SSE responses; the same add tool and a "
    "process_batch with progress; no auth",
    FASTMCP_ENV,
)
MCPZ = ScriptTarget(
    "mcpz",
    "mcpz_server.py",
    "django-mcpz 1.2.0 on Django 5.2, Streamable HTTP (gunicorn, one gthread worker)",
    "stateless mode for 2025-11-25 clients, JSON responses; the same add tool (no progress: "
    "the package has none); no auth, no middleware, no database",
    DJANGO_MCPZ,
)


@dataclass
class ClusterProcesses:
    """The web processes and workers of one measurement."""

    web: list[ManagedProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    workers: list[ManagedProcess] = field(default_factory=list)

    @property
    def all(self) -> list[ManagedProcess]:
        """Every process, web first."""
        return [*self.web, *self.workers]


@dataclass
class ClusterDeployment:
    """A database made for this run (dropped after), an account, and a Redis key prefix."""

    postgres_url: str
    redis_url: str
    var_dir: Path
    account: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")
    prefix: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}-")
    database: str | None = None
    database_url: str = ""
    token: str | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    def env(self, execution: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of every process: production settings, this database and prefix."""
        timeout = str(SHUTDOWN_TIMEOUT_S)
        env = production_env(
            self.var_dir,
            SECRET_KEY=self.secret_key,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            MCP_CHANNEL_PREFIX=self.prefix,
            MCP_EXECUTION=execution,
            MCP_SHUTDOWN_TIMEOUT=timeout,
            MCP_WORKER_GRACE=timeout,
        )
        return env | dict(extra or {})

    def create(self) -> None:
        """Create the database, migrate it, and make a tenant, a user and a token."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.database, self.database_url = create_database(self.postgres_url)
        self.token = create_account(self.env("inline"), self.account)

    def drop(self) -> None:
        """Drop the database (even with sessions open) and this run's Redis keys."""
        if self.database is not None:
            drop_database(self.postgres_url, self.database)
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

    @contextlib.contextmanager
    def running(
        self,
        name: str,
        execution: str,
        web: int,
        workers: int,
        cpu: int | None,
        logs: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> Iterator[ClusterProcesses]:
        """`web` serve processes and `workers` runoperations, all on `cpu` (None: not pinned),
        ready (every /healthz 200, every worker's ready line) for the block, stopped after."""
        env = self.env(execution, extra_env)
        # INFO for workers: their ready line is logged at INFO (they log nothing per call).
        worker_env, worker = env | {"LOG_LEVEL": "INFO"}, [PYTHON, "manage.py", "runoperations"]
        processes = ClusterProcesses()
        try:
            for index in range(web):
                processes.ports.append(port := free_port())
                started = start_process(
                    f"{name}-web{index + 1}", serve_command(port), env, logs, cpu
                )
                processes.web.append(started)
            for index in range(workers):
                started = start_process(f"{name}-worker{index + 1}", worker, worker_env, logs, cpu)
                processes.workers.append(started)
            for process, port in zip(processes.web, processes.ports, strict=True):
                process.wait_http_ok(f"http://{HOST}:{port}/healthz")
            for process in processes.workers:
                process.wait_log_line(WORKER_READY_LINE)
            yield processes
        finally:
            stop_all(processes.workers, SHUTDOWN_TIMEOUT_S)
            stop_all(processes.web, SHUTDOWN_TIMEOUT_S)
