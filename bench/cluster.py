"""The scale-out benchmark (issue 5): inline against worker execution, progress latency, and
1,000 connections over two web processes.

`.venv/bin/python bench/cluster.py` runs it alone; `bench/run.py` (`make bench`) runs it after
the other servers unless `--only` leaves out `cluster`. It needs PostgreSQL and Redis (a fresh
database on --cluster-postgres-url, dropped afterwards; Redis at --cluster-redis-url under a key
prefix of its own). Each repetition:

1. *inline*: one `manage.py serve` (MCP_EXECUTION=inline, REDIS_URL set), pinned like the
   other servers: trivial `tools/call add` throughput at C=1 and C=50, then the first
   progress notification of `process_batch` calls;
2. *worker*: one `serve` and one `runoperations` (MCP_EXECUTION=worker), both on the server
   CPU: the same measurements, plus each progress notification's way from the worker to the
   client, read from Redis MONITOR (bench/redis_monitor.py);
3. *scale*: two `serve` and the workers, unpinned, 1,000 connections each running a
   `process_batch` with a progressToken: results lost, final progress missing, peak memory.

See docs/BENCHMARKS.md, "Scale-out (issue 5)", for the method.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: import `bench.*` from the repository root, not siblings from bench/.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import math
import re
import resource
import shlex
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from bench.cluster_load import cpu_seconds, machine_busy_seconds, postgres_backends
from bench.cluster_report import (
    CLUSTER_LATEST,
    INLINE,
    SCALE,
    WORKER,
    cluster_metrics,
    cluster_section,
    replace_cluster_docs,
)
from bench.cluster_setup import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    ClusterDeployment,
    ClusterProcesses,
    count_in_logs,
    error_lines,
    read_status_kib,
    redis_server_pid,
    running_cluster,
    services_available,
)
from bench.command_line import add_run_arguments, exit_on_sigterm, pinning_from, scratch_dir
from bench.cpu import thread_cpu_seconds
from bench.harness import Pinning, log, run_load_generator
from bench.process import raise_nofile_limit
from bench.redis_monitor import ProgressSend, monitoring, parse_progress_sends, redis_cli_path
from bench.report import now, write_latest
from bench.results import RunResults, ServerInfo
from bench.stats import percentile
from bench.targets import PYTHON, ROOT

DOCS = ROOT / "docs" / "BENCHMARKS.md"
RSS_SAMPLE_INTERVAL = 0.2
# The scale scenario runs many operations for one user: lift the per-process limits above it.
SCALE_LIMITS = (
    "MCP_MAX_OPERATIONS",
    "MCP_MAX_OPERATIONS_PER_USER",
    "MCP_MAX_OPERATIONS_PER_TENANT",
    "MCP_MAX_IN_FLIGHT_PER_USER",
    "MCP_MAX_IN_FLIGHT_PER_TENANT",
)
# Log lines counted after each scale run: (metric, text in the line).
LOG_COUNTS = (
    ("dropped", "is full: dropped"),
    ("deadlocks", "DeadlockDetected"),
    ("heartbeat_failed", "operation heartbeat failed"),
    ("history_failed", "history write failed"),
)
STILL_RUNNING = re.compile(r"stopping: (\d+) operations get")
LOADGEN_SLACK_S = 120.0


@dataclass(frozen=True)
class ClusterOptions:
    """What to measure and how often."""

    postgres_url: str = DEFAULT_POSTGRES_URL
    redis_url: str = DEFAULT_REDIS_URL
    repeats: int = 3
    warmup_s: float = 1.0
    window_s: float = 3.0
    concurrency: tuple[int, ...] = (1, 50)
    first_progress_calls: int = 200
    stream_calls: int = 20
    stream_count: int = 100
    stream_item_ms: float = 10.0
    scale_connections: int = 1000
    scale_web: int = 2
    scale_workers: int = 1
    scale_count: int = 200
    scale_item_ms: float = 20.0
    scale_deadline_s: float = 300.0
    scale_env: tuple[tuple[str, str], ...] = ()

    @property
    def redis_db(self) -> int:
        """The Redis database number of --cluster-redis-url (0 when it names none)."""
        path = self.redis_url.rsplit("/", 1)[-1] if self.redis_url.count("/") >= 3 else ""
        return int(path) if path.isdigit() else 0


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the cluster benchmark (shared by bench/run.py and bench/cluster.py)."""
    defaults = ClusterOptions()
    group = parser.add_argument_group("scale-out (cluster) benchmark")
    group.add_argument(
        "--cluster-postgres-url",
        default=defaults.postgres_url,
        help="PostgreSQL server on which a fresh database is created and dropped",
    )
    group.add_argument("--cluster-redis-url", default=defaults.redis_url)
    group.add_argument(
        "--cluster-concurrency",
        type=lambda text: tuple(int(part) for part in text.split(",") if part.strip()),
        default=defaults.concurrency,
        help="comma-separated C of the trivial-call throughput runs (empty: skip them)",
    )
    group.add_argument("--first-progress-calls", type=int, default=defaults.first_progress_calls)
    group.add_argument(
        "--stream-calls",
        type=int,
        default=defaults.stream_calls,
        help="process_batch calls whose progress is traced through Redis MONITOR (0: skip)",
    )
    group.add_argument("--scale-connections", type=int, default=defaults.scale_connections)
    group.add_argument("--scale-workers", type=int, default=defaults.scale_workers)
    group.add_argument("--scale-count", type=int, default=defaults.scale_count)
    group.add_argument("--scale-item-ms", type=float, default=defaults.scale_item_ms)
    group.add_argument(
        "--scale-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the scale run's processes (repeatable), for experiments",
    )


