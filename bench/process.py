"""Spawning pinned server processes, waiting for them to be ready, and stopping them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
POLL_INTERVAL = 0.05
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
ERROR_MARKERS = ("Traceback", " ERROR ", " CRITICAL ")


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the harness dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def prepare_child() -> None:
    """Run in a spawned server before exec: more open files, and no outliving the harness."""
    raise_nofile_limit()
    die_with_parent()


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """`command` prefixed with `taskset -c CPU`, or unchanged when not pinning."""
    if cpu is None:
        return list(command)
    return ["taskset", "-c", str(cpu), *command]


def pinning_available() -> bool:
    """Whether `taskset` exists and the machine has at least two CPUs to pin to."""
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, alive: Callable[[], bool]
) -> None:
    """Poll `predicate` until it holds; fail after `timeout` or as soon as `alive()` is false."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if not alive():
            raise RuntimeError(f"{what}: the process exited before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(POLL_INTERVAL)


def http_ok(url: str) -> bool:
    """Whether a GET of `url` answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ServerProcess:
    """A server running in its own process group, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] | None = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        """The process id (taskset execs the server, so this is the server itself)."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole process group, then SIGKILL it if it lingers."""
        if self.alive():
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        # Children that outlived the leader (none expected) still share the group.
        _signal_group(self.popen.pid, signal.SIGKILL)
        if self.log_file is not None:
            self.log_file.close()


def logged_errors(log_path: Path) -> list[str]:
    """The lines of a server log that report an error (none when it cannot be read)."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if any(m in line for m in ERROR_MARKERS)]


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def spawn(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    cpu: int | None,
) -> ServerProcess:
    """Start `command` pinned to `cpu` in a new session, with a raised open-file limit."""
    log_file = log_path.open("ab")
    try:
        popen = subprocess.Popen(
            pinned(command, cpu),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # The harness is single-threaded, so preexec_fn is safe here.
            preexec_fn=prepare_child,
        )
    except BaseException:
        log_file.close()
        raise
    return ServerProcess(name=name, popen=popen, log_path=log_path, log_file=log_file)


@contextlib.contextmanager
def running(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    cpu: int | None,
    health_url: str,
) -> Iterator[ServerProcess]:
    """Run a server until the block ends; it is ready (health URL 200) when the block starts."""
    server = spawn(name, command, env=env, cwd=cwd, log_path=log_path, cpu=cpu)
    try:
        try:
            wait_until(
                lambda: http_ok(health_url),
                timeout=READY_TIMEOUT,
                what=f"{name} at {health_url}",
                alive=server.alive,
            )
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n--- {name} log ---\n{server.log_tail()}") from exc
        yield server
    finally:
        server.stop()


def run_checked(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 120.0
) -> str:
    """Run a command to completion and return its stdout; raise with its output if it fails."""
    completed = subprocess.run(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout
