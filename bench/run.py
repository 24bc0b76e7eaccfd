"""`make bench`: this service against the official MCP SDK and a raw `websockets` server.

Starts each server in turn pinned to one CPU, drives it from a load generator pinned to another,
repeats everything, prints the medians and the goals, writes bench/results/latest.md and, with
--write-docs, the results section of docs/BENCHMARKS.md. The service alone also runs the
long-running operations: process_images with and without progress, pings meanwhile, and the
CPU share of history recording. Then the scale-out benchmark (bench/cluster.py: inline against
worker execution, progress latency, 1,000 connections over two web processes) when PostgreSQL
and Redis answer. See docs/BENCHMARKS.md for the method.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: import `bench.*` from the repository root, not siblings from bench/.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import shlex

from bench.cluster import add_cluster_arguments, run_if_available
from bench.cluster_report import replace_cluster_docs
from bench.cluster_setup import redis_unavailable
from bench.command_line import add_run_arguments, exit_on_sigterm, pinning_from, scratch_dir
from bench.harness import log, run_plan
from bench.history_profile import HistoryProfile
from bench.long_running import ImagesPing, ImagesProgress
from bench.process import raise_nofile_limit
from bench.queue_cancel import QueueCancelPing
from bench.report import RunSettings, now, replace_docs_section, results_section, write_latest
from bench.scenarios import ConnectInitialize, IdleMemory, Scenario, Throughput
from bench.storm import ConnectionStorm
from bench.targets import (
    DEMO_DIR,
    ROOT,
    WARMUP_DIR,
    RedisServiceTarget,
    ServiceSetup,
    ServiceTarget,
    Target,
    raw_target,
    sdk_target,
)
from bench.unread_replies import UnreadReplies

LATEST = ROOT / "bench" / "results" / "latest.md"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
TARGET_KEYS = ("service", "redis", "sdk", "raw", "cluster")
# "cluster" is the scale-out benchmark of bench/cluster.py (PostgreSQL and Redis; skipped,
# with a warning, when either is unreachable). "redis" is this service with REDIS_URL set,
# measured only by the scenarios that depend on the channel layer (the connection storm;
# skipped, with a warning, when Redis is unreachable).
SERVER_KEYS = ("service", "redis", "sdk", "raw")
REDIS_SCENARIOS = (ConnectionStorm.kind,)


def build_plan(args: argparse.Namespace, setup: ServiceSetup) -> list[Scenario]:
    """The foundation scenarios (memory last, on a warm server), then the service-only ones."""
    plan: list[Scenario] = [
        ConnectInitialize(count=args.connects),
        Throughput(concurrency=1, warmup_s=args.warmup, window_s=args.window),
        Throughput(concurrency=50, warmup_s=args.warmup, window_s=args.window),
        IdleMemory(connections=args.idle_connections),
    ]
    if args.storm_connections > 0:
        plan.append(ConnectionStorm(connections=args.storm_connections))
    if args.profile_seconds > 0:
        plan.append(HistoryProfile(concurrency=50, seconds=args.profile_seconds))
    if setup.images > 0:
        root = str(setup.tenant_root)
        plan.append(
            ImagesProgress(
                images=setup.images,
                directory=DEMO_DIR,
                warmup_directory=WARMUP_DIR,
                tenant_root=root,
            )
        )
        plan.append(
            ImagesPing(
                images=setup.images,
                directory=DEMO_DIR,
                interval_ms=args.ping_interval_ms,
                tenant_root=root,
            )
        )
    # The last two leave traces: thousands of cancelled rows in history, then whatever memory
    # a client that does not read cost the server.
    if args.queued_calls > 0:
        plan.append(QueueCancelPing(count=args.queued_calls))
    plan.append(UnreadReplies())
    return [scenario for scenario in plan if _wanted(args, scenario.kind)]


def _wanted(args: argparse.Namespace, kind: str) -> bool:
    return not args.scenarios or kind in args.scenarios


def build_setup(args: argparse.Namespace, workdir: Path) -> ServiceSetup:
    """The service's database, token and demo images, in the run's temp dir."""
    wanted = _wanted(args, ImagesProgress.kind) or _wanted(args, ImagesPing.kind)
    images = args.images if "service" in args.only and args.server != "daphne" and wanted else 0
    return ServiceSetup(
        database_url=args.database_url, var_dir=workdir / "service-var", images=images
    )


def build_targets(args: argparse.Namespace, setup: ServiceSetup) -> list[Target]:
    """The servers of this run, the service variant(s) first."""
    variants = ("uvicorn", "daphne") if args.server == "both" else (args.server,)
    targets: list[Target] = []
    if "service" in args.only:
        modes = {"on": (True,), "off": (False,), "both": (True, False)}[args.metrics]
        targets += [ServiceTarget(setup, server, on) for server in variants for on in modes]
    if "redis" in args.only:
        unavailable = redis_unavailable(args.cluster_redis_url)
        if unavailable is None:
            targets.append(RedisServiceTarget(setup, args.cluster_redis_url, REDIS_SCENARIOS))
        else:
            log(f"warning: skipping service-redis: {unavailable}")
    if "sdk" in args.only:
        targets.append(sdk_target())
    if "raw" in args.only:
        targets.append(raw_target())
    return targets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The harness's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_run_arguments(parser, keep_tmp_help="keep the temp dir (logs, db)")
    parser.add_argument(
        "--database-url", default=None, help="service database (default: fresh SQLite in a tmpdir)"
    )
    parser.add_argument(
        "--server",
        choices=("uvicorn", "daphne", "both"),
        default="uvicorn",
        help="ASGI server for this service: manage.py serve (uvicorn), daphne, or both",
    )
    parser.add_argument(
        "--metrics",
        choices=("on", "off", "both"),
        default="on",
        help="the service with Prometheus metrics recorded (multiprocess files), without, or both",
    )
    parser.add_argument(
        "--only",
        type=lambda text: tuple(part.strip() for part in text.split(",") if part.strip()),
        default=TARGET_KEYS,
        help=f"comma-separated subset of {','.join(TARGET_KEYS)}",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda text: tuple(part.strip() for part in text.split(",") if part.strip()),
        default=(),
        help="comma-separated scenario kinds to run (e.g. storm; default: all)",
    )
    parser.add_argument("--connects", type=int, default=200, help="sequential connections")
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument(
        "--storm-connections",
        type=int,
        default=10_000,
        help="clients reconnecting at once in the connection storm (0: skip it)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=10_000,
        help="demo images for the process_images scenarios (0: skip them)",
    )
    parser.add_argument(
        "--ping-interval-ms", type=float, default=5.0, help="pings during process_images"
    )
    parser.add_argument(
        "--profile-seconds",
        type=int,
        default=5,
        help="py-spy sampling of the service for the history share (0: skip)",
    )
    parser.add_argument(
        "--queued-calls",
        type=int,
        default=10_000,
        help="calls one tenant queues, then cancels by leaving, while another pings (0: skip)",
    )
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(TARGET_KEYS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {TARGET_KEYS}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the report and write it where asked."""
    args = parse_args(argv)
    exit_on_sigterm()
    raise_nofile_limit()
    pinning = pinning_from(args)
    command = shlex.join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    results = cluster = None
    with scratch_dir("mcp-bench-", keep=args.keep_tmp) as workdir:
        setup = build_setup(args, workdir)
        if set(args.only) & set(SERVER_KEYS):
            results = run_plan(
                build_targets(args, setup),
                build_plan(args, setup),
                repeats=args.repeats,
                pinning=pinning,
                workdir=workdir,
            )
        if "cluster" in args.only:
            cluster = run_if_available(args, pinning, command, workdir)
    settings = RunSettings(
        command=command,
        repeats=args.repeats,
        server_cpu=pinning.server_cpu,
        client_cpu=pinning.client_cpu,
        database="the given --database-url" if args.database_url else "fresh SQLite",
    )
    section = results_section(results, settings, now()) if results is not None else ""
    text = "# Benchmark results\n\n" + section
    if cluster is not None:
        text += "\n## Scale-out (issue 5)\n\n" + cluster
    print(text)
    write_latest(LATEST, text)
    log(f"wrote {LATEST.relative_to(ROOT)}")
    if args.write_docs:
        if results is not None:
            replace_docs_section(DOCS, section)
        if cluster is not None:
            replace_cluster_docs(DOCS, cluster)
        log(f"updated {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