def options_from(args: argparse.Namespace) -> ClusterOptions:
    """ClusterOptions from a parsed command line of bench/run.py or bench/cluster.py."""
    return ClusterOptions(
        postgres_url=args.cluster_postgres_url,
        redis_url=args.cluster_redis_url,
        repeats=args.repeats,
        warmup_s=args.warmup,
        window_s=args.window,
        concurrency=args.cluster_concurrency,
        first_progress_calls=args.first_progress_calls,
        stream_calls=args.stream_calls,
        scale_connections=args.scale_connections,
        scale_workers=args.scale_workers,
        scale_count=args.scale_count,
        scale_item_ms=args.scale_item_ms,
        scale_env=tuple(
            (name, value) for name, _, value in (item.partition("=") for item in args.scale_env)
        ),
    )


# --- the load generator ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    """What one load generator run printed."""

    metrics: dict[str, float]
    samples: dict[str, Any]


def run_load(
    scenario: str,
    urls: list[str],
    params: dict[str, Any],
    *,
    pids: dict[str, int] | None = None,
    cpu: int | None,
    timeout: float,
) -> LoadResult:
    """Run one scenario of bench/cluster_load.py in a fresh process pinned to `cpu`."""
    command = [
        PYTHON,
        "-m",
        "bench.cluster_load",
        "--scenario",
        scenario,
        "--urls",
        ",".join(urls),
        "--params",
        orjson.dumps(params).decode(),
        "--pids",
        ",".join(f"{name}={pid}" for name, pid in (pids or {}).items()),
    ]
    payload = run_load_generator(command, cpu=cpu, timeout=timeout, label=scenario)
    metrics = {str(k): float(v) for k, v in payload["metrics"].items()}
    return LoadResult(metrics=metrics, samples=dict(payload.get("samples") or {}))


def _summary(metrics: dict[str, float]) -> str:
    return ", ".join(f"{key}={value:,.1f}" for key, value in metrics.items())


# --- progress hop: Redis MONITOR against the client's arrivals --------------------------------


