"""`manage.py runcluster`: a local cluster of web and worker processes under supervisord.

It checks that Redis answers and the ports are free, migrates once, writes a supervisord
configuration for N `manage.py serve` processes on consecutive ports and M `manage.py
runoperations` workers (all with `MCP_EXECUTION=worker` and the same `REDIS_URL` and
`DATABASE_URL`), then becomes supervisord. supervisord restarts a process that exits, whatever
its reason, while the others keep serving, as a deployment's process manager does; its own
lines (spawned, exited, success) go to the terminal, each process's output to
`var/cluster/logs/<name>.log`. Ctrl-C or SIGTERM stops them all: SIGTERM to each, SIGKILL to
those still running after a bound longer than their own shutdown.

Production runs the same two commands under its own process manager: docs/operations.md.
"""

import os
import secrets
import shlex
import shutil
import sys
from argparse import ArgumentParser
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError

from mcp_server.metrics import MULTIPROCESS_DIR_VARIABLE, clear_multiprocess_directory
from mcp_server.processes import accepts, describe_exit, run_command

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS_HINT = (
    "Start one, e.g. `redis-server --port 6379 --save ''` (Debian: apt-get install "
    "redis-server) or `docker run --rm -p 6379:6379 redis`, or set REDIS_URL to a Redis "
    "that runs."
)
REDIS_TIMEOUT = 3.0
# From SIGTERM to SIGKILL: this much longer than the slowest clean stop of a child (a worker's
# MCP_WORKER_GRACE; a web process's goodbyes, then uvicorn's own shutdown, each bounded by
# MCP_SHUTDOWN_TIMEOUT), so a clean stop is never cut short.
STOP_MARGIN = 10.0
# A process that stays up this long has started; one that exits sooner is retried this often,
# then given up (FATAL) while the others keep running.
START_SECONDS = 1
START_RETRIES = 3
LOG_BYTES = "10MB"


def program(name: str, command: Sequence[str], *, stop_timeout: float, logs: Path) -> str:
    """The supervisord section that runs `command` as `name`, restarted whenever it exits."""
    lines = {
        "command": shlex.join(command),
        "directory": str(settings.BASE_DIR),
        "autostart": "true",
        "autorestart": "true",
        "startsecs": str(START_SECONDS),
        "startretries": str(START_RETRIES),
        "stopsignal": "TERM",
        "stopwaitsecs": f"{stop_timeout:g}",
        # SIGTERM and SIGKILL reach what the process started too.
        "stopasgroup": "true",
        "killasgroup": "true",
        "redirect_stderr": "true",
        "stdout_logfile": str(logs / f"{name}.log"),
        "stdout_logfile_maxbytes": LOG_BYTES,
        "stdout_logfile_backups": "1",
    }
    return _section(f"program:{name}", lines)


def supervisord_conf(programs: Sequence[str], *, directory: Path) -> str:
    """A supervisord configuration in the foreground (its lines on stdout and in
    `directory`/supervisord.log) with `programs`; `supervisorctl -c <it>` reaches it through
    a socket in `directory`, with credentials made for this run."""
    socket = str(directory / "supervisor.sock")
    credentials = {"username": "runcluster", "password": secrets.token_urlsafe(16)}
    daemon = {
        "nodaemon": "true",
        "logfile": str(directory / "supervisord.log"),
        "logfile_maxbytes": LOG_BYTES,
        "logfile_backups": "1",
        "loglevel": "info",
        "pidfile": str(directory / "supervisord.pid"),
        "childlogdir": str(directory / "logs"),
        "directory": str(settings.BASE_DIR),
    }
    if os.geteuid() == 0:
        daemon["user"] = "root"  # said, so that supervisord does not warn it kept root's rights
    sections = [
        _section("supervisord", daemon),
        _section("unix_http_server", {"file": socket, "chmod": "0700", **credentials}),
        _section(
            "rpcinterface:supervisor",
            {"supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"},
        ),
        _section("supervisorctl", {"serverurl": f"unix://{socket}", **credentials}),
        *programs,
    ]
    return "\n".join(sections)


def _section(name: str, values: Mapping[str, str]) -> str:
    # supervisord expands %(name)s in values: a literal % is written %%.
    body = "".join(f"{key}={value.replace('%', '%%')}\n" for key, value in values.items())
    return f"[{name}]\n{body}"


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
        "Redis under supervisord, which restarts any that exits, until Ctrl-C."
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
        """Check Redis and the ports, migrate, then run the cluster under supervisord."""
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
        supervisord = shutil.which("supervisord", path=_search_path())
        if supervisord is None:
            raise CommandError(
                "supervisord is not installed: pip install supervisor (make install)"
            )

        busy = [port for port in ports if accepts(_connectable(host), port)]
        if busy:
            raise CommandError(f"something already listens on port {busy[0]}: pick --base-port")

        redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        check_redis(redis_url)
        env = self._child_env(redis_url, host, ports)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        self._migrate(manage, env)

        directory = Path(settings.VAR_DIR) / "cluster"
        logs = directory / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stop_timeout = _stop_timeout()
        children = {
            f"web-{port}": [*manage, "serve", "--host", host, "--port", str(port)] for port in ports
        } | {f"worker-{n}": [*manage, "runoperations"] for n in range(1, workers + 1)}
        programs = [
            program(name, command, stop_timeout=stop_timeout, logs=logs)
            for name, command in children.items()
        ]
        conf = directory / "supervisord.conf"
        conf.touch(mode=0o600)  # it holds supervisorctl's password
        conf.chmod(0o600)
        conf.write_text(supervisord_conf(programs, directory=directory))

        shown = _url_host(_connectable(host))
        urls = ", ".join(f"ws://{shown}:{port}/mcp" for port in ports)
        self.stdout.write(
            f"runcluster | {', '.join(children)} under supervisord ({conf}); serving {urls}; "
            f"their output in {logs}; a process that exits is restarted; Ctrl-C stops them all"
        )
        if not workers:
            self.stdout.write(
                "runcluster | no workers: a call of a long tool waits in Redis for one and is "
                "reported interrupted after MCP_OPERATION_UNCLAIMED_AFTER"
            )
        self.stdout.flush()
        # supervisord takes this process's place: Ctrl-C and SIGTERM reach it directly.
        os.execve(supervisord, [supervisord, "--nodaemon", "--configuration", str(conf)], env)

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


def _search_path() -> str:
    """Where to look for supervisord: beside this Python first (its virtualenv), then PATH."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _connectable(host: str) -> str:
    """Where to check a port bound on `host`: wildcard addresses are checked on loopback."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
