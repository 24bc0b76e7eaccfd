"""Helpers for the end-to-end suite: a deployment, a server subprocess and a raw MCP client.

Nothing here imports the product: the server is reached only through `manage.py` commands, its
HTTP port and its log file, exactly as an operator and a client would reach it.
"""

import asyncio
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

PROJECT_DIR = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HOST = "127.0.0.1"
MCP_SUBPROTOCOL = Subprotocol("mcp")
LATEST_VERSION = "2025-11-25"

# Waiting is always "until the event happens, or give up after a timeout".
POLL_INTERVAL = 0.05
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0
HTTP_TIMEOUT = 5.0
RECV_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
# Variables of the test process that must not leak into a server unless a test asks for them.
_SCRUBBED_ENV_PREFIXES = ("MCP_", "DATABASE_", "REDIS_", "DJANGO_")
_SCRUBBED_ENV_NAMES = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "CSRF_TRUSTED_ORIGINS",
    "PROMETHEUS_MULTIPROC_DIR",
)

T = TypeVar("T")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail naming `what` when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


async def wait_until_async(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """`wait_until` for coroutines: polls without blocking the event loop."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL)


def run_parallel(jobs: Iterable[Callable[[], T]]) -> list[T]:
    """Run blocking jobs (mostly `manage.py` subprocesses) side by side, results in order."""
    job_list = list(jobs)
    with ThreadPoolExecutor(max_workers=max(1, len(job_list))) as pool:
        futures = [pool.submit(job) for job in job_list]
        return [future.result() for future in futures]


def free_port() -> int:
    """A TCP port nobody listens on right now (the server may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def is_postgres_url(url: str) -> bool:
    """Whether a DATABASE_URL points at PostgreSQL."""
    return url.startswith(("postgres://", "postgresql://"))


def database_url_for(url: str, database: str) -> str:
    """`url` with its database name replaced."""
    return urlsplit(url)._replace(path=f"/{database}").geturl()


def create_postgres_database(server_url: str) -> str:
    """Create a fresh, uniquely named database on the server of `server_url`; its name."""
    name = f"mcp_e2e_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_postgres_database(server_url: str, name: str) -> None:
    """Drop a database made by `create_postgres_database`, even with sessions still open."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def base_child_env(var_dir: Path, database_url: str | None) -> dict[str, str]:
    """The environment of every child process of one deployment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_SCRUBBED_ENV_PREFIXES) and key not in _SCRUBBED_ENV_NAMES
    }
    env.update(
        {
            "MCP_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "INFO",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


@dataclass
class Deployment:
    """One installation of the service: a var dir, a migrated database, accounts in it."""

    root: Path
    env: dict[str, str]
    database_name: str | None = None

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

    def shell(self, code: str) -> str:
        """Run Python in `manage.py shell -c`; its stdout."""
        return self.manage("shell", "-c", code)

    def migrate(self) -> None:
        """Create the schema."""
        self.manage("migrate", "--noinput")

    def create_tenant(self, slug: str) -> None:
        """`createtenant SLUG`."""
        output = self.manage("createtenant", slug)
        assert f"Created tenant {slug}" in output, output

    def create_user(
        self, username: str, tenant: str, *, admin: bool = False, password: str | None = None
    ) -> None:
        """`createuser USERNAME --tenant SLUG [--tenant-admin] [--password-stdin]`."""
        args = ["createuser", username, "--tenant", tenant]
        if admin:
            args.append("--tenant-admin")
        if password is not None:
            args.append("--password-stdin")
        output = self.manage(*args, stdin=None if password is None else password + "\n")
        role = "admin" if admin else "member"
        assert f"Created user {username} ({role} of {tenant})" in output, output

    def create_token(self, username: str, *, name: str, expires_in_days: int | None = None) -> str:
        """`createtoken USERNAME --name N [--expires-in-days D]`; the raw token it printed."""
        args = ["createtoken", username, "--name", name]
        if expires_in_days is not None:
            args += ["--expires-in-days", str(expires_in_days)]
        lines = self.manage(*args).splitlines()
        raw = lines[-1]
        assert raw.startswith("mcp_"), lines
        assert raw == raw.strip(), f"the token is not alone on its line: {raw!r}"
        assert len(raw) > 40, raw
        assert all(raw not in line for line in lines[:-1]), "raw token printed more than once"
        return raw

    def revoke_token(self, name: str) -> None:
        """Mark the token called `name` revoked, as an operator would."""
        self.shell(
            "from accounts.models import ApiToken; from django.utils import timezone; "
            f"n = ApiToken.objects.filter(name={name!r}).update(revoked_at=timezone.now()); "
            "assert n == 1, n"
        )

    def expire_token(self, name: str) -> None:
        """Move the expiry of the token called `name` into the past."""
        self.shell(
            "from datetime import timedelta; from accounts.models import ApiToken; "
            "from django.utils import timezone; "
            f"n = ApiToken.objects.filter(name={name!r})"
            ".update(expires_at=timezone.now() - timedelta(minutes=1)); "
            "assert n == 1, n"
        )

    def set_enabled_tools(self, tenant: str, tools: Sequence[str] | None) -> None:
        """Restrict a tenant to some tools (None: every tool)."""
        self.shell(
            "from accounts.models import Tenant; "
            f"n = Tenant.objects.filter(slug={tenant!r}).update(enabled_tools={tools!r}); "
            "assert n == 1, n"
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


@contextmanager
def postgres_deployment(
    root: Path, server_url: str, extra_env: Mapping[str, str] | None = None
) -> Iterator[Deployment]:
    """A migrated installation on a fresh PostgreSQL database of `server_url` (dropped after),
    for tests whose observation needs PostgreSQL whatever the suite's own database is."""
    name = create_postgres_database(server_url)
    try:
        env = {**base_child_env(root, database_url_for(server_url, name)), **(extra_env or {})}
        deployment = Deployment(root=root, env=env, database_name=name)
        deployment.migrate()
        yield deployment
    finally:
        drop_postgres_database(server_url, name)


@dataclass
class ServerProcess:
    """`manage.py serve` running on a port, its output going to a log file."""

    port: int
    process: "subprocess.Popen[bytes]"
    log_path: Path
    env: dict[str, str] = field(repr=False)

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
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def is_alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=SERVER_STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: the server dies without a word, mid-operation."""
        self.process.kill()
        self.process.wait(timeout=SERVER_STOP_TIMEOUT)


@dataclass
class RedisProcess:
    """A private `redis-server` on a port of its own, without persistence: a test stops it,
    hangs it (SIGSTOP) and starts it again on the same port, as an outage would."""

    port: int
    root: Path
    process: "subprocess.Popen[bytes] | None" = None

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
        assert self.process is None or self.process.poll() is not None, "already running"
        log_path = self.root / f"redis-{self.port}-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(log_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.answers, SERVER_START_TIMEOUT, f"redis-server on port {self.port}")

    def stop(self) -> None:
        """SIGTERM (after a SIGCONT, should it be paused), and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=SERVER_STOP_TIMEOUT)

    def pause(self) -> None:
        """SIGSTOP: it still accepts connections (the kernel does) but answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def _launch(deployment: Deployment, env: dict[str, str], port: int) -> ServerProcess:
    log_path = deployment.root / f"server-{port}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--host", HOST, "--port", str(port)],
            cwd=PROJECT_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(port=port, process=process, log_path=log_path, env=env)


def _started_or_exited(server: ServerProcess) -> Callable[[], bool]:
    return lambda: not server.is_alive() or server.health_status() == 200


def start_server_on_port(
    deployment: Deployment, port: int, extra_env: Mapping[str, str] | None = None
) -> ServerProcess:
    """Start a server of `deployment` on `port` (e.g. to restart one) and wait for /healthz."""
    server = _launch(deployment, {**deployment.env, **(extra_env or {})}, port)
    try:
        wait_until(_started_or_exited(server), SERVER_START_TIMEOUT, f"a server on port {port}")
    except AssertionError:
        server.stop()
        raise
    if not server.is_alive():
        raise AssertionError(f"the server on port {port} exited; its log:\n{server.log_text()}")
    return server


def start_server(
    deployment: Deployment, extra_env: Mapping[str, str] | None = None
) -> ServerProcess:
    """Start a server of `deployment` on a free port and wait until /healthz answers 200."""
    env = {**deployment.env, **(extra_env or {})}
    failures: list[str] = []
    for _attempt in range(PORT_ATTEMPTS):
        server = _launch(deployment, env, free_port())
        try:
            wait_until(_started_or_exited(server), SERVER_START_TIMEOUT, f"{server} to start")
        except AssertionError:
            server.stop()
            raise AssertionError(
                f"server did not become healthy; its log:\n{server.log_text()}"
            ) from None
        if server.is_alive():
            return server
        log = server.log_text()
        failures.append(log)
        if "address already in use" not in log.lower():
            break
    raise AssertionError("server exited during start-up; its log:\n" + "\n---\n".join(failures))


# --- a raw JSON-RPC client over websockets -------------------------------------------------


class RawClient:
    """A hand-driven MCP client: sends exactly what a test says, reads replies with timeouts."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.notifications: list[dict[str, Any]] = []

    def next_id(self) -> int:
        """A request id not used yet on this connection."""
        return next(self._ids)

    async def send(self, message: Any) -> None:
        """Send any JSON value as one text frame."""
        await self.ws.send(json.dumps(message))

    async def recv(self, seconds: float = RECV_TIMEOUT) -> Any:
        """The next frame, decoded from JSON (fails when none arrives within `seconds`)."""
        frame = await asyncio.wait_for(self.ws.recv(), timeout=seconds)
        assert isinstance(frame, str), f"the server sent a binary frame: {frame!r}"
        return json.loads(frame)

    async def recv_response(self, request_id: Any, seconds: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The response with `request_id`; notifications before it are kept aside."""
        while True:
            message = await self.recv(seconds)
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications.append(message)
                continue
            assert isinstance(message, dict), f"expected a response, got {message!r}"
            assert message.get("id") == request_id, (
                f"expected the reply to {request_id!r}, got {message!r}"
            )
            assert message.get("jsonrpc") == "2.0", message
            return message

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send a request with a fresh id and return its response (result or error)."""
        request_id = self.next_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.recv_response(request_id)

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)

    async def initialize(self, version: str = LATEST_VERSION) -> dict[str, Any]:
        """The handshake: initialize, then notifications/initialized; the initialize result."""
        response = await self.request(
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "e2e-raw-client", "version": "0"},
            },
        )
        assert "result" in response, response
        await self.notify("notifications/initialized")
        return dict(response["result"])

    async def call_tool(self, name: str, arguments: Any) -> dict[str, Any]:
        """A tools/call request; its whole response."""
        return await self.request("tools/call", {"name": name, "arguments": arguments})

    async def assert_answers_ping(self) -> None:
        """The very next frame the server sends is the reply to a new ping.

        The server handles one connection's frames in order, so this also proves that nothing
        sent before the ping produced a reply.
        """
        request_id = f"ping-{self.next_id()}"
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
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
async def raw_connection(
    url: str,
    *,
    subprotocols: Sequence[Subprotocol] | None = (MCP_SUBPROTOCOL,),
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
    local_address: str | None = None,
    max_queue: int = 16,
) -> AsyncIterator[ClientConnection]:
    """A plain `websockets` connection (no proxy, no compression) to the server.

    `local_address` (e.g. 127.0.0.2) makes the server see another client address.
    `max_queue` frames received but not yet read are buffered before the client stops reading
    from the socket (1 makes a client that does not read hold almost nothing itself).
    """
    extra: dict[str, Any] = {}
    if local_address is not None:
        extra["local_addr"] = (local_address, 0)
    async with connect(
        url,
        subprotocols=list(subprotocols) if subprotocols is not None else None,
        additional_headers=dict(headers) if headers else None,
        origin=Origin(origin) if origin is not None else None,
        proxy=None,
        compression=None,
        open_timeout=RECV_TIMEOUT,
        max_queue=max_queue,
        **extra,
    ) as ws:
        yield ws


@asynccontextmanager
async def raw_client(
    server: ServerProcess, token: str, *, version: str | None = LATEST_VERSION
) -> AsyncIterator[RawClient]:
    """A RawClient connected with `?token=`, initialized at `version` unless it is None."""
    async with raw_connection(server.ws_url(token)) as ws:
        client = RawClient(ws)
        if version is not None:
            await client.initialize(version)
        yield client