def hop_metrics(sends: list[ProgressSend], calls: list[dict[str, Any]]) -> dict[str, float]:
    """Match each notification the client got with the Redis send of the same progress in the
    same call; the hop's p50/p99 from the start of the send, and where the time went."""
    total: list[float] = []
    sending: list[float] = []
    in_redis: list[float] = []
    to_client: list[float] = []
    unmatched = 0
    for call in calls:
        window = [s for s in sends if call["sent"] - 0.005 <= s.sender_time <= call["done"]]
        # In Redis order: the latest send of a value wins.
        by_progress = {send.progress: send for send in window}
        for progress, arrived in call["notes"]:
            match = by_progress.get(float(progress))
            if match is None or match.send_started > arrived:
                unmatched += 1
                continue
            total.append(arrived - match.send_started)
            sending.append(match.stored - match.send_started)
            if match.taken is not None:
                in_redis.append(match.taken - match.stored)
                to_client.append(arrived - match.taken)
    return {
        "hop.p50_us": percentile(total, 0.50) * 1e6,
        "hop.p99_us": percentile(total, 0.99) * 1e6,
        "hop.max_us": max(total, default=math.nan) * 1e6,
        "hop.sending_p50_us": percentile(sending, 0.50) * 1e6,
        "hop.in_redis_p50_us": percentile(in_redis, 0.50) * 1e6,
        "hop.to_client_p50_us": percentile(to_client, 0.50) * 1e6,
        "hop.to_client_p99_us": percentile(to_client, 0.99) * 1e6,
        "hop.matched": float(len(total)),
        "hop.unmatched": float(unmatched),
    }


# --- the measurements ----------------------------------------------------------------------------


def _warn_errors(processes: ClusterProcesses) -> int:
    found = error_lines(processes)
    for process in processes.all:
        hits = found.get(process.name, [])
        if hits:
            log(f"  warning: {process.name} logged {len(hits)} error line(s), {process.log_path}:")
            for line in hits[:5]:
                log(f"    {line}")
    return sum(len(hits) for hits in found.values())


def measure_mode(
    deployment: ClusterDeployment,
    options: ClusterOptions,
    *,
    execution: str,
    pinning: Pinning,
    logs: Path,
    repetition: int,
) -> dict[str, float]:
    """Throughput, first progress and (worker) the progress hop of one execution mode."""
    measured: dict[str, float] = {}
    workers = 1 if execution == WORKER else 0
    redis_pid = redis_server_pid(options.redis_url)
    with running_cluster(
        deployment,
        name=f"{execution}-{repetition}",
        execution=execution,
        web=1,
        workers=workers,
        cpu=pinning.server_cpu,
        logs=logs,
    ) as processes:
        urls = [deployment.ws_url(processes.ports[0])]
        pids = {"web": processes.web[0].pid}
        if workers:
            pids["worker"] = processes.workers[0].pid
        if redis_pid is not None:
            pids["redis"] = redis_pid
        for concurrency in options.concurrency:
            params = {
                "concurrency": concurrency,
                "warmup_s": options.warmup_s,
                "window_s": options.window_s,
                "database_url": deployment.database_url,
            }
            timeout = options.warmup_s + options.window_s + LOADGEN_SLACK_S
            result = run_load(
                "throughput", urls, params, pids=pids, cpu=pinning.client_cpu, timeout=timeout
            )
            processes.check_alive(f"throughput C={concurrency}")
            log(f"    throughput C={concurrency}: {_summary(result.metrics)}")
            measured.update({f"c{concurrency}.{k}": v for k, v in result.metrics.items()})
            if "cpu_us_per_call.worker" in result.metrics:
                web, worker = (
                    result.metrics["cpu_us_per_call.web"],
                    result.metrics["cpu_us_per_call.worker"],
                )
                measured[f"c{concurrency}.cpu_us_per_call.service"] = web + worker
            else:
                measured[f"c{concurrency}.cpu_us_per_call.service"] = result.metrics[
                    "cpu_us_per_call.web"
                ]
        if options.first_progress_calls > 0:
            params = {"calls": options.first_progress_calls, "warmup": 20}
            result = run_load(
                "first-progress", urls, params, cpu=pinning.client_cpu, timeout=LOADGEN_SLACK_S * 2
            )
            processes.check_alive("first progress")
            log(f"    first progress: {_summary(result.metrics)}")
            measured.update({f"fp.{k}": v for k, v in result.metrics.items()})
        if execution == WORKER and options.stream_calls > 0:
            measured.update(_measure_hop(deployment, options, urls, pinning, logs, repetition))
            processes.check_alive("progress stream")
    measured["errors"] = float(_warn_errors(processes))
    return measured


