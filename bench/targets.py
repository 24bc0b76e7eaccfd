"""The servers under test: how to prepare, start and reach each one."""

from __future__ import annotations

import os
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.process import run_checked

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
PYTHON = sys.executable
HOST = "127.0.0.1"
# process_images inputs: the demo set and a small set to warm the server up on.
DEMO_DIR = "demo"
WARMUP_DIR = "warmup"
WARMUP_IMAGES = 200
IMAGES_TIMEOUT = 900.0
# Tenant isolation limits raised far above any load the harness makes, but left on: what the
# figures include is the cost of checking them, never a refusal. A scenario queues 10,000
# calls on one connection (bench/queue_cancel.py); the storm opens 10,000 connections of one
# user. Idle clients of the benchmark never answer the server's MCP pings, so those wait for
# an hour.
HIGH = str(10**9)
BENCH_LIMITS = {
    "MCP_MAX_CONNECTIONS_PER_USER": HIGH,
    "MCP_MAX_CONNECTIONS_PER_TENANT": HIGH,
    "MCP_MAX_IN_FLIGHT_PER_CONNECTION": HIGH,
    "MCP_MAX_IN_FLIGHT_PER_USER": HIGH,
    "MCP_MAX_IN_FLIGHT_PER_TENANT": HIGH,
    "MCP_MESSAGE_RATE_PER_USER": HIGH,
    "MCP_MESSAGE_BURST_PER_USER": HIGH,
    "MCP_MESSAGE_RATE_PER_TENANT": HIGH,
    "MCP_MESSAGE_BURST_PER_TENANT": HIGH,
    "MCP_API_REQUESTS_PER_MINUTE_USER": HIGH,
    "MCP_API_REQUESTS_PER_MINUTE_TENANT": HIGH,
    "MCP_CLIENT_PING_INTERVAL": "3600",
}


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


class Target(ABC):
    """A server the harness can start on a port and point the load generator at."""

    key: str
    title: str
    description: str

    def prepare(self, workdir: Path) -> None:  # noqa: B027 - optional hook
        """One-time setup before the first start (database, credentials); none by default."""

    def measures(self, kind: str) -> bool:
        """Whether the plan's scenarios of this kind run against this target (all by default)."""
        return True

    @abstractmethod
    def command(self, port: int) -> list[str]:
        """The server's command line."""

    def env(self) -> dict[str, str]:
        """The server's environment."""
        return dict(os.environ)

    def ws_url(self, port: int) -> str:
        """The MCP WebSocket URL."""
        return f"ws://{HOST}:{port}/mcp"

    def health_url(self, port: int) -> str:
        """The URL polled until it answers 200."""
        return f"http://{HOST}:{port}/healthz"

    def peer_ws_url(self, port: int) -> str | None:
        """The MCP WebSocket URL as a caller of another tenant; None when there is none."""
        return None


@dataclass
class ServiceSetup:
    """A fresh database, an API token and demo images for this service, shared by its variants."""

    database_url: str | None = None
    var_dir: Path | None = None
    token: str | None = None
    account: str = "bench"
    # A second tenant (its own user and token), for scenarios about tenants side by side.
    peer_token: str | None = None
    # Demo images to generate for process_images (0: none), and the small warm-up set.
    images: int = 0
    warmup_images: int = WARMUP_IMAGES

    def __post_init__(self) -> None:
        if self.database_url and self.account == "bench":
            # A shared database may already hold a "bench" account from an earlier run.
            self.account = f"bench-{uuid.uuid4().hex[:8]}"

    @property
    def peer_account(self) -> str:
        """The second tenant's slug (and its user's name)."""
        return f"{self.account}-peer"

    @property
    def data_root(self) -> Path:
        """MCP_DATA_ROOT of the service: `data` in its temp var dir."""
        if self.var_dir is None:
            raise RuntimeError("ServiceSetup has no var_dir yet")
        return self.var_dir / "data"

    @property
    def tenant_root(self) -> Path:
        """The bench tenant's data directory (where the demo images and thumbnails go)."""
        return self.data_root / self.account

    def env(self) -> dict[str, str]:
        """Production settings: SQLite in the temp dir (or --database-url), no Redis, quiet logs."""
        if self.var_dir is None:
            raise RuntimeError("ServiceSetup.prepare() has not run")
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            MCP_VAR_DIR=str(self.var_dir),
            MCP_DATA_ROOT=str(self.data_root),
            LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="config.settings",
            DJANGO_DEBUG="false",
            **BENCH_LIMITS,
        )
        env.update(BENCH_LIMITS)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env

    def prepare(self, workdir: Path) -> None:
        """Migrate, create tenant, user and token, write the demo images (once)."""
        if self.token is not None:
            return
        if self.var_dir is None:
            self.var_dir = workdir / "service-var"
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        self.token = create_account(env, self.account)
        self.peer_token = create_account(env, self.peer_account)
        for directory, count in ((DEMO_DIR, self.images), (WARMUP_DIR, self.warmup_images)):
            if self.images:
                demo = ("--tenant", self.account, "--count", str(count), "--corrupt", "0.015")
                manage(env, "make_demo_images", *demo, "--dir", directory, timeout=IMAGES_TIMEOUT)


