"""Helpers for the client tests: run `mcp-ws` as a subprocess (plain, streamed or under a pty)
and start a server of the e2e deployment on a chosen port (to restart it in place)."""

import contextlib
import errno
import fcntl
import json
import os
import pty
import queue
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.support import (
    PROJECT_DIR,
    PYTHON,
)

CLI = [PYTHON, "-m", "mcp_server.cli"]
CLI_TIMEOUT = 60.0
LINE_TIMEOUT = 30.0
PTY_COLUMNS = 110
PTY_READ_BYTES = 65536
_SCRUBBED = ("MCP_URL", "MCP_API_URL", "MCP_TOKEN", "MCP_WS_CONFIG", "XDG_CONFIG_HOME", "COLUMNS")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for the CLI with its own HOME (so no real config file is read)."""
    env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED}
    env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color"})
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str], env: Mapping[str, str], timeout: float = CLI_TIMEOUT
) -> "subprocess.CompletedProcess[str]":
    """Run mcp-ws to completion with pipes (so stdout is not a TTY)."""
    return subprocess.run(
        [*CLI, *args],
        cwd=PROJECT_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` parsed as JSON."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    """The event names, in order."""
    return [event["event"] for event in events]


@dataclass
class StreamingCli:
    """mcp-ws running in the background; its stdout lines arrive in a queue as printed."""

    process: "subprocess.Popen[str]"
    lines: list[str] = field(default_factory=list)
    _queue: "queue.Queue[str | None]" = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, args: Sequence[str], env: Mapping[str, str]) -> "StreamingCli":
        """Start the CLI with piped stdout and stderr."""
        process = subprocess.Popen(
            [*CLI, *args],
            cwd=PROJECT_DIR,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        cli = cls(process)
        threading.Thread(target=cli._pump, daemon=True).start()
        return cli

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def next_event(self, timeout: float = LINE_TIMEOUT) -> dict[str, Any]:
        """The next stdout line, parsed as JSON (fails on timeout or end of output)."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s; so far: {self.lines}") from None
        if line is None:
            self._queue.put(None)
            raise AssertionError(f"the CLI ended early: {self.lines}; {self.stderr_text()}")
        self.lines.append(line)
        return dict(json.loads(line))

    def wait_for_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = LINE_TIMEOUT
    ) -> dict[str, Any]:
        """Read events until one satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(deadline - time.monotonic(), 0.01))
            if predicate(event):
                return event

    def finish(self, timeout: float = CLI_TIMEOUT) -> tuple[int, list[dict[str, Any]], str]:
        """Wait for the exit; (status, every stdout event, stderr)."""
        status = self.process.wait(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return status, [json.loads(line) for line in self.lines if line.strip()], self.stderr_text()

    def interrupt_at_progress(self) -> tuple[int, list[dict[str, Any]], str]:
        """Ctrl-C (SIGINT) once a progress event arrives; then `finish()`."""
        self.wait_for_event(lambda event: event["event"] == "progress")
        self.process.send_signal(signal.SIGINT)
        return self.finish()

    def stderr_text(self) -> str:
        """What the CLI wrote to stderr (only once it has exited)."""
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def kill(self) -> None:
        """Stop it if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=CLI_TIMEOUT)


def run_cli_in_pty(
    args: Sequence[str], env: Mapping[str, str], timeout: float = CLI_TIMEOUT
) -> tuple[int, str]:
    """Run mcp-ws on a pseudo-terminal (so it draws its live bar); (status, all output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, PTY_COLUMNS, 0, 0))
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=PROJECT_DIR,
        env=dict(env),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                continue
            try:
                chunk = os.read(master, PTY_READ_BYTES)
            except OSError as exc:  # EIO: the child closed the terminal
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
        status = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            os.close(master)
    return status, b"".join(chunks).decode("utf-8", "replace")