def _measure_hop(
    deployment: ClusterDeployment,
    options: ClusterOptions,
    urls: list[str],
    pinning: Pinning,
    logs: Path,
    repetition: int,
) -> dict[str, float]:
    if redis_cli_path() is None:
        log("    progress hop: redis-cli is missing, not measured")
        return {}
    params = {
        "calls": options.stream_calls,
        "warmup": 2,
        "count": options.stream_count,
        "item_ms": options.stream_item_ms,
    }
    output = logs / f"monitor-{repetition}.txt"
    with monitoring(options.redis_url, output):
        result = run_load(
            "progress-stream", urls, params, cpu=pinning.client_cpu, timeout=LOADGEN_SLACK_S * 2
        )
    sends = parse_progress_sends(output, deployment.prefix, options.redis_db)
    metrics = hop_metrics(sends, list(result.samples.get("calls", [])))
    log(f"    progress hop: {_summary(metrics)}")
    return metrics


class MemoryWatch:
    """Samples VmRSS of some processes in a thread; the peaks it saw."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak_kib: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                rss = read_status_kib(pid, "VmRSS")
                if rss is not None:
                    self.peak_kib[name] = max(self.peak_kib[name], rss)
            self._stop.wait(RSS_SAMPLE_INTERVAL)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def measure_scale(
    deployment: ClusterDeployment, options: ClusterOptions, *, logs: Path, repetition: int
) -> dict[str, float]:
    """N connections over the web processes, each with a running process_batch."""
    limit = str(max(2 * options.scale_connections, 64))
    extra = dict.fromkeys(SCALE_LIMITS, limit) | dict(options.scale_env)
    nominal = options.scale_count * options.scale_item_ms / 1000
    with running_cluster(
        deployment,
        name=f"scale-{repetition}",
        execution=WORKER,
        web=options.scale_web,
        workers=options.scale_workers,
        cpu=None,
        logs=logs,
        extra_env=extra,
    ) as processes:
        urls = [deployment.ws_url(port) for port in processes.ports]
        names = [f"web{i + 1}" for i in range(len(processes.web))]
        names += [f"worker{i + 1}" for i in range(len(processes.workers))]
        pids = dict(zip(names, (p.pid for p in processes.all), strict=True))
        before = {name: read_status_kib(pid, "VmRSS") or 0 for name, pid in pids.items()}
        params = {
            "connections": options.scale_connections,
            "count": options.scale_count,
            "item_ms": options.scale_item_ms,
            "deadline_s": options.scale_deadline_s,
        }
        began = time.time()
        cpu_before = {name: thread_split(pid) for name, pid in pids.items()}
        machine_before = machine_snapshot(deployment, options)
        with MemoryWatch(pids) as watch:
            result = run_load(
                "scale",
                urls,
                params,
                cpu=None,
                timeout=options.scale_deadline_s + nominal + LOADGEN_SLACK_S,
            )
        processes.check_alive("scale")
        wall = time.time() - began
        cpu_after = {name: thread_split(pid) for name, pid in pids.items()}
        machine = machine_snapshot(deployment, options).since(machine_before)
        high_water = {name: read_status_kib(pid, "VmHWM") or 0 for name, pid in pids.items()}
        history = history_outcomes(deployment, began)
    measured = dict(result.metrics)
    for name in pids:
        measured[f"rss_before_mib.{name}"] = before[name] / 1024
        measured[f"peak_mib.{name}"] = max(high_water[name], watch.peak_kib[name]) / 1024
        (loop_0, rest_0), (loop_1, rest_1) = cpu_before[name], cpu_after[name]
        measured[f"cpu_pct.{name}"] = (loop_1 + rest_1 - loop_0 - rest_0) / wall * 100
        measured[f"loop_cpu_pct.{name}"] = (loop_1 - loop_0) / wall * 100
    ours = sum(
        cpu_after[name][0] + cpu_after[name][1] - cpu_before[name][0] - cpu_before[name][1]
        for name in pids
    )
    for name, seconds in machine.items():
        measured[f"cpu_pct.{name}"] = seconds / wall * 100
    accounted = ours + sum(seconds for name, seconds in machine.items() if name != "machine")
    measured["cpu_pct.other"] = max(0.0, machine["machine"] - accounted) / wall * 100
    for metric, text in LOG_COUNTS:
        measured[metric] = float(count_in_logs(processes, text))
    measured["still_running"] = float(
        sum(
            int(found.group(1))
            for worker in processes.workers
            for found in STILL_RUNNING.finditer(worker.log_path.read_text(errors="replace"))
        )
    )
    measured["errors"] = float(_warn_errors(processes))
    measured.update(history.metrics)
    log(f"    scale: {_summary(measured)}")
    for kind, count in dict(result.samples.get("problems", {})).items():
        log(f"    client saw {count} x {kind}")
    for kind, count in history.outcomes.items():
        log(f"    history: {count} x {kind}")
    for line in result.samples.get("final_missing", [])[:10]:
        log(f"    final progress missing: {line}")
    return measured


@dataclass(frozen=True)
class MachineSnapshot:
    """Cumulative CPU seconds of the machine and of the services beside the cluster."""

    busy: float
    redis: float
    backends: dict[int, float]  # PostgreSQL backends of the database, by pid
    children: float  # finished child processes of this harness: the load generator

    def since(self, before: MachineSnapshot) -> dict[str, float]:
        """CPU seconds used between `before` and this snapshot; a backend that started in
        between counts from zero (one that ended in between is missed)."""
        postgres = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in self.backends.items())
        return {
            "machine": self.busy - before.busy,
            "redis": self.redis - before.redis,
            "postgres": postgres,
            "client": self.children - before.children,
        }


def machine_snapshot(deployment: ClusterDeployment, options: ClusterOptions) -> MachineSnapshot:
    """CPU times now: the machine, Redis, the database's backends, finished children."""
    redis_pid = redis_server_pid(options.redis_url)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return MachineSnapshot(
        busy=machine_busy_seconds(),
        redis=cpu_seconds(redis_pid) if redis_pid else 0.0,
        backends={pid: cpu_seconds(pid) for pid in postgres_backends(deployment.database_url)},
        children=usage.ru_utime + usage.ru_stime,
    )