class ServiceTarget(Target):
    """(a) This service, production settings and auth on, under uvicorn (`manage.py serve`)
    or daphne."""

    def __init__(self, setup: ServiceSetup, server: str = "uvicorn", metrics: bool = True) -> None:
        if server not in ("uvicorn", "daphne"):
            raise ValueError(f"unknown server {server!r}")
        self.setup = setup
        self.server = server
        # Metrics on: recorded as with several processes (files in PROMETHEUS_MULTIPROC_DIR).
        self.metrics = metrics
        if server == "uvicorn":
            self.key = "service"
            self.title = "this service (manage.py serve: uvicorn + uvloop + httptools)"
        else:
            self.key = "service-daphne"
            self.title = "this service under daphne"
        if not metrics:
            self.key += "-metrics-off"
            self.title += ", MCP_METRICS=false"
        self.description = "Django Channels consumer, token auth on, SQLite, production settings"

    def prepare(self, workdir: Path) -> None:
        """Set up the shared database and token."""
        self.setup.prepare(workdir)

    def command(self, port: int) -> list[str]:
        """`manage.py serve`, or `daphne` on config.asgi:application."""
        if self.server == "daphne":
            daphne = str(Path(PYTHON).parent / "daphne")
            # -v 0: no access log, as LOG_LEVEL=WARNING silences uvicorn's.
            return [daphne, "-b", HOST, "-p", str(port), "-v", "0", "config.asgi:application"]
        return [PYTHON, "manage.py", "serve", "--host", HOST, "--port", str(port)]

    def env(self) -> dict[str, str]:
        """The service's production environment, metrics on (multiprocess) or off."""
        if not self.metrics:
            return {**self.setup.env(), "MCP_METRICS": "false"}
        assert self.setup.var_dir is not None
        # A new directory for each start: a process set must not add to the last one's values.
        metrics_dir = self.setup.var_dir / f"metrics-{uuid.uuid4().hex[:8]}"
        metrics_dir.mkdir()
        return {
            **self.setup.env(),
            "MCP_METRICS": "true",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }

    def ws_url(self, port: int) -> str:
        """The endpoint with the token in the query, as the SDK clients must send it."""
        return f"{super().ws_url(port)}?token={self.setup.token}"

    def peer_ws_url(self, port: int) -> str | None:
        """The endpoint with the second tenant's token."""
        return f"{super().ws_url(port)}?token={self.setup.peer_token}"


class RedisServiceTarget(ServiceTarget):
    """(a') This service under uvicorn with REDIS_URL set: the channel layer of a cluster.

    Only the scenarios whose kinds are given run against it (the connection storm)."""

    def __init__(self, setup: ServiceSetup, redis_url: str, kinds: tuple[str, ...]) -> None:
        super().__init__(setup, "uvicorn")
        self.key = "service-redis"
        self.title = "this service (manage.py serve) with REDIS_URL: channels-redis layer"
        self.redis_url = redis_url
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}-"
        self.kinds = kinds

    def measures(self, kind: str) -> bool:
        """Only the kinds it was made for."""
        return kind in self.kinds

    def env(self) -> dict[str, str]:
        """The service's environment plus Redis, under a key prefix of this run."""
        return {**super().env(), "REDIS_URL": self.redis_url, "MCP_CHANNEL_PREFIX": self.prefix}


class ScriptTarget(Target):
    """A comparison server run from a script in bench/ (`--host`, `--port`)."""

    def __init__(self, key: str, script: str, title: str, description: str) -> None:
        self.key = key
        self.script = BENCH_DIR / script
        self.title = title
        self.description = description

    def command(self, port: int) -> list[str]:
        """`python bench/<script> --host 127.0.0.1 --port PORT`."""
        return [PYTHON, str(self.script), "--host", HOST, "--port", str(port)]


def sdk_target() -> ScriptTarget:
    """(b) The official MCP SDK WebSocket server (FastMCP, uvicorn)."""
    return ScriptTarget(
        "sdk",
        "sdk_server.py",
        "official MCP SDK 1.30.0 WebSocket transport (FastMCP, uvicorn + uvloop)",
        "FastMCP with the same add tool behind mcp.server.websocket.websocket_server, no auth",
    )


def raw_target() -> ScriptTarget:
    """(c) A raw `websockets` server answering JSON-RPC by hand."""
    return ScriptTarget(
        "raw",
        "raw_server.py",
        "raw websockets 17 server, JSON-RPC by hand (uvloop, orjson)",
        "no auth, no validation: the floor of what one Python process can do",
    )
