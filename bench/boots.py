"""CPU of one start-up of each kind of process the test suite starts (issue 11).

    .venv/bin/python bench/boots.py [--project DIR] [--runs 5] [--kinds serve,check,...]

Each kind is started `--runs` times in turn with the others and its user + system CPU read
when it is ready: a command when it exits (its children included); `serve` at its first 200
from /healthz and `runoperations` at its "takes work" line (each its own process, not its
children). `history` and `pool` are the history writer's and a fan-out pool process's own
start-up, as `history_child` and `_start_pool_process` run it.
The medians are printed as one JSON object. `--project` runs another checkout's manage.py
(a worktree of main, for the base), with this interpreter.

`runoperations` needs PostgreSQL (BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/)
and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/13).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil

from mcp_server.processes import ManagedProcess, free_port, http_ok, scrubbed_env

PYTHON = sys.executable
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
READY_TIMEOUT = 60.0
WORKER_READY_LINE = "takes work from the dispatch streams"
HISTORY_BOOT = (
    "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
    "import mcp_server.runtime.history_child, django; django.setup();"
    "import mcp_server.runtime.history_serve"
)
POOL_BOOT = (
    "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
    "import multiprocessing.spawn, mcp_server.runtime.chunk_pool, django; django.setup()"
)
KINDS = ("python", "check", "shell", "history", "pool", "serve", "runoperations")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def run_to_end(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """User + system CPU of a command run to its end (its children included)."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited with {process.returncode}")
    return float(usage.ru_utime + usage.ru_stime)


def until_ready(
    command: list[str], env: dict[str, str], cwd: Path, log: Path, ready: Callable[..., bool]
) -> tuple[float, float]:
    """CPU of a server process when `ready(managed)` first holds: its own, and its children's."""
    managed = ManagedProcess.start("boot", command, env=env, cwd=cwd, log_path=log)
    try:
        managed.wait_ready(lambda: ready(managed), what="ready", timeout=READY_TIMEOUT)
        process = psutil.Process(managed.pid)
        children = sum(_cpu(child) for child in process.children(recursive=True))
        return _cpu(process), children
    finally:
        managed.stop()


def main() -> None:
    """Boot each kind `--runs` times, in turn; print the medians (seconds of CPU) as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    project: Path = args.project.resolve()
    manage = [PYTHON, str(project / "manage.py")]
    root = Path(tempfile.mkdtemp(prefix="boots-"))
    env = scrubbed_env() | {"MCP_VAR_DIR": str(root), "SECRET_KEY": secrets.token_urlsafe(50)}
    env["LOG_LEVEL"] = "INFO"
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=project, check=True)
    worker_env = dict(env)
    database = None
    if "runoperations" in kinds:
        import psycopg

        database = f"boots_{secrets.token_hex(4)}"
        with psycopg.connect(PG_URL + "postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        worker_env |= {
            "DATABASE_URL": PG_URL + database,
            "REDIS_URL": REDIS_URL,
            "MCP_CHANNEL_PREFIX": f"boots-{secrets.token_hex(4)}",
            "MCP_EXECUTION": "worker",
        }
        subprocess.run(
            [*manage, "migrate", "--noinput", "-v", "0"], env=worker_env, cwd=project, check=True
        )
    samples: dict[str, list[float]] = {}

    def serve_once() -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/healthz"
        command = [*manage, "serve", "--port", str(port)]
        own, _ = until_ready(command, env, project, root / "serve.log", lambda _: http_ok(url))
        samples.setdefault("serve", []).append(own)

    def worker_once() -> None:
        own, _ = until_ready(
            [*manage, "runoperations"],
            worker_env,
            project,
            root / "worker.log",
            lambda managed: managed.count_lines(WORKER_READY_LINE) > 0,
        )
        (root / "worker.log").unlink()
        samples.setdefault("runoperations", []).append(own)

    boots: dict[str, Callable[[], None]] = {
        "python": lambda: samples.setdefault("python", []).append(
            run_to_end([PYTHON, "-c", "pass"], env, project)
        ),
        "check": lambda: samples.setdefault("check", []).append(
            run_to_end([*manage, "check"], env, project)
        ),
        "shell": lambda: samples.setdefault("shell", []).append(
            run_to_end([*manage, "shell", "-c", "pass"], env, project)
        ),
        "history": lambda: samples.setdefault("history", []).append(
            run_to_end([PYTHON, "-c", HISTORY_BOOT], env, project)
        ),
        "pool": lambda: samples.setdefault("pool", []).append(
            run_to_end([PYTHON, "-c", POOL_BOOT], env, project)
        ),
        "serve": serve_once,
        "runoperations": worker_once,
    }
    try:
        for _ in range(args.runs):
            for kind in kinds:
                boots[kind]()
    finally:
        if database is not None:
            import psycopg

            with psycopg.connect(PG_URL + "postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(root, ignore_errors=True)
    medians = {kind: round(statistics.median(values), 3) for kind, values in samples.items()}
    print(json.dumps({"project": str(project), "runs": args.runs, "cpu_seconds": medians}))


if __name__ == "__main__":
    main()
