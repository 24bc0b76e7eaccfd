"""Helpers for the end-to-end suite: a deployment, a server subprocess and a raw MCP client.

Nothing here imports Django (the client is `mcp_server.client`): the server is reached only
through `manage.py` commands, its HTTP port and its log file, as an operator would reach it.
"""

import asyncio
import inspect
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from mcp_server.client import raw
from mcp_server.client.raw import RECV_TIMEOUT
from mcp_server.client.wire import PROTOCOL_VERSION, SUBPROTOCOL, open_socket
from mcp_server.processes import ManagedProcess, NotReady, free_port, scrubbed_env, stop_all

if TYPE_CHECKING:
    from tests.e2e.templates import DatabaseTemplates

PROJECT_DIR = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HOST = "127.0.0.1"
MCP_SUBPROTOCOL = SUBPROTOCOL
LATEST_VERSION = PROTOCOL_VERSION
CLIENT_NAME = "e2e-raw-client"

# Waiting is always "until the event happens, or give up after a timeout".
POLL_INTERVAL = 0.05
# Starts take 2-5 s; the bound is for a machine loaded by other suites (30 s was hit at load 17).
SERVER_START_TIMEOUT = 90.0
SERVER_STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0
HTTP_TIMEOUT = 5.0
PORT_ATTEMPTS = 3
SQLITE_BUSY_TIMEOUT = 20.0

T = TypeVar("T")


