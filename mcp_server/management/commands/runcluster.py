"""`manage.py runcluster`: a local cluster of web and worker processes, for people and tests.

It checks that Redis answers, migrates once, then runs N `manage.py serve` processes on
consecutive ports and M `manage.py runoperations` workers, all with `MCP_EXECUTION=worker` and
the same `REDIS_URL` and `DATABASE_URL`. Every line a child writes is prefixed with its name
(`web-8001 | ...`, `worker-1 | ...`). Ctrl-C or SIGTERM stops them all: SIGTERM to each child,
SIGKILL to those still running after a bound longer than their own shutdown (a second Ctrl-C
kills at once). A child that exits on its own stops the cluster with a non-zero exit.

Production runs the same two commands under a process manager instead: docs/operations.md.
"""

import os
import signal
import sys
import threading
from argparse import ArgumentParser
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from mcp_server.metrics import MULTIPROCESS_DIR_VARIABLE, clear_multiprocess_directory
from mcp_server.processes import ManagedProcess, accepts, describe_exit, run_command, stop_all

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS_HINT = (
    "Start one, e.g. `redis-server --port 6379 --save ''` (Debian: apt-get install "
    "redis-server) or `docker run --rm -p 6379:6379 redis`, or set REDIS_URL to a Redis "
    "that runs."
)
REDIS_TIMEOUT = 3.0
POLL_INTERVAL = 0.1
# From SIGTERM to SIGKILL: this much longer than the slowest clean stop of a child (a worker's
# MCP_WORKER_GRACE; a web process's goodbyes, then uvicorn's own shutdown, each bounded by
# MCP_SHUTDOWN_TIMEOUT), so a clean stop is never cut short.
STOP_MARGIN = 10.0
SUPERVISOR = "runcluster"


@dataclass(frozen=True)
class Child:
    """One process of the cluster: its name (the prefix of its output) and manage.py arguments."""

    name: str
    args: tuple[str, ...]
    # The port a web process listens on (the cluster is ready when all accept), None for workers.
    port: int | None = None


