"""Run the official MCP conformance suite against a real server (`make conformance`), or serve
the conformance tenant for running it by hand (`make conformance-server`).

A fresh installation each time: a temporary var dir with its own SQLite database, migrated,
with the conformance tenant (`manage.py conformance_tenant`) served to callers without a token
(MCP_ANONYMOUS_TENANT), started with the production command (`manage.py serve`). The suite
(package.json here, installed by `npm ci` into node_modules/, Node 22 included) runs once per
revision against that server: @modelcontextprotocol/conformance@0.1.16, every server scenario
of 2025-11-25 (pending ones included, `--suite all`), then 0.2.0-alpha.12 (the npm alias
`conformance-2026`), the frozen set 2026-07-28 requires (`--requirements 2026-07-28`, the
stateless wire). A failure not listed in that revision's expected-failures file (each entry
with its reason) fails the run.
"""

import argparse
import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
PROJECT_DIR = HERE.parent
sys.path.insert(0, str(PROJECT_DIR))

from mcp_server.processes import ManagedProcess, free_port, run_checked, scrubbed_env  # noqa: E402

HOST = "127.0.0.1"
TENANT = "conformance"
NODE = HERE / "node_modules" / ".bin" / "node"
PACKAGES = HERE / "node_modules" / "@modelcontextprotocol"


@dataclass(frozen=True)
class Revision:
    """One run of the suite: its package, the scenarios it selects, its expected failures."""

    name: str
    package: str
    selection: tuple[str, ...]
    expected_failures: Path

    @property
    def suite(self) -> Path:
        """The suite's entry point."""
        return PACKAGES / self.package / "dist" / "index.js"

    def selection_for(self, extra: Sequence[str]) -> tuple[str, ...]:
        """The selection, unless `extra` names one scenario: then that scenario at this
        revision's wire (a requirement set cannot be combined with --scenario)."""
        if "--scenario" in extra:
            return ("--spec-version", self.name)
        return self.selection


REVISIONS = (
    Revision(
        "2025-11-25",
        "conformance",
        ("--suite", "all", "--spec-version", "2025-11-25"),
        HERE / "expected-failures.yml",
    ),
    Revision(
        "2026-07-28",
        "conformance-2026",
        ("--requirements", "2026-07-28"),
        HERE / "expected-failures-2026-07-28.yml",
    ),
)
START_TIMEOUT = 60.0
SETUP_TIMEOUT = 120.0
# Every scenario together takes well under a minute; a hung one must not hang `make test`.
SUITE_TIMEOUT = 300.0


def server_env(var_dir: Path) -> dict[str, str]:
    """The server's environment: this installation only, the fixtures, no token needed."""
    env = scrubbed_env()
    env.update(
        {
            "MCP_VAR_DIR": str(var_dir),
            "SECRET_KEY": secrets.token_urlsafe(50),
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            "MCP_TOOL_APPS": "conformance_fixtures",
            "MCP_ANONYMOUS_TENANT": TENANT,
            "MCP_CACHE_PREFIX": f"conformance-{secrets.token_hex(4)}",
            "MCP_CHANNEL_PREFIX": f"conformance-{secrets.token_hex(4)}",
        }
    )
    return env


def start_server(var_dir: Path, port: int) -> ManagedProcess:
    """Migrate a fresh database, create the conformance tenant, and start serving it on
    `port` (wait for it with `wait_http_ok`)."""
    env = server_env(var_dir)
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput"], ["conformance_tenant"]):
        run_checked([*manage, *command], env=env, cwd=PROJECT_DIR, timeout=SETUP_TIMEOUT)
    server = ManagedProcess.start(
        f"serve-{port}",
        [*manage, "serve", "--host", HOST, "--port", str(port)],
        env=env,
        cwd=PROJECT_DIR,
        log_path=var_dir / "server.log",
    )
    return server


def run_suite(revision: Revision, url: str, results: Path, extra: Sequence[str]) -> int:
    """Run `revision`'s scenarios against `url` (results in `results`, emptied first); the
    suite's exit status."""
    shutil.rmtree(results, ignore_errors=True)
    command = [
        str(NODE),
        str(revision.suite),
        "server",
        "--url",
        url,
        *revision.selection_for(extra),
        "--expected-failures",
        str(revision.expected_failures),
        "-o",
        str(results),
        *extra,
    ]
    print(f"conformance: {revision.name} ({revision.package})", flush=True)
    try:
        return subprocess.run(command, cwd=HERE, timeout=SUITE_TIMEOUT, check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"conformance: the suite did not finish within {SUITE_TIMEOUT:g} s", file=sys.stderr)
        return 1


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite (or, with --serve, only serve) and return the exit status."""
    # SIGTERM (and SIGINT, even where a shell started us ignoring it) stops the server first:
    # it runs in a process group of its own, which no terminal signal reaches.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="serve until stopped (Ctrl-C)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--revision",
        choices=[revision.name for revision in REVISIONS],
        action="append",
        help="run only this revision's suite (repeatable; default: every one)",
    )
    parser.add_argument("suite_args", nargs="*", help="more suite options, after --")
    args = parser.parse_args(argv)
    revisions = [r for r in REVISIONS if args.revision is None or r.name in args.revision]
    installed = NODE.exists() and all(revision.suite.exists() for revision in revisions)
    if not args.serve and not installed:
        print("conformance: the suite is not installed (npm ci in conformance/)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as var:
        var_dir = Path(var)
        port = args.port or free_port()
        try:
            server = start_server(var_dir, port)
        except KeyboardInterrupt:
            return 130
        url = f"http://{HOST}:{port}/mcp"
        try:
            server.wait_http_ok(f"http://{HOST}:{port}/healthz", START_TIMEOUT)
            if args.serve:
                print(f"Serving the conformance tenant on {url} (Ctrl-C stops it)", flush=True)
                print(f"Server log: {var_dir / 'server.log'}", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    server.popen.wait()
                return 0
            statuses = {
                revision.name: run_suite(
                    revision, url, HERE / "results" / revision.name, args.suite_args
                )
                for revision in revisions
            }
            for name, code in statuses.items():
                print(f"conformance: {name}: {'passed' if code == 0 else 'FAILED'}")
            status = max(statuses.values())
            errors = server.error_lines()
            if status != 0 and errors:
                print("conformance: errors in the server log:", *errors[-20:], sep="\n")
            return status
        except KeyboardInterrupt:
            return 130
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
