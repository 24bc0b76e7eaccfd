"""Where results go: JSON lines for programs or rich text for people; exit statuses."""

import enum
import json
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console

from mcp_server.cli.config import ClientConfig

PIPE_WIDTH = 160


class ExitCode(enum.IntEnum):
    """Exit statuses of mcp-ws."""

    OK = 0
    FAILED = 1  # the tool reported an error, or the server answered with an error
    USAGE = 2
    CONNECTION = 3  # cannot connect, credentials refused, reconnection gave up
    INTERRUPTED = 4  # the connection dropped during the call and it was not re-run
    CANCELLED = 130  # Ctrl-C


@dataclass(frozen=True)
class Output:
    """Where and how to print: JSON lines or people's text."""

    json: bool
    stdout: TextIO
    stderr: TextIO

    def console(self) -> Console:
        """A rich console on stdout (wide when it is a file or a pipe: nothing to cut)."""
        width = None if self.stdout.isatty() else PIPE_WIDTH
        return Console(file=self.stdout, highlight=False, width=width)

    def error_console(self) -> Console:
        """A rich console on stderr."""
        return Console(file=self.stderr, highlight=False)

    def json_line(self, value: Any) -> None:
        """Write one JSON value on its own line."""
        self.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
        self.stdout.flush()

    def error(self, config: ClientConfig | None, message: str, *, event: bool = True) -> None:
        """Report a failure on stderr (and as an error event in JSON mode), redacted."""
        text = config.redact(message) if config is not None else message
        if self.json and event:
            self.json_line({"event": "error", "message": text})
        self.stderr.write(f"mcp-ws: error: {text}\n")
        self.stderr.flush()