def thread_split(pid: int) -> tuple[float, float]:
    """CPU seconds of a process's main thread (its event loop) and of all its other threads."""
    try:
        times = thread_cpu_seconds(pid)
    except OSError:
        return math.nan, math.nan
    main = times.pop(pid, 0.0)
    return main, sum(times.values())


@dataclass(frozen=True)
class HistoryOutcomes:
    """What the database says of the operations of one scale run."""

    outcomes: dict[str, int]
    metrics: dict[str, float]


def history_outcomes(deployment: ClusterDeployment, since: float) -> HistoryOutcomes:
    """The operations queued since `since` (epoch seconds): how many ended how, and how long
    after the first was queued the last one was started."""
    with psycopg.connect(deployment.database_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT status, error, count(*) FROM mcp_server_operation "
            "WHERE queued_at >= to_timestamp(%s) GROUP BY 1, 2 ORDER BY 3 DESC",
            (since,),
        ).fetchall()
        spread = conn.execute(
            "SELECT extract(epoch FROM max(started_at) - min(queued_at)), "
            "count(started_at) FROM mcp_server_operation WHERE queued_at >= to_timestamp(%s)",
            (since,),
        ).fetchone()
    outcomes = {f"{status}{': ' + error if error else ''}": int(n) for status, error, n in rows}
    started_within = float(spread[0]) if spread and spread[0] is not None else math.nan
    succeeded = sum(n for status, _, n in rows if status == "succeeded")
    interrupted = sum(n for status, _, n in rows if status == "interrupted")
    return HistoryOutcomes(
        outcomes=outcomes,
        metrics={
            "history.succeeded": float(succeeded),
            "history.interrupted": float(interrupted),
            "history.started": float(spread[1]) if spread else math.nan,
            "history.last_start_s": started_within,
        },
    )


