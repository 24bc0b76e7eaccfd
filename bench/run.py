"""`make bench`: this service against the official MCP SDK and a raw `websockets` server over
WebSocket, and against FastMCP and django-mcpz over Streamable HTTP.

Then the scale-out benchmark (bench/cluster.py) when PostgreSQL and Redis answer. Method in
docs/BENCHMARKS.md; writes bench/results/latest.md and, with --write-docs, the docs' sections.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: import `bench.*` from the repository root, not siblings from bench/.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import functools
import shlex
from typing import Any

from bench.cluster import MARKER as CLUSTER_MARKER
from bench.cluster import run_and_report
from bench.harness import log, measure_server, pinning_from, run_plan, scratch_dir
from bench.http_load import HttpFirstProgress, HttpModernThroughput, HttpThroughput
from bench.long_running import HistoryProfile, ImagesPing, ImagesProgress
from bench.report import (
    ROOT,
    now,
    pinning_text,
    replace_between,
    results_section,
    run_line,
    write_latest,
)
from bench.scenarios import (
    ConnectInitialize,
    IdleMemory,
    ModernThroughput,
    QueueCancelPing,
    Scenario,
    Throughput,
    UnreadReplies,
)
from bench.servers import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    DEMO_DIR,
    FASTMCP,
    MCPZ,
    RAW,
    SDK,
    WARMUP_DIR,
    ServiceSetup,
    ServiceTarget,
    Target,
    redis_unavailable,
    services_unavailable,
)
from bench.storm import ConnectionStorm
from mcp_server.processes import raise_nofile_limit

LATEST = ROOT / "bench" / "results" / "latest.md"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
# "cluster" is the scale-out benchmark of bench/cluster.py (PostgreSQL and Redis; skipped,
# with a warning, when either is unreachable). "redis" is this service with REDIS_URL set,
# measured only by the scenarios that depend on the channel layer (the connection storm;
# skipped, with a warning, when Redis is unreachable).
# "fastmcp" and "mcpz" speak only Streamable HTTP and run only its scenarios (bench/http_load.py).
TARGET_KEYS = ("service", "redis", "sdk", "raw", "fastmcp", "mcpz", "cluster")
SERVER_KEYS = ("service", "redis", "sdk", "raw", "fastmcp", "mcpz")
SERVERS, ON_OFF = ("uvicorn", "daphne", "both"), ("on", "off", "both")


def build_plan(args: argparse.Namespace, setup: ServiceSetup) -> list[Scenario]:
    """The foundation scenarios (memory last, on a warm server), then the service-only ones."""
    plan: list[Scenario] = [
        ConnectInitialize(count=args.connects),
        Throughput(concurrency=1, warmup_s=args.warmup, window_s=args.window),
        Throughput(concurrency=50, warmup_s=args.warmup, window_s=args.window),
        IdleMemory(connections=args.idle_connections),
        HttpThroughput(concurrency=1, warmup_s=args.warmup, window_s=args.window),
        HttpThroughput(concurrency=50, warmup_s=args.warmup, window_s=args.window),
        # The same calls in the 2026-07-28 revision (the service only): the envelope's cost.
        *(
            era(concurrency=c, warmup_s=args.warmup, window_s=args.window)
            for era in (ModernThroughput, HttpModernThroughput)
            for c in (1, 50)
        ),
    ]
    plan += [HttpFirstProgress(calls=args.http_progress_calls)] if args.http_progress_calls else []
    plan += (
        [ConnectionStorm(connections=args.storm_connections)] if args.storm_connections > 0 else []
    )
    plan += [HistoryProfile(seconds=args.profile_seconds)] if args.profile_seconds > 0 else []
    if setup.images > 0:
        root = str(setup.tenant_root)
        plan.append(ImagesProgress(setup.images, DEMO_DIR, WARMUP_DIR, root))
        plan.append(ImagesPing(setup.images, DEMO_DIR, args.ping_interval_ms, root))
    # The last two leave traces: thousands of cancelled rows in history, then whatever memory
    # a client that does not read cost the server.
    plan += [QueueCancelPing(count=args.queued_calls)] if args.queued_calls > 0 else []
    plan.append(UnreadReplies())
    return [scenario for scenario in plan if not args.scenarios or scenario.kind in args.scenarios]


def build_targets(args: argparse.Namespace, setup: ServiceSetup) -> list[Target]:
    """The servers of this run, the service variant(s) first."""
    targets: list[Target] = []
    if "service" in args.only:
        variants = ("uvicorn", "daphne") if args.server == "both" else (args.server,)
        modes = {"on": (True,), "off": (False,), "both": (True, False)}
        writers = ("thread", "process") if args.history_writer == "both" else (args.history_writer,)
        targets += [
            ServiceTarget(
                setup,
                s,
                metrics=metrics,
                history=history,
                writer=writer,
                writer_cpus=args.history_writer_cpus,
            )
            for s in variants
            for metrics in modes[args.metrics]
            for history in modes[args.history]
            for writer in (writers if history else writers[:1])
        ]
    if "redis" in args.only:
        unavailable = redis_unavailable(args.redis_url)
        if unavailable is None:
            targets.append(
                ServiceTarget(setup, redis_url=args.redis_url, kinds=(ConnectionStorm.kind,))
            )
        else:
            log(f"warning: skipping service-redis: {unavailable}")
    return targets + [target for target in (SDK, RAW, FASTMCP, MCPZ) if target.key in args.only]


SCALE_ENV = "NAME=VALUE in the scale run's environment (repeatable)"
FANOUT = "demo images for process_images fanned out over 1 worker, then 2 (0: not measured)"
FAILOVER = "demo images of process_images over 2 workers, one killed mid-call (0: not run)"
WRITER = "where history is written (MCP_HISTORY_WRITER): a thread (the default), a process, or both"
# (flag, default, help[, choices]): the type is the default's (False: a switch; None: a text).
OPTIONS: tuple[tuple[Any, ...], ...] = (
    ("--write-docs", False, "update docs/BENCHMARKS.md"),
    ("--repeats", 3, ""),
    ("--warmup", 1.0, "seconds before the window"),
    ("--window", 3.0, "measured seconds"),
    ("--server-cpu", 0, ""),
    ("--client-cpu", 1, ""),
    ("--no-pin", False, "do not use taskset"),
    ("--keep-tmp", False, "keep the temp dir (logs, db, cluster database)"),
    ("--database-url", None, "service database (default: fresh SQLite in a tmpdir)"),
    ("--server", "uvicorn", "ASGI server: manage.py serve (uvicorn), daphne, or both", SERVERS),
    ("--metrics", "on", "Prometheus metrics recorded (multiprocess files), not, or both", ON_OFF),
    ("--history", "on", "plain calls in history, not (MCP_HISTORY_ENABLED), or both", ON_OFF),
    ("--history-writer", "thread", WRITER, ("process", "thread", "both")),
    ("--history-writer-cpus", "", "CPUs of the history writer process (default: the server's)"),
    ("--only", TARGET_KEYS, f"comma-separated subset of {','.join(TARGET_KEYS)}"),
    ("--scenarios", (), "comma-separated scenario kinds (e.g. storm; default: all)"),
    ("--connects", 200, "sequential connections"),
    ("--idle-connections", 1000, ""),
    ("--storm-connections", 10_000, "clients reconnecting at once (0: skip)"),
    ("--images", 10_000, "demo images for process_images (0: skip)"),
    ("--ping-interval-ms", 5.0, "pings during process_images"),
    ("--profile-seconds", 5, "py-spy sampling for the history share (0: skip)"),
    ("--http-progress-calls", 200, "streaming calls timed to their first progress (0: skip)"),
    ("--queued-calls", 10_000, "calls a tenant queues, then cancels by leaving (0: skip)"),
    ("--cluster-postgres-url", DEFAULT_POSTGRES_URL, "PostgreSQL server for a fresh database"),
    ("--cluster-redis-url", DEFAULT_REDIS_URL, ""),
    ("--cluster-concurrency", (1, 50), "comma-separated C of the trivial-call runs (empty: none)"),
    ("--first-progress-calls", 200, ""),
    ("--stream-calls", 20, "calls traced through Redis MONITOR (0: none)"),
    ("--scale-connections", 1000, ""),
    ("--scale-workers", 1, ""),
    ("--fanout-images", 0, FANOUT),
    ("--failover-images", 0, FAILOVER),
    ("--scale-count", 200, ""),
    ("--scale-item-ms", 20.0, ""),
    ("--scale-env", [], SCALE_ENV),
)


def _keys(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `make bench` and bench/cluster.py (the cluster's flags set
    `postgres_url`, `redis_url` and `concurrency`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for name, default, text, *choices in OPTIONS:
        dest = name[2:].removeprefix("cluster-").replace("-", "_")
        kind: dict[str, Any] = {"type": type(default)}
        if isinstance(default, tuple):
            numbers = bool(default) and isinstance(default[0], int)
            kind = {"type": lambda t, n=numbers: tuple(int(k) if n else k for k in _keys(t))}
        elif isinstance(default, list):
            kind = {"type": lambda t: tuple(t.partition("=")[::2]), "action": "append"}
        elif default is False or default is None:
            kind = {"action": "store_true"} if default is False else {}
        choice = {"choices": choices[0]} if choices else {}
        parser.add_argument(name, dest=dest, default=default, help=text or None, **kind, **choice)
    args = parser.parse_args(argv)
    if unknown := set(args.only) - set(TARGET_KEYS):
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {TARGET_KEYS}")
    return args


def main(argv: list[str] | None = None, *, script: str = "bench/run.py") -> int:
    """Run the benchmark (bench/cluster.py: the scale-out one alone), print and write the report."""
    argv = sys.argv[1:] if argv is None else argv
    alone = script == "bench/cluster.py"
    args = parse_args(["--only", "cluster", *argv] if alone else argv)
    raise_nofile_limit()
    pinning = pinning_from(args)
    command = shlex.join([script, *argv])
    section = cluster = None
    with scratch_dir("mcp-bench-", keep=args.keep_tmp) as workdir:
        wanted = not args.scenarios or {ImagesProgress.kind, ImagesPing.kind} & set(args.scenarios)
        images = args.images if "service" in args.only and args.server != "daphne" and wanted else 0
        setup = ServiceSetup(
            database_url=args.database_url, var_dir=workdir / "service-var", images=images
        )
        if set(args.only) & set(SERVER_KEYS):
            targets = build_targets(args, setup)
            for target in targets:
                log(f"preparing {target.key}")
                target.prepare(workdir)
            plan = build_plan(args, setup)
            logs = workdir / "logs"
            measure = functools.partial(measure_server, plan=plan, pinning=pinning, logs=logs)
            metrics = [metric for scenario in plan for metric in scenario.metrics()]
            results = run_plan(targets, measure, args.repeats, logs, metrics)
            database = "the given --database-url" if args.database_url else "fresh SQLite"
            details = f"; medians of {args.repeats} repetitions; "
            details += f"{pinning_text(pinning.server_cpu, pinning.client_cpu)}; "
            details += f"database of the service: {database}"
            section = results_section(results, run_line(now(), command, details))
        if "cluster" in args.only:
            reason = services_unavailable(args.postgres_url, args.redis_url)
            if reason is None:
                cluster = run_and_report(args, pinning, command, workdir)
            elif alone:
                raise SystemExit(reason)
            else:
                log(f"warning: skipping the scale-out benchmark: {reason}")
    if alone:
        text = f"# Scale-out benchmark results\n\n{cluster}"
    else:
        text = "# Benchmark results\n\n" + (section or "")
        text += f"\n## Scale-out (issue 5)\n\n{cluster}" if cluster is not None else ""
    print(text)
    latest = LATEST.with_name("cluster-latest.md") if alone else LATEST
    write_latest(latest, text)
    log(f"wrote {latest.relative_to(ROOT)}")
    if args.write_docs:
        if section is not None:
            replace_between(DOCS, "bench-results", section)
        if cluster is not None:
            replace_between(DOCS, CLUSTER_MARKER, cluster)
        log(f"updated {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
