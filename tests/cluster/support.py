"""A real cluster for tests: two `manage.py serve` web processes and `manage.py runoperations`
workers on the real Redis (a key prefix of their own) and a fresh PostgreSQL database."""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from mcp_server.client.http import HttpSession
from mcp_server.processes import ManagedProcess, NotReady, stop_all
from tests.e2e.support import (
    PROJECT_DIR,
    PYTHON,
    Deployment,
    RawClient,
    ServerProcess,
    base_child_env,
    database_url_for,
    drop_postgres_database,
    start_server,
    start_server_on_port,
    stop_servers,
    tenant_command,
    token_command,
    user_command,
)
from tests.e2e.templates import DatabaseTemplates

PG_SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
CLUSTER_REDIS_URL = os.environ.get("TEST_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/12")
# The bound within which the operations of a dead worker are marked interrupted (short here,
# so a test waits seconds; production's default is 15).
LOST_AFTER = 6.0
# A worker whose event loop has had no turn for this long (hung) is stamped alive no more.
HUNG_AFTER = 2 * LOST_AFTER
# The bound within which a call no worker took is interrupted: long enough that a loaded machine
# hands 200 calls at once to a live worker within it (a short one failed them there).
UNCLAIMED_AFTER = 20.0
WORKER_START_TIMEOUT = 90.0  # as SERVER_START_TIMEOUT: a bound for a loaded machine
WORKER_STOP_TIMEOUT = 30.0
# How long a test waits for a message it expects.
WAIT = 30.0
# About 100 s of work: it never ends by itself within a test.
LONG_BATCH = {"count": 2000, "item_ms": 50}
WORKER_READY_LINE = "takes work from the dispatch streams"


def cluster_env() -> dict[str, str]:
    """Settings of every process of one test cluster."""
    return {
        "MCP_EXECUTION": "worker",
        "REDIS_URL": CLUSTER_REDIS_URL,
        "MCP_CHANNEL_PREFIX": f"test-{secrets.token_hex(4)}",
        "MCP_OPERATION_LOST_AFTER": str(LOST_AFTER),
        "MCP_WORKER_HUNG_AFTER": str(HUNG_AFTER),
        "MCP_OPERATION_UNCLAIMED_AFTER": str(UNCLAIMED_AFTER),
        "MCP_WORKER_GRACE": "2",
        "MCP_SHUTDOWN_TIMEOUT": "5",
        # Enough concurrency for the 200-client test on one worker.
        "MCP_MAX_OPERATIONS": "400",
        "MCP_MAX_OPERATIONS_PER_USER": "400",
        "MCP_MAX_OPERATIONS_PER_TENANT": "400",
        "MCP_MAX_OPERATIONS_PER_CONNECTION": "8",
    }


@contextmanager
def worker_mode_deployment(root: Path, templates: DatabaseTemplates) -> Iterator[Deployment]:
    """A migrated installation in worker mode on a fresh PostgreSQL database (dropped after)."""
    name = templates.create_postgres(PG_SERVER_URL)
    try:
        env = base_child_env(root, database_url_for(PG_SERVER_URL, name))
        # Every process of the cluster writes its metrics here; any one serves their sum.
        (root / "metrics").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(root / "metrics")
        yield Deployment(root=root, env={**env, **cluster_env()}, database_name=name)
    finally:
        drop_postgres_database(PG_SERVER_URL, name)


@dataclass
class WorkerProcess:
    """`manage.py runoperations`, its output going to a log file."""

    managed: ManagedProcess

    @property
    def process(self) -> "subprocess.Popen[bytes]":
        """The child process itself (for signals and exit codes)."""
        return self.managed.popen

    def log_text(self) -> str:
        """Everything the worker wrote so far."""
        return self.managed.log_text()

    def is_alive(self) -> bool:
        """Whether the process is still running."""
        return self.managed.alive()

    def kill(self) -> None:
        """SIGKILL: the worker dies without a word."""
        self.managed.kill()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        self.managed.stop(WORKER_STOP_TIMEOUT)


def start_worker(deployment: Deployment, env: dict[str, str]) -> WorkerProcess:
    """Start a worker and wait until it takes work."""
    managed = ManagedProcess.start(
        "runoperations",
        [PYTHON, "manage.py", "runoperations"],
        env={**deployment.env, **env},
        cwd=PROJECT_DIR,
        log_path=deployment.root / f"worker-{time.monotonic_ns()}.log",
        group=False,
    )
    try:
        managed.wait_log_line(WORKER_READY_LINE, WORKER_START_TIMEOUT)
    except NotReady:
        managed.stop()
        raise
    return WorkerProcess(managed)


