"""A server restarted in place while CLIs are in the middle of their calls."""

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli.support import StreamingCli, cli_env, kinds
from tests.e2e.support import Deployment, free_port, start_server_on_port

# Small delays so the CLI keeps trying while the new server boots: about 2-3 s on a quiet
# machine, over 25 s (60 attempts) on a loaded one; 600 attempts keep trying for about 4 min.
BACKOFF = ["--reconnect-attempts", "600", "--backoff-initial", "0.1", "--backoff-max", "0.4"]


@dataclass(frozen=True)
class Ended:
    """How one CLI ended."""

    status: int
    events: list[dict[str, Any]]
    stderr: str

    def kinds(self) -> list[str]:
        """The event names, in order."""
        return kinds(self.events)


@dataclass(frozen=True)
class Restart:
    """Two CLIs that were mid-call when their server restarted: one without --retry, one with."""

    reported: Ended
    retried: Ended
    env: dict[str, str]


@contextlib.contextmanager
def restarted_during(
    deployment: Deployment,
    home: Path,
    token: str,
    *,
    reported: Sequence[str],
    retried: Sequence[str],
) -> Iterator[Restart]:
    """Start a dedicated server and both CLIs; once each reports progress, SIGTERM the server
    and start a new one on its port; how both CLIs ended."""
    port = free_port()
    first = start_server_on_port(deployment, port)
    env = cli_env(home, MCP_URL=first.ws_url(), MCP_TOKEN=token)
    clis = [StreamingCli.start(command, env) for command in (reported, retried)]
    second = None
    try:
        for cli in clis:
            cli.wait_for_event(lambda event: event["event"] == "progress")
        first.stop()
        second = start_server_on_port(deployment, port)
        outcomes = [Ended(*cli.finish()) for cli in clis]
        yield Restart(reported=outcomes[0], retried=outcomes[1], env=env)
    finally:
        for cli in clis:
            cli.kill()
        first.stop()
        if second is not None:
            second.stop()