class Supervisor:
    """Runs child processes together, prefixes their output, and stops them all together."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        manage: Sequence[str],
        env: Mapping[str, str],
        connect_host: str,
        stop_timeout: float,
        out: OutputWrapper,
    ) -> None:
        self._children = list(children)
        self._manage = list(manage)
        self._env = dict(env)
        self._connect_host = connect_host
        self._stop_timeout = stop_timeout
        self._out = out
        self._out_lock = threading.Lock()
        self._procs: dict[Child, ManagedProcess] = {}
        self._stopping = threading.Event()
        self._hurry = threading.Event()

    def say(self, name: str, line: str) -> None:
        """Write one line of output, prefixed with `name`."""
        with self._out_lock:
            self._out.write(f"{name} | {line.rstrip()}")
            self._out.flush()

    def run(self, on_ready: Callable[[], None]) -> tuple[Child, int] | None:
        """Start every child and supervise them until a signal or until one exits.

        `on_ready` is called once, when every web port accepts connections. Returns None after
        a stop asked by SIGINT or SIGTERM, else the child that exited on its own and its exit
        code. Every child has ended when this returns.
        """
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            for child in self._children:
                if not self._stopping.is_set():
                    self._start(child)
            return self._watch(on_ready)
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():
            self._hurry.set()
        else:
            self._stopping.set()

    def _start(self, child: Child) -> None:
        # In a process group of its own: Ctrl-C reaches the supervisor only, which stops the
        # children in order (SIGTERM, bounded wait, SIGKILL).
        process = ManagedProcess.start(
            child.name, [*self._manage, *child.args], env=self._env, on_line=self.say
        )
        self._procs[child] = process
        self.say(SUPERVISOR, f"started {child.name} (pid {process.pid}): {' '.join(child.args)}")

    def _watch(self, on_ready: Callable[[], None]) -> tuple[Child, int] | None:
        ports = [child.port for child in self._children if child.port is not None]
        ready = False
        while not self._stopping.wait(POLL_INTERVAL):
            for child, process in self._procs.items():
                code = process.popen.poll()
                if code is not None:
                    return child, code
            if not ready and all(accepts(self._connect_host, port) for port in ports):
                ready = True
                on_ready()
        return None

    def _stop_all(self) -> None:
        self._stopping.set()
        running = [child.name for child, process in self._procs.items() if process.alive()]
        if running:
            self.say(
                SUPERVISOR,
                f"stopping {', '.join(running)} "
                f"(up to {self._stop_timeout:g} s; Ctrl-C again kills them now)",
            )
        stop_all(
            list(self._procs.values()),
            self._stop_timeout,
            hurry=self._hurry,
            on_kill=lambda process: self.say(
                SUPERVISOR, f"{process.name} is still running: killing it (SIGKILL)"
            ),
        )


def redacted(url: str) -> str:
    """`url` with its password, if any, replaced by `***` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def check_redis(url: str) -> None:
    """Raise a CommandError saying how to start Redis unless `url` answers PING."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise CommandError(
            f"Redis does not answer at {redacted(url)} ({exc}).\n{START_REDIS_HINT}"
        ) from None


class Command(BaseCommand):
    """Run a local cluster: web processes, workers, one Redis and one database."""

    help = (
        "Run N web processes on consecutive ports and M workers (MCP_EXECUTION=worker) with "
        "Redis, until Ctrl-C."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare --web, --workers, --host and --base-port."""
        parser.add_argument("--web", type=int, default=2, help="web processes (default 2)")
        parser.add_argument("--workers", type=int, default=1, help="workers (default 1)")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--base-port", type=int, default=8001, help="port of the first web process"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check Redis, migrate, then supervise the cluster until a signal or a child's death."""
        web, workers, host, base_port = (
            options["web"],
            options["workers"],
            options["host"],
            options["base_port"],
        )
        if web < 1 or workers < 0:
            raise CommandError("--web must be at least 1 and --workers at least 0")
        ports = list(range(base_port, base_port + web))
        if ports[0] < 1 or ports[-1] > 65535:
            raise CommandError(f"ports {ports[0]}-{ports[-1]} are not all valid TCP ports")
        if workers and "runoperations" not in get_commands():
            raise CommandError("manage.py runoperations is not available: use --workers 0")

        busy = [port for port in ports if accepts(_connectable(host), port)]
        if busy:
            raise CommandError(f"something already listens on port {busy[0]}: pick --base-port")

        redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        check_redis(redis_url)
        env = self._child_env(redis_url, host, ports)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        self._migrate(manage, env)

        children = [
            Child(f"web-{port}", ("serve", "--host", host, "--port", str(port)), port)
            for port in ports
        ] + [Child(f"worker-{n}", ("runoperations",)) for n in range(1, workers + 1)]
        supervisor = Supervisor(
            children,
            manage=manage,
            env=env,
            connect_host=_connectable(host),
            stop_timeout=_stop_timeout(),
            out=self.stdout,
        )
        if not workers:
            supervisor.say(
                SUPERVISOR,
                "no workers: a tools/call waits in Redis for one and is reported interrupted "
                "after MCP_OPERATION_LOST_AFTER",
            )
        shown = _url_host(_connectable(host))
        urls = ", ".join(f"ws://{shown}:{port}/mcp" for port in ports)
        died = supervisor.run(
            lambda: supervisor.say(SUPERVISOR, f"ready: {urls} (Ctrl-C stops the cluster)")
        )
        if died is not None:
            child, code = died
            raise CommandError(
                f"{child.name} exited unexpectedly ({describe_exit(code)}); "
                "stopped the other processes"
            )
        supervisor.say(SUPERVISOR, "stopped")

    def _child_env(self, redis_url: str, host: str, ports: Sequence[int]) -> dict[str, str]:
        env = {
            **os.environ,
            "MCP_EXECUTION": "worker",
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
        }
        # The processes' metrics add up in one directory, emptied of the last run's values.
        metrics_dir = env.get(MULTIPROCESS_DIR_VARIABLE) or str(Path(settings.VAR_DIR) / "metrics")
        clear_multiprocess_directory(Path(metrics_dir))
        env[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
        if "MCP_ALLOWED_ORIGINS" not in env:
            # The console of every web process may open /mcp with its session cookie.
            hosts = dict.fromkeys([_url_host(_connectable(host)), "127.0.0.1", "localhost"])
            env["MCP_ALLOWED_ORIGINS"] = ",".join(
                f"http://{name}:{port}" for port in ports for name in hosts
            )
        return env

    def _migrate(self, manage: Sequence[str], env: Mapping[str, str]) -> None:
        completed = run_command([*manage, "migrate", "--noinput"], env=env, timeout=None)
        for line in (completed.stdout + completed.stderr).splitlines():
            self.stdout.write(f"migrate | {line}")
        self.stdout.flush()
        if completed.returncode != 0:
            raise CommandError(f"migrate failed ({describe_exit(completed.returncode)})")


def _stop_timeout() -> float:
    grace = float(getattr(settings, "MCP_WORKER_GRACE", 30.0))
    shutdown = float(getattr(settings, "MCP_SHUTDOWN_TIMEOUT", 10.0))
    return max(grace, 2 * shutdown) + STOP_MARGIN


def _connectable(host: str) -> str:
    """Where to check a port bound on `host`: wildcard addresses are checked on loopback."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