@dataclass
class Cluster:
    """Two web processes and a worker of one deployment."""

    deployment: Deployment
    env: dict[str, str]
    web: list[ServerProcess] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(self) -> None:
        """Start two web processes and one worker."""
        self.web = [start_server(self.deployment, self.env) for _ in range(2)]
        self.workers = [start_worker(self.deployment, self.env)]

    def ensure_running(self) -> None:
        """Restart whatever a test stopped or killed (on the same ports)."""
        for index, server in enumerate(self.web):
            if not server.is_alive():
                self.web[index] = start_server_on_port(self.deployment, server.port, self.env)
        self.workers = [w for w in self.workers if w.is_alive()] or [
            start_worker(self.deployment, self.env)
        ]

    def ensure_workers(self, count: int) -> None:
        """At least `count` live workers: those a test killed or stopped are replaced."""
        alive = [worker for worker in self.workers if worker.is_alive()]
        while len(alive) < count:
            alive.append(start_worker(self.deployment, self.env))
        self.workers = alive

    def stop(self) -> None:
        """Stop every process: the workers side by side, then the web processes."""
        stop_all([worker.managed for worker in self.workers], WORKER_STOP_TIMEOUT)
        stop_servers(self.web)

    def logs(self) -> str:
        """All process logs, for failure messages."""
        parts = [f"--- web {s.port} ---\n{s.log_text()}" for s in self.web]
        parts += [f"--- worker ---\n{w.log_text()}" for w in self.workers]
        return "\n".join(parts)


async def next_matching(
    client: RawClient, predicate: Callable[[dict[str, Any]], bool], seconds: float
) -> dict[str, Any]:
    """The first frame (kept notifications first) that satisfies `predicate`."""
    for index, message in enumerate(client.notifications):
        if predicate(message):
            del client.notifications[index]
            return message
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching message within {seconds} s")
        message = await client.recv(left)
        if predicate(message):
            return dict(message)
        client.notifications.append(message)


def is_progress(token: Any) -> Callable[[dict[str, Any]], bool]:
    """A predicate: a progress notification for `token`."""
    return lambda m: (
        m.get("method") == "notifications/progress" and (m["params"]["progressToken"] == token)
    )


def is_response(request_id: Any) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the response to `request_id`."""
    return lambda m: "method" not in m and m.get("id") == request_id


async def send_request(client: RawClient, method: str, params: Any) -> int:
    """Send a request without waiting for its response; its id."""
    return await client.send_request(method, params)


async def connection_closed(client: RawClient, seconds: float) -> ConnectionClosed:
    """Read (and keep aside) frames until the server closes the connection; how it closed."""
    try:
        while True:
            client.notifications.append(await client.recv(seconds))
    except ConnectionClosed as closed:
        return closed


async def sigterm_goodbye(client: RawClient, server: ServerProcess) -> dict[str, Any]:
    """SIGTERM `server`: the data of the shutdown notice `client` gets, once the server has
    then closed the connection with 1012 (service restart)."""
    server.process.send_signal(signal.SIGTERM)
    notice = await next_matching(client, lambda m: m.get("method") == "notifications/message", WAIT)
    assert notice["params"]["level"] == "warning"
    assert notice["params"]["data"]["reason"] == "shutdown"
    closed = await connection_closed(client, WAIT)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1012
    return dict(notice["params"]["data"])


async def start_long_call(client: RawClient, token: str) -> int:
    """Start a plain `process_batch` that outlasts the test; its request id, once it runs."""
    request_id = await send_request(
        client,
        "tools/call",
        {"name": "process_batch", "arguments": LONG_BATCH, "_meta": {"progressToken": token}},
    )
    await next_matching(client, is_progress(token), WAIT)
    return request_id


async def gather_all(*coros: Any) -> list[Any]:
    """Run concurrently; the first failure fails the lot."""
    return list(await asyncio.gather(*coros))


def rest_api(server: Any, token: str, path: str, method: str = "GET") -> dict[str, Any]:
    """The REST API's JSON answer to `method` `path` at `server`, as `token`'s user."""
    request = urllib.request.Request(
        f"{server.http_url}{path}", method=method, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return dict(json.load(response))


@asynccontextmanager
async def on_both(
    cluster: Cluster, token: str, *, initialize: bool = True
) -> AsyncIterator[tuple[HttpSession, HttpSession]]:
    """One session, initialized through the first web process, addressed at each of them
    (not `initialize`: a 2026-07-28 client of each, every request standing alone)."""
    first, second = cluster.web
    here = HttpSession(f"{first.http_url}/mcp", token)
    there = here.at(f"{second.http_url}/mcp")
    try:
        if initialize:
            await here.initialize()
            there.session_id, there.protocol_version = here.session_id, here.protocol_version
        yield here, there
    finally:
        await here.close()
        await there.close()


def set_tool_set(
    cluster: Cluster, slug: str, enabled: list[str] | None, disabled: list[str]
) -> None:
    """Change the tenant's tool set through the service the admin saves with."""
    cluster.deployment.shell(
        "from accounts.models import Tenant; from accounts.services import tenant_update; "
        f"tenant = Tenant.objects.get(slug={slug!r}); "
        f"tenant.enabled_tools, tenant.disabled_tools = {enabled!r}, {disabled!r}; "
        "tenant_update(tenant=tenant, changed=['enabled_tools', 'disabled_tools'])"
    )


def member_of_a_new_tenant(cluster: Cluster, prefix: str) -> tuple[str, str]:
    """A tenant of the calling test alone (its tool set may be changed, its metrics are its
    own) and a token of its one user."""
    slug = f"{prefix}-{secrets.token_hex(3)}"
    commands = [tenant_command(slug), user_command(f"{slug}-u", slug)]
    (token,) = cluster.deployment.run_together([*commands, token_command(f"{slug}-u", name=slug)])[
        2:
    ]
    return slug, token