def pid_alive(pid: int) -> bool:
    """Whether a process of that id exists (and is not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail naming `what` when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


async def wait_until_async(
    predicate: Callable[[], bool | Awaitable[bool]], seconds: float, what: str
) -> None:
    """`wait_until` for coroutines: polls without blocking the event loop; `predicate` may
    be a coroutine function (e.g. one that tries a handshake)."""

    async def holds() -> bool:
        value = predicate()
        return await value if inspect.isawaitable(value) else value

    await read_until(holds, bool, seconds, what)


async def read_until(
    read: Callable[[], Awaitable[T]], accept: Callable[[T], bool], seconds: float, what: str
) -> T:
    """The first value of `read` that `accept` takes, read every POLL_INTERVAL: for state the
    server announces no change of (a history row as a request shows it); fail naming `what`
    when `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not accept(value := await read()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}: {value!r}")
        await asyncio.sleep(POLL_INTERVAL)
    return value


def run_parallel(jobs: Iterable[Callable[[], T]]) -> list[T]:
    """Run blocking jobs (mostly `manage.py` subprocesses) side by side, results in order."""
    job_list = list(jobs)
    with ThreadPoolExecutor(max_workers=max(1, len(job_list))) as pool:
        futures = [pool.submit(job) for job in job_list]
        return [future.result() for future in futures]


def is_postgres_url(url: str) -> bool:
    """Whether a DATABASE_URL points at PostgreSQL."""
    return url.startswith(("postgres://", "postgresql://"))


def database_url_for(url: str, database: str) -> str:
    """`url` with its database name replaced."""
    return urlsplit(url)._replace(path=f"/{database}").geturl()


def create_postgres_database(server_url: str, template: str | None = None) -> str:
    """Create a fresh, uniquely named database on the server of `server_url` (a copy of
    `template` when given, else empty); its name."""
    name = f"mcp_e2e_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)
    return name


def drop_postgres_database(server_url: str, name: str) -> None:
    """Drop a database made by `create_postgres_database`, even with sessions still open."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def base_child_env(var_dir: Path, database_url: str | None) -> dict[str, str]:
    """The environment of every child process of one deployment."""
    env = scrubbed_env()
    env.update(
        {
            "MCP_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "INFO",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "PYTHONUNBUFFERED": "1",
            # Deployments of parallel runs (xdist workers) may share a Redis: not its counters.
            "MCP_CACHE_PREFIX": f"test-{secrets.token_hex(4)}",
        }
    )
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


@dataclass(frozen=True)
class ManageCommand(Generic[T]):
    """One `manage.py` command line, its standard input, and the check of its stdout that
    gives the command's result."""

    args: tuple[str, ...]
    check: Callable[[str], T]
    stdin: str | None = None


def tenant_command(slug: str) -> ManageCommand[None]:
    """`createtenant SLUG`."""

    def check(output: str) -> None:
        assert f"Created tenant {slug}" in output, output

    return ManageCommand(("createtenant", slug), check)


def user_command(
    username: str, tenant: str, *, admin: bool = False, password: str | None = None
) -> ManageCommand[None]:
    """`createuser USERNAME --tenant SLUG [--tenant-admin] [--password-stdin]`."""
    args = ["createuser", username, "--tenant", tenant]
    if admin:
        args.append("--tenant-admin")
    if password is not None:
        args.append("--password-stdin")
    role = "admin" if admin else "member"

    def check(output: str) -> None:
        assert f"Created user {username} ({role} of {tenant})" in output, output

    return ManageCommand(tuple(args), check, None if password is None else password + "\n")


def token_command(
    username: str, *, name: str, expires_in_days: int | None = None
) -> ManageCommand[str]:
    """`createtoken USERNAME --name N [--expires-in-days D]`; its result is the raw token."""
    args = ["createtoken", username, "--name", name]
    if expires_in_days is not None:
        args += ["--expires-in-days", str(expires_in_days)]
    return ManageCommand(tuple(args), _printed_token)


def _printed_token(output: str) -> str:
    """The raw token `createtoken` printed, alone on its last line and only there."""
    lines = output.splitlines()
    raw = lines[-1]
    assert raw.startswith("mcp_"), lines
    assert raw == raw.strip(), f"the token is not alone on its line: {raw!r}"
    assert len(raw) > 40, raw
    assert all(raw not in line for line in lines[:-1]), "raw token printed more than once"
    return raw


# Run by `manage.py shell`: each command of the JSON list on stdin through `call_command`, with
# that command's stdin and a stdout of its own; prints the list of their outputs as JSON.
_CALL_COMMANDS = """
import io, json, sys
from django.core.management import call_command
outputs = []
for args, stdin in json.load(sys.stdin):
    sys.stdin, out = io.StringIO(stdin or ""), io.StringIO()
    call_command(*args, stdout=out)
    outputs.append(out.getvalue())
print(json.dumps(outputs))
"""


@dataclass
class Deployment:
    """One installation of the service: a var dir, a migrated database, accounts in it."""

    root: Path
    env: dict[str, str]
    database_name: str | None = None

    def with_env(self, extra: dict[str, str]) -> "Deployment":
        """The same installation, its commands run with `extra` on top of its environment
        (e.g. an operator's commands on the servers' channel layer)."""
        return Deployment(
            root=self.root, env={**self.env, **extra}, database_name=self.database_name
        )

    def manage(self, *args: str, stdin: str | None = None) -> str:
        """Run `python manage.py ARGS` in this deployment; its stdout (fails on non-zero exit)."""
        completed = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=PROJECT_DIR,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if completed.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args[:2])} exited with {completed.returncode}\n"
                f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
            )
        return completed.stdout

    def shell(self, code: str, stdin: str | None = None) -> str:
        """Run Python in `manage.py shell -c`; its stdout."""
        return self.manage("shell", "-c", code, stdin=stdin)

    def run(self, command: ManageCommand[T]) -> T:
        """Run one command in a `manage.py` process of its own; its checked result."""
        return command.check(self.manage(*command.args, stdin=command.stdin))

    def run_together(self, commands: Sequence[ManageCommand[Any]]) -> list[Any]:
        """Run commands one after another in one Django process (one start-up, not one per
        command), each as `manage.py` would with its own stdin and stdout; their checked
        results, in order."""
        spec = json.dumps([[list(command.args), command.stdin] for command in commands])
        outputs = json.loads(self.shell(_CALL_COMMANDS, stdin=spec).splitlines()[-1])
        assert len(outputs) == len(commands), outputs
        return [command.check(output) for command, output in zip(commands, outputs, strict=True)]

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one SQL statement (placeholders `%s`) on this deployment's database through one
        connection of its own (no Django boot); the rows it returns, as dicts.

        Parameters are stored as Django stores them: datetimes in UTC, lists and dicts as JSON.
        """
        if self.database_name is None:
            path = self.root / "db.sqlite3"
            with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT)) as conn, conn:
                conn.row_factory = sqlite3.Row
                cursor = conn.execute(
                    statement.replace("%s", "?"), [_sqlite_value(value) for value in params]
                )
                return [dict(row) for row in cursor.fetchall()]
        url = self.env["DATABASE_URL"]
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as pg:
            found = pg.execute(statement.encode(), [_postgres_value(value) for value in params])
            return list(found.fetchall()) if found.description else []

    def migrate(self) -> None:
        """Create the schema."""
        self.manage("migrate", "--noinput")

    def create_tenant(self, slug: str) -> None:
        """`createtenant SLUG`."""
        self.run(tenant_command(slug))

    def create_user(
        self, username: str, tenant: str, *, admin: bool = False, password: str | None = None
    ) -> None:
        """`createuser USERNAME --tenant SLUG [--tenant-admin] [--password-stdin]`."""
        self.run(user_command(username, tenant, admin=admin, password=password))

    def create_token(self, username: str, *, name: str, expires_in_days: int | None = None) -> str:
        """`createtoken USERNAME --name N [--expires-in-days D]`; the raw token it printed."""
        return self.run(token_command(username, name=name, expires_in_days=expires_in_days))

    def update_one(self, statement: str, *params: Any) -> None:
        """Run an UPDATE that must change exactly one row, straight in the database (nothing
        is announced, as when an announcement is lost)."""
        changed = self.sql(statement + " RETURNING 1", params)
        assert len(changed) == 1, f"{statement!r} changed {len(changed)} rows"

    def revoke_token(self, name: str) -> None:
        """Mark the token called `name` revoked, straight in the database (nothing announced)."""
        self.update_one(
            "UPDATE accounts_apitoken SET revoked_at = %s WHERE name = %s", datetime.now(UTC), name
        )

    def expire_token(self, name: str) -> None:
        """Move the expiry of the token called `name` into the past (nothing announced)."""
        past = datetime.now(UTC) - timedelta(minutes=1)
        self.update_one("UPDATE accounts_apitoken SET expires_at = %s WHERE name = %s", past, name)

    def set_enabled_tools(self, tenant: str, tools: Sequence[str] | None) -> None:
        """Restrict a tenant to some tools (None: every tool), straight in the database."""
        self.update_one(
            "UPDATE accounts_tenant SET enabled_tools = %s WHERE slug = %s",
            None if tools is None else list(tools),
            tenant,
        )

    def create_login_session(self, username: str, password: str) -> str:
        """Log in with the password, as the login view would, and save the session; its key.

        `authenticate` succeeding also proves `createuser --password-stdin` set the password.
        """
        output = self.shell(
            "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, "
            "authenticate; from django.contrib.sessions.backends.db import SessionStore; "
            "from django.test import RequestFactory; "  # django-axes wants the request
            "request = RequestFactory().post('/login/'); "
            f"user = authenticate(request, username={username!r}, password={password!r}); "
            "assert user is not None, 'wrong password'; "
            "session = SessionStore(); session[SESSION_KEY] = str(user.pk); "
            "session[BACKEND_SESSION_KEY] = user.backend; "
            "session[HASH_SESSION_KEY] = user.get_session_auth_hash(); session.save(); "
            "print(session.session_key)"
        )
        return output.splitlines()[-1].strip()


def _sqlite_value(value: Any) -> Any:
    """A parameter as Django's SQLite backend stores it."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def _postgres_value(value: Any) -> Any:
    """A parameter as Django's PostgreSQL backend stores it (JSON columns are jsonb)."""
    return Jsonb(value) if isinstance(value, list | dict) else value


@contextmanager
def postgres_deployment(
    root: Path,
    server_url: str,
    templates: "DatabaseTemplates",
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Deployment]:
    """A migrated installation on a fresh PostgreSQL database of `server_url` (dropped after),
    for tests whose observation needs PostgreSQL whatever the suite's own database is."""
    name = templates.create_postgres(server_url)
    try:
        env = {**base_child_env(root, database_url_for(server_url, name)), **(extra_env or {})}
        yield Deployment(root=root, env=env, database_name=name)
    finally:
        drop_postgres_database(server_url, name)


@dataclass
class ServerProcess:
    """`manage.py serve` running on a port, its output going to a log file."""

    port: int
    managed: ManagedProcess
    env: dict[str, str] = field(repr=False)

    @property
    def process(self) -> "subprocess.Popen[bytes]":
        """The child process itself (for signals and exit codes)."""
        return self.managed.popen

    @property
    def log_path(self) -> Path:
        """Where its output goes."""
        assert self.managed.log_path is not None
        return self.managed.log_path

    @property
    def http_url(self) -> str:
        """Base URL for HTTP requests."""
        return f"http://{HOST}:{self.port}"

    def ws_url(self, token: str | None = None, path: str = "/mcp") -> str:
        """The WebSocket URL of `path`, with `?token=` when a token is given."""
        url = f"ws://{HOST}:{self.port}{path}"
        return f"{url}?token={quote(token, safe='')}" if token is not None else url

    def log_text(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.managed.log_text()

    def is_alive(self) -> bool:
        """Whether the process is still running."""
        return self.managed.alive()

    def resident_bytes(self) -> int:
        """The process's resident memory (VmRSS of /proc/<pid>/status), in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for process {self.process.pid}")

    def health_status(self) -> int | None:
        """The status of GET /healthz, or None when the server does not answer."""
        return self.http_status("/healthz")

    def http_status(self, path: str, headers: Mapping[str, str] | None = None) -> int | None:
        """The status of GET `path` (query string included, sent as given), or None when the
        server does not answer."""
        request = urllib.request.Request(f"{self.http_url}{path}", headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def get_json(self, path: str, token: str | None = None) -> tuple[int, Any]:
        """GET `path` (with a bearer token when given): the status and the body, decoded from
        JSON when it is JSON (else its text, so a failure shows what came instead)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        request = urllib.request.Request(f"{self.http_url}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                status, body = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            status, body = int(exc.code), exc.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode("utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        self.managed.stop(SERVER_STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: the server dies without a word, mid-operation."""
        self.managed.kill()


def stop_servers(servers: Iterable[ServerProcess]) -> None:
    """Stop `servers` side by side (SIGTERM to all, then SIGKILL to any still running after
    the timeout): each says its goodbyes and flushes its history at once, so a worker's
    servers take the longest one's shutdown, not the sum of theirs."""
    stop_all([server.managed for server in servers], SERVER_STOP_TIMEOUT)


@dataclass
class RedisProcess:
    """A private `redis-server` on a port of its own, without persistence: a test stops it,
    hangs it (SIGSTOP) and starts it again on the same port, as an outage would."""

    port: int
    root: Path
    managed: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The REDIS_URL of this server."""
        return f"redis://{HOST}:{self.port}/0"

    def answers(self) -> bool:
        """Whether it answers PING right now."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        """Start it (empty: nothing survives a restart) and wait until it answers."""
        assert self.managed is None or not self.managed.alive(), "already running"
        log_path = self.root / f"redis-{self.port}-{time.monotonic_ns()}.log"
        command = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.root), "--logfile", str(log_path)]
        self.managed = ManagedProcess.start(
            f"redis-{self.port}", command, env=os.environ, log_path=log_path, group=False
        )
        self.managed.wait_ready(
            self.answers, what=f"PONG on port {self.port}", timeout=SERVER_START_TIMEOUT
        )

    def stop(self) -> None:
        """SIGTERM (with a SIGCONT, should it be paused), and wait until it is gone."""
        if self.managed is not None:
            self.managed.stop(SERVER_STOP_TIMEOUT)

    def pause(self) -> None:
        """SIGSTOP: it still accepts connections (the kernel does) but answers nothing."""
        assert self.managed is not None
        self.managed.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        assert self.managed is not None
        self.managed.send_signal(signal.SIGCONT)


def _launch(deployment: Deployment, env: dict[str, str], port: int) -> ServerProcess:
    command = [PYTHON, "manage.py", "serve", "--host", HOST, "--port", str(port)]
    managed = ManagedProcess.start(
        f"serve-{port}",
        command,
        env=env,
        cwd=PROJECT_DIR,
        log_path=deployment.root / f"server-{port}-{time.monotonic_ns()}.log",
        group=False,
    )
    return ServerProcess(port=port, managed=managed, env=env)


def _wait_healthy(server: ServerProcess) -> None:
    """Wait until /healthz answers 200; NotReady (with the log) if it exits first."""
    try:
        server.managed.wait_http_ok(f"{server.http_url}/healthz", SERVER_START_TIMEOUT)
    except NotReady:
        if server.is_alive():
            server.stop()
        raise


def start_server_on_port(
    deployment: Deployment, port: int, extra_env: Mapping[str, str] | None = None
) -> ServerProcess:
    """Start a server of `deployment` on `port` (e.g. to restart one) and wait for /healthz."""
    server = _launch(deployment, {**deployment.env, **(extra_env or {})}, port)
    _wait_healthy(server)
    return server


def start_server(
    deployment: Deployment, extra_env: Mapping[str, str] | None = None
) -> ServerProcess:
    """Start a server of `deployment` on a free port and wait until /healthz answers 200."""
    env = {**deployment.env, **(extra_env or {})}
    for attempt in range(1, PORT_ATTEMPTS + 1):
        server = _launch(deployment, env, free_port())
        try:
            _wait_healthy(server)
            return server
        except NotReady:
            # Another process may have taken the free port first: try another one.
            lost_race = "address already in use" in server.log_text().lower()
            if not lost_race or attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


# --- the raw MCP client (mcp_server.client.raw) -------------------------------------------


class RawClient(raw.RawClient):
    """The product's hand-driven client, with the suite's assertion on frame order."""

    async def assert_answers_ping(self, *, passing: Callable[[Any], bool] | None = None) -> None:
        """The very next frame the server sends is the reply to a new ping, but for frames
        `passing` lets through first (a cancelled call's progress sent before its cancel).

        The server handles one connection's frames in order, so this also proves that nothing
        sent before the ping produced a reply.
        """
        request_id = f"ping-{self.next_id()}"
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
        reply = await self.recv()
        while passing is not None and passing(reply):
            reply = await self.recv()
        assert reply == {"jsonrpc": "2.0", "id": request_id, "result": {}}, reply


def error_of(response: Any) -> dict[str, Any]:
    """The `error` member of an error response (fails on anything else)."""
    assert isinstance(response, dict), response
    assert "result" not in response, f"expected an error, got {response!r}"
    error = response.get("error")
    assert isinstance(error, dict), response
    assert isinstance(error.get("code"), int), response
    assert isinstance(error.get("message"), str), response
    assert error["message"], response
    return error


def result_of(response: Any) -> dict[str, Any]:
    """The `result` member of a success response (fails on anything else)."""
    assert isinstance(response, dict), response
    assert "error" not in response, f"expected a result, got {response!r}"
    result = response.get("result")
    assert isinstance(result, dict), response
    return result


@asynccontextmanager
async def raw_connection(url: str, **socket: Any) -> AsyncIterator[ClientConnection]:
    """A plain WebSocket to the server for the block; `socket` holds options of
    `mcp_server.client.wire.open_socket` (subprotocols, headers, origin, local_address…)."""
    async with await open_socket(url, **{"open_timeout": RECV_TIMEOUT, **socket}) as ws:
        yield ws


async def refusal(
    url: str, *, headers: dict[str, str] | None = None, origin: str | None = None
) -> tuple[int, dict[str, object], InvalidStatus]:
    """Open a handshake that must be refused; the HTTP status, the JSON body, the exception."""
    try:
        async with raw_connection(url, headers=headers, origin=origin):
            pass
    except InvalidStatus as refused:
        response = refused.response
        body = json.loads(response.body or b"null")
        assert isinstance(body, dict), response.body
        assert response.headers.get_all("Content-Type") == ["application/json"]
        assert response.headers.get_all("Content-Length") == [str(len(response.body or b""))]
        return response.status_code, body, refused
    raise AssertionError(f"the handshake to {url.split('?')[0]} was accepted")


@asynccontextmanager
async def raw_client(
    server: ServerProcess, token: str, *, version: str | None = LATEST_VERSION
) -> AsyncIterator[RawClient]:
    """A RawClient connected with `?token=`, initialized at `version` unless it is None."""
    async with raw_connection(server.ws_url(token)) as ws:
        client = RawClient(ws, client_name=CLIENT_NAME)
        if version is not None:
            await client.initialize(version)
        yield client
