"""Server processes (serve, runoperations, redis-server…) for tests and benchmarks, and the
commands runcluster runs before it hands over to supervisord.

Start a command in a process group of its own, its output going to a log file; wait until
it is ready (an HTTP status, a listening port, a log line:
a condition checked until it holds, never a fixed sleep) or fail at once when it exits; stop
it with SIGTERM, then SIGKILL after a grace. Imports no Django: tests and benchmarks start
the product only through `manage.py`.
"""

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
POLL_INTERVAL = 0.05
READY_TIMEOUT = 30.0
STOP_GRACE = 10.0
COMMAND_TIMEOUT = 120.0
CONNECT_TIMEOUT = 0.5
ERROR_MARKERS = ("Traceback", " ERROR ", " CRITICAL ")
# Variables of the parent that must not leak into a child of a deployment of its own.
SCRUBBED_PREFIXES = ("MCP_", "DATABASE_", "REDIS_", "DJANGO_")
SCRUBBED_NAMES = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "CSRF_TRUSTED_ORIGINS",
    "PROMETHEUS_MULTIPROC_DIR",
)
_PR_SET_PDEATHSIG = 1


class NotReady(RuntimeError):
    """A process exited, or did not become ready in time; the message ends with its log."""


class CommandFailed(RuntimeError):
    """A command run to completion exited non-zero; the message has its output."""


def scrubbed_env(
    base: Mapping[str, str] | None = None,
    *,
    prefixes: Sequence[str] = SCRUBBED_PREFIXES,
    names: Iterable[str] = SCRUBBED_NAMES,
) -> dict[str, str]:
    """`base` (the environment by default) without the service's own settings."""
    dropped = set(names)
    source = os.environ if base is None else base
    return {
        key: value
        for key, value in source.items()
        if not key.startswith(tuple(prefixes)) and key not in dropped
    }


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (a child may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on `host`:`port` right now."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether a GET of `url` answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _benchmark_child() -> None:
    raise_nofile_limit()
    die_with_parent()


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """`command` prefixed with `taskset -c CPU` (taskset execs it), unchanged for None."""
    return list(command) if cpu is None else ["taskset", "-c", str(cpu), *command]


def run_command(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    stdin: str | None = None,
    timeout: float | None = COMMAND_TIMEOUT,
) -> "subprocess.CompletedProcess[str]":
    """Run a command to completion with its output captured (not checked); None: no bound."""
    return subprocess.run(
        list(command),
        env=dict(env),
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_checked(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    stdin: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> str:
    """Run a command to completion; its stdout, or CommandFailed with all its output."""
    done = run_command(command, env=env, cwd=cwd, stdin=stdin, timeout=timeout)
    if done.returncode != 0:
        raise CommandFailed(
            f"{' '.join(command[:4])} exited with {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
        )
    return done.stdout


def describe_exit(code: int) -> str:
    """`exit code 3`, or `signal SIGKILL` for a process a signal ended."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class ManagedProcess:
    """A child in a process group of its own, whose output is logged to a file."""

    def __init__(
        self,
        name: str,
        popen: "subprocess.Popen[bytes]",
        log_path: Path,
        *,
        group: bool = True,
    ) -> None:
        self.name = name
        self.group = group
        self.popen = popen
        self.log_path = log_path

    @classmethod
    def start(
        cls,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | str | None = None,
        cpu: int | None = None,
        group: bool = True,
        benchmark: bool = False,
    ) -> "ManagedProcess":
        """Start `command`, its output appended to `log_path`, pinned to `cpu` when given. In
        a process group of its own unless `group` is false (then a terminal's Ctrl-C reaches it
        too, and signals go to it alone). `benchmark` raises the child's open-file limit and
        has it die with this process (a fork-time hook: only from single-threaded callers)."""
        sink: IO[bytes] = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                pinned(command, cpu),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                # Its own process group: a terminal's Ctrl-C reaches the parent only, which
                # stops the children in order; a signal to the group reaches their children.
                process_group=0 if group else None,
                preexec_fn=_benchmark_child if benchmark else None,
            )
        finally:
            sink.close()
        return cls(name, popen, log_path, group=group)

    @property
    def pid(self) -> int:
        """The process id (taskset execs the command, so this is the command itself)."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def log_text(self) -> str:
        """Everything it wrote so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last lines it wrote, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def error_lines(self) -> list[str]:
        """The lines of its log that report an error."""
        return [
            line for line in self.log_text().splitlines() if any(m in line for m in ERROR_MARKERS)
        ]

    def count_lines(self, needle: str) -> int:
        """How many lines of its log contain `needle`."""
        return sum(needle in line for line in self.log_text().splitlines())

    def wait_ready(
        self, ready: Callable[[], bool], *, what: str, timeout: float = READY_TIMEOUT
    ) -> None:
        """Return once `ready()` holds; NotReady (with the log) when it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.alive():
                raise NotReady(f"{self.name} exited before {what}:\n{self.log_tail(60)}")
            if time.monotonic() >= deadline:
                raise NotReady(f"{self.name}: no {what} after {timeout:g} s:\n{self.log_tail(60)}")
            time.sleep(POLL_INTERVAL)

    def wait_http_ok(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until a GET of `url` answers 200."""
        self.wait_ready(lambda: http_ok(url), what=f"200 from {url}", timeout=timeout)

    def wait_log_line(self, text: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until its log has a line containing `text`."""
        self.wait_ready(lambda: text in self.log_text(), what=repr(text), timeout=timeout)

    def send_signal(self, signum: int) -> None:
        """Signal its process group, or it alone when it has none (nothing when it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.group:
                os.killpg(self.popen.pid, signum)
            elif self.popen.returncode is None:
                self.popen.send_signal(signum)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL when it has not exited after `grace` seconds."""
        stop_all([self], grace)

    def kill(self) -> None:
        """SIGKILL: it dies without a word, mid-operation."""
        self.send_signal(signal.SIGKILL)
        self.popen.wait()


def stop_all(processes: Sequence[ManagedProcess], grace: float = STOP_GRACE) -> None:
    """SIGTERM every process still running (SIGCONT first, should one be paused), wait up to
    `grace` seconds, then SIGKILL the rest. Every process has ended, and its group been
    killed, when this returns."""
    running = [process for process in processes if process.alive()]
    for process in running:
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + grace
    while any(process.alive() for process in running) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    for process in processes:
        # Also whatever the leader left behind in its group.
        process.send_signal(signal.SIGKILL)
        process.popen.wait()