def run_cluster(
    options: ClusterOptions, pinning: Pinning, workdir: Path, *, keep_database: bool = False
) -> RunResults:
    """Every repetition of the three scenarios on one fresh database; the results."""
    reason = services_available(options.postgres_url, options.redis_url)
    if reason is not None:
        raise RuntimeError(reason)
    results = RunResults(
        servers=[
            ServerInfo(INLINE, "one manage.py serve", "MCP_EXECUTION=inline, REDIS_URL set"),
            ServerInfo(
                WORKER,
                "one manage.py serve and one manage.py runoperations",
                "MCP_EXECUTION=worker, both on the server CPU",
            ),
            ServerInfo(
                SCALE,
                f"{options.scale_web} manage.py serve and {options.scale_workers} runoperations",
                f"{options.scale_connections:,} connections, each running process_batch "
                f"(count {options.scale_count}, item_ms {options.scale_item_ms:g}); not pinned"
                + "".join(f", {name}={value}" for name, value in options.scale_env),
            ),
        ],
        metrics=cluster_metrics(options),
        repeats=options.repeats,
    )
    logs = workdir / "cluster-logs"
    logs.mkdir(parents=True, exist_ok=True)
    deployment = ClusterDeployment(
        postgres_url=options.postgres_url,
        redis_url=options.redis_url,
        var_dir=workdir / "cluster-var",
    )
    log("preparing the cluster deployment (PostgreSQL database, account, token)")
    try:
        deployment.create()
        compared = bool(options.concurrency or options.first_progress_calls)
        modes = ((INLINE,) if compared else ()) + (
            (WORKER,) if compared or options.stream_calls else ()
        )
        for repetition in range(1, options.repeats + 1):
            for execution in modes:
                log(f"[{repetition}/{options.repeats}] cluster {execution}")
                results.add(
                    execution,
                    measure_mode(
                        deployment,
                        options,
                        execution=execution,
                        pinning=pinning,
                        logs=logs,
                        repetition=repetition,
                    ),
                )
            if options.scale_connections > 0:
                log(f"[{repetition}/{options.repeats}] cluster scale")
                results.add(
                    SCALE, measure_scale(deployment, options, logs=logs, repetition=repetition)
                )
    finally:
        if keep_database:
            log(f"kept database {deployment.database} and Redis prefix {deployment.prefix}")
        else:
            deployment.drop()
    return results


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The standalone command line (the same option names as bench/run.py)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_run_arguments(parser, keep_tmp_help="keep logs, database, prefix")
    add_cluster_arguments(parser)
    return parser.parse_args(argv)


def run_and_report(args: argparse.Namespace, pinning: Pinning, command: str, workdir: Path) -> str:
    """Run the cluster benchmark with run.py's or cluster.py's options; its report section."""
    options = options_from(args)
    started = time.monotonic()
    results = run_cluster(options, pinning, workdir, keep_database=args.keep_tmp)
    minutes = (time.monotonic() - started) / 60
    return cluster_section(results, options, pinning, command, now(), minutes)


def run_if_available(
    args: argparse.Namespace, pinning: Pinning, command: str, workdir: Path
) -> str | None:
    """`run_and_report`, or None (with a warning) when PostgreSQL or Redis is unreachable:
    `make bench` runs the other servers without them."""
    reason = services_available(args.cluster_postgres_url, args.cluster_redis_url)
    if reason is not None:
        log(f"warning: skipping the scale-out benchmark: {reason}")
        return None
    return run_and_report(args, pinning, command, workdir)


def main(argv: list[str] | None = None) -> int:
    """Run the cluster benchmark alone, print its section and write it where asked."""
    args = parse_args(argv)
    exit_on_sigterm()
    raise_nofile_limit()
    pinning = pinning_from(args)
    command = shlex.join(["bench/cluster.py", *(argv if argv is not None else sys.argv[1:])])
    with scratch_dir("mcp-bench-cluster-", keep=args.keep_tmp) as workdir:
        section = run_and_report(args, pinning, command, workdir)
    text = "# Scale-out benchmark results\n\n" + section
    print(text)
    write_latest(CLUSTER_LATEST, text)
    log(f"wrote {CLUSTER_LATEST.relative_to(ROOT)}")
    if args.write_docs:
        replace_cluster_docs(DOCS, section)
        log(f"updated {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
