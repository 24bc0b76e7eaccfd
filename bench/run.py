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
import shlex
from dataclasses import dataclass

from bench.cluster import MARKER as CLUSTER_MARKER
from bench.cluster import ClusterOptions, run_and_report
from bench.harness import (
    RunOptions,
    add_options,
    log,
    option,
    pinning_from,
    run_plan,
    scratch_dir,
)
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


def _keys(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class BenchOptions:
    """The single-process benchmark's options: each field made with `option` is a flag."""

    database_url: str | None = option(
        None, "--database-url", "service database (default: fresh SQLite in a tmpdir)", str
    )
    server: str = option(
        "uvicorn",
        "--server",
        "ASGI server for this service: manage.py serve (uvicorn), daphne, or both",
        choices=("uvicorn", "daphne", "both"),
    )
    metrics: str = option(
        "on",
        "--metrics",
        "the service with Prometheus metrics recorded (multiprocess files), without, or both",
        choices=("on", "off", "both"),
    )
    history: str = option(
        "on",
        "--history",
        "the service recording plain calls in history, not (MCP_HISTORY_ENABLED=false), or both",
        choices=("on", "off", "both"),
    )
    history_writer: str = option(
        "thread",
        "--history-writer",
        "where history is written (MCP_HISTORY_WRITER): a thread (the product's default), a "
        "process of its own, or both",
        choices=("process", "thread", "both"),
    )
    history_writer_cpus: str = option(
        "",
        "--history-writer-cpus",
        "CPUs of the history writer process (MCP_HISTORY_WRITER_CPUS; default: the server's)",
    )
    only: tuple[str, ...] = option(
        TARGET_KEYS, "--only", f"comma-separated subset of {','.join(TARGET_KEYS)}", _keys
    )
    scenarios: tuple[str, ...] = option(
        (), "--scenarios", "comma-separated scenario kinds (e.g. storm; default: all)", _keys
    )
    connects: int = option(200, "--connects", "sequential connections")
    idle_connections: int = option(1000, "--idle-connections")
    storm_connections: int = option(
        10_000, "--storm-connections", "clients reconnecting at once (0: skip)"
    )
    images: int = option(10_000, "--images", "demo images for process_images (0: skip)")
    ping_interval_ms: float = option(5.0, "--ping-interval-ms", "pings during process_images")
    profile_seconds: int = option(
        5, "--profile-seconds", "py-spy sampling for the history share (0: skip)"
    )
    http_progress_calls: int = option(
        200, "--http-progress-calls", "streaming calls timed to their first progress (0: skip)"
    )
    queued_calls: int = option(
        10_000,
        "--queued-calls",
        "calls one tenant queues, then cancels by leaving, while another pings (0: skip)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `make bench` and bench/cluster.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_options(parser, RunOptions)
    add_options(parser, BenchOptions)
    add_options(parser.add_argument_group("scale-out (cluster) benchmark"), ClusterOptions)
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(TARGET_KEYS)
    if unknown:
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
            results = run_plan(targets, plan, repeats=args.repeats, pinning=pinning, logs=logs)
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
