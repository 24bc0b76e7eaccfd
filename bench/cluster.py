"""The scale-out benchmark (issue 5): inline against worker execution and against a cluster's
default placement (issue 12), progress latency, and 1,000 connections over two web processes
(PostgreSQL and Redis; method in docs/BENCHMARKS.md)."""

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
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil
import psycopg
import redis

from bench.cluster_load import (
    ClusterThroughput,
    FanOutImages,
    ProgressStream,
    Scale,
    postgres_backends,
)
from bench.harness import (
    Pinning,
    check_alive,
    log,
    option,
    options_of,
    run_load,
    run_plan,
    run_scenarios,
    summary,
    warn_on_errors,
)
from bench.measure import busy_seconds, cpu_seconds, status_kib, thread_cpu_seconds
from bench.redis_monitor import (
    HOP_METRICS,
    hop_metrics,
    monitoring,
    parse_progress_sends,
    redis_cli_path,
)
from bench.report import (
    SCALE,
    Metric,
    RunResults,
    ServerInfo,
    cluster_tables,
    declare,
    machine_facts,
    now,
    per_server_sections,
    pinning_text,
    run_line,
    table,
)
from bench.scenarios import FirstProgress, LoadTarget, Scenario
from bench.servers import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    IMAGES_TIMEOUT,
    ClusterDeployment,
    ClusterProcesses,
    manage,
)

MARKER = "bench-cluster"
INLINE, WORKER, PLACED = "inline", "worker", "placed"
# process_images fanned out over one worker, then two, each with one pool process (one core).
FANOUT_1, FANOUT_2 = "fanout-1w", "fanout-2w"
FANOUT_WORKERS = {FANOUT_1: 1, FANOUT_2: 2}
FANOUT_DIR = "fanout"
# A worker logs this once its pool's processes run: from then on it takes chunks.
CHUNKS_READY_TEXT = "takes chunks from"
# Worker mode measures the hand-off itself: even the trivial tool, short and so run by the web
# process under its default placement, goes to the worker.
ALL_ON_WORKERS = {"MCP_TOOL_PLACEMENT": "add=worker"}
# The scale scenario runs many operations for one user: lift the per-process limits above it.
SCALE_LIMITS = "OPERATIONS OPERATIONS_PER_USER OPERATIONS_PER_TENANT IN_FLIGHT_PER_USER "
SCALE_LIMITS += "IN_FLIGHT_PER_TENANT"
# What the scale run counts in the logs afterwards: (metric, label, text in the line).
LOG_COUNTS = (
    ("dropped", "progress messages dropped (channel full, logged)", "is full: dropped"),
    ("deadlocks", "PostgreSQL deadlocks (logged)", "DeadlockDetected"),
    ("heartbeat_failed", "failed heartbeat rounds (logged)", "operation heartbeat failed"),
    ("history_failed", "failed history writes (logged)", "history write failed"),
)
STILL_RUNNING = re.compile(r"stopping: (\d+) operations get")
# The scale run's figures of each process (`<key>.<process>`), then of the whole deployment.
PER_PROCESS = (
    ("peak_mib", "peak RSS (VmHWM)", "MiB"),
    ("rss_before_mib", "RSS before the calls", "MiB"),
    ("cpu_pct", "CPU during the run", "%"),
    ("loop_cpu_pct", "of which its event loop thread", "%"),
)
SCALE_TOTALS = [
    ("cpu_pct.redis", "CPU during the run, Redis", "%"),
    ("cpu_pct.postgres", "CPU during the run, PostgreSQL backends", "%"),
    ("cpu_pct.client", "CPU during the run, load generator", "%"),
    ("cpu_pct.machine", "whole machine busy during the run (200 % = both CPUs)", "%"),
    ("cpu_pct.other", "other processes during the run (not this benchmark's)", "%"),
    ("history.succeeded", "history: operations succeeded", "items", True),
    ("history.interrupted", "history: operations marked interrupted", "items"),
    ("history.started", "history: operations with a start time", "items", True),
    ("history.last_start_s", "history: first queued to last started", "s"),
    ("still_running", "operations still running in the worker(s) at stop", "items"),
    *((key, label, "items") for key, label, _ in LOG_COUNTS),
    ("errors", "error lines in the server logs", "items"),
]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _setting(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name, value


@dataclass(frozen=True)
class ClusterOptions:
    """What the scale-out benchmark measures and how often; a field with a flag is an option."""

    postgres_url: str = option(
        DEFAULT_POSTGRES_URL,
        "--cluster-postgres-url",
        "PostgreSQL server on which a fresh database is created and dropped",
    )
    redis_url: str = option(DEFAULT_REDIS_URL, "--cluster-redis-url")
    concurrency: tuple[int, ...] = option(
        (1, 50),
        "--cluster-concurrency",
        "comma-separated C of the trivial-call runs (empty: none)",
        _ints,
    )
    first_progress_calls: int = option(200, "--first-progress-calls")
    stream_calls: int = option(20, "--stream-calls", "calls traced through Redis MONITOR (0: none)")
    scale_connections: int = option(1000, "--scale-connections")
    scale_workers: int = option(1, "--scale-workers")
    fanout_images: int = option(
        0,
        "--fanout-images",
        "demo images for process_images fanned out over 1 worker, then 2 (0: not measured)",
    )
    scale_count: int = option(200, "--scale-count")
    scale_item_ms: float = option(20.0, "--scale-item-ms")
    scale_env: tuple[tuple[str, str], ...] = option(
        (),
        "--scale-env",
        "NAME=VALUE in the scale run's environment (repeatable)",
        _setting,
        action="append",
    )
    repeats: int = 3
    warmup_s: float = 1.0
    window_s: float = 3.0
    scale_web: int = 2

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClusterOptions:
        """The options of a parsed command line."""
        flags = options_of(cls, args) | {"scale_env": tuple(args.scale_env)}
        return cls(**flags, repeats=args.repeats, warmup_s=args.warmup, window_s=args.window)

    @property
    def redis_db(self) -> int:
        """The Redis database number of --cluster-redis-url (0 when it names none)."""
        path = self.redis_url.rsplit("/", 1)[-1] if self.redis_url.count("/") >= 3 else ""
        return int(path) if path.isdigit() else 0

    def names(self) -> list[str]:
        """The scale run's processes: web1.., worker1.."""
        web = [f"web{i + 1}" for i in range(self.scale_web)]
        return web + [f"worker{i + 1}" for i in range(self.scale_workers)]

    def scale(self) -> Scale:
        """The scale scenario of these options."""
        return Scale(self.scale_connections, self.scale_count, self.scale_item_ms)

    def fanout(self, tenant_root: str = "") -> FanOutImages:
        """The fan-out scenario of these options (`tenant_root`: where thumbnails go)."""
        return FanOutImages(self.fanout_images, FANOUT_DIR, tenant_root=tenant_root)

    def plan(self, mode: str, database_url: str = "") -> list[Scenario]:
        """What one mode runs: the trivial calls, and the first progress (not placed:
        process_batch is on the worker, as in worker mode)."""
        plan: list[Scenario] = [
            ClusterThroughput(c, self.warmup_s, self.window_s, database_url)
            for c in self.concurrency
        ]
        first = self.first_progress_calls and mode != PLACED
        return plan + ([FirstProgress(self.first_progress_calls)] if first else [])

    def metrics(self) -> list[Metric]:
        """Every metric the cluster benchmark may report, in display order."""
        metrics = [metric for scenario in self.plan(INLINE) for metric in scenario.metrics()]
        metrics += [*HOP_METRICS, *self.scale().metrics()]
        metrics += self.fanout().metrics() if self.fanout_images else []
        each = [(f"{k}.{n}", f"{text}, {n}", u) for k, text, u in PER_PROCESS for n in self.names()]
        return metrics + declare("", [*each, *SCALE_TOTALS], SCALE)


def redis_info(redis_url: str) -> dict[str, Any]:
    """Redis's INFO server ({} when it does not answer)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=3)
    try:
        return dict(client.info("server"))
    except redis.RedisError:
        return {}
    finally:
        client.close()


def redis_server_pid(redis_url: str) -> int | None:
    """The process id of the Redis server, when it runs on this machine."""
    pid = int(redis_info(redis_url).get("process_id", 0))
    return pid if pid and Path(f"/proc/{pid}").exists() else None


def errors(processes: ClusterProcesses) -> dict[str, float]:
    """`errors`: the error lines the processes logged (the first ones printed)."""
    return {"errors": float(sum(warn_on_errors(process) for process in processes.all))}


def measure_mode(
    deployment: ClusterDeployment,
    options: ClusterOptions,
    mode: str,
    pinning: Pinning,
    logs: Path,
    rep: int,
) -> dict[str, float]:
    """The plan of one mode (inline, worker, placed) and, in worker mode, the progress hop."""
    workers = 0 if mode == INLINE else 1
    redis_pid = redis_server_pid(options.redis_url)
    plan = options.plan(mode, deployment.database_url)
    with deployment.running(
        f"{mode}-{rep}",
        execution=INLINE if mode == INLINE else WORKER,
        web=1,
        workers=workers,
        cpu=pinning.server_cpu,
        logs=logs,
        extra_env=ALL_ON_WORKERS if mode == WORKER else None,
    ) as processes:
        urls = [deployment.ws_url(processes.ports[0])]
        pids = {"web": processes.web[0].pid}
        pids |= {"worker": processes.workers[0].pid} if workers else {}
        pids |= {"redis": redis_pid} if redis_pid is not None else {}
        measured = run_scenarios(plan, processes.all, LoadTarget(urls, pids), pinning)
        if mode == WORKER and options.stream_calls > 0:
            measured |= progress_hop(
                deployment, options, urls, pinning, logs / f"monitor-{rep}.txt"
            )
            check_alive(processes.all, "progress stream")
    return measured | errors(processes)


def progress_hop(
    deployment: ClusterDeployment,
    options: ClusterOptions,
    urls: list[str],
    pinning: Pinning,
    output: Path,
) -> dict[str, float]:
    """The progress stream's notifications matched with Redis MONITOR's trace of them."""
    if redis_cli_path() is None:
        log("    progress hop: redis-cli is missing, not measured")
        return {}
    stream = ProgressStream(options.stream_calls)
    with monitoring(options.redis_url, output):
        _, samples = run_load(stream, LoadTarget(urls, {}), pinning.client_cpu)
    sends = parse_progress_sends(output, deployment.prefix, options.redis_db)
    hop = hop_metrics(sends, list(samples.get("calls", [])))
    log(f"    progress hop: {summary(hop)}")
    return hop


@dataclass(frozen=True)
class Usage:
    """Cumulative CPU seconds at one instant of a scale run's processes (their event loop
    thread, the others), the machine, Redis, this harness's finished children (the load
    generator), and of the database's backends by pid."""

    threads: dict[str, tuple[float, float]]
    totals: dict[str, float]
    backends: dict[int, float]

    @classmethod
    def take(cls, pids: Mapping[str, int], deployment: ClusterDeployment) -> Usage:
        """Read them now."""
        redis_pid = redis_server_pid(deployment.redis_url)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        totals = {"machine": busy_seconds(), "redis": cpu_seconds(redis_pid) if redis_pid else 0.0}
        totals["client"] = children.ru_utime + children.ru_stime
        backends = postgres_backends(deployment.database_url)
        threads = {name: _thread_split(pid) for name, pid in pids.items()}
        return cls(threads, totals, {pid: cpu_seconds(pid) for pid in backends})

    def until(self, end: Usage, wall: float) -> dict[str, float]:
        """Shares of one CPU (%) from here to `end`: each process and its loop, each part of
        the machine; a backend that started in between counts from zero."""
        used = {key: end.totals[key] - value for key, value in self.totals.items()}
        used["postgres"] = sum(
            cpu - self.backends.get(pid, 0.0) for pid, cpu in end.backends.items()
        )
        shares, ours = {}, 0.0
        for name, (loop_0, rest_0) in self.threads.items():
            loop_1, rest_1 = end.threads[name]
            shares[f"cpu_pct.{name}"] = (loop_1 + rest_1 - loop_0 - rest_0) / wall * 100
            shares[f"loop_cpu_pct.{name}"] = (loop_1 - loop_0) / wall * 100
            ours += loop_1 + rest_1 - loop_0 - rest_0
        shares |= {f"cpu_pct.{name}": seconds / wall * 100 for name, seconds in used.items()}
        accounted = ours + sum(seconds for name, seconds in used.items() if name != "machine")
        return shares | {"cpu_pct.other": max(0.0, used["machine"] - accounted) / wall * 100}


def _thread_split(pid: int) -> tuple[float, float]:
    """CPU seconds of a process's main thread (its event loop) and of its other threads."""
    try:
        times = thread_cpu_seconds(pid)
    except psutil.Error:
        return math.nan, math.nan
    return times.pop(pid, 0.0), sum(times.values())


def history_outcomes(
    deployment: ClusterDeployment, since: float
) -> tuple[dict[str, int], dict[str, float]]:
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
    return outcomes, {
        "history.succeeded": float(sum(n for status, _, n in rows if status == "succeeded")),
        "history.interrupted": float(sum(n for status, _, n in rows if status == "interrupted")),
        "history.started": float(spread[1]) if spread else math.nan,
        "history.last_start_s": float(spread[0]) if spread and spread[0] is not None else math.nan,
    }


def measure_scale(
    deployment: ClusterDeployment, options: ClusterOptions, logs: Path, rep: int
) -> dict[str, float]:
    """N connections over the web processes, each with a running process_batch."""
    limit = str(max(2 * options.scale_connections, 64))
    extra = {f"MCP_MAX_{name}": limit for name in SCALE_LIMITS.split()} | dict(options.scale_env)
    with deployment.running(
        f"scale-{rep}",
        execution=WORKER,
        web=options.scale_web,
        workers=options.scale_workers,
        cpu=None,
        logs=logs,
        extra_env=extra,
    ) as processes:
        pids = dict(zip(options.names(), (p.pid for p in processes.all), strict=True))
        before = {name: status_kib(pid) or 0 for name, pid in pids.items()}
        began, usage = time.time(), Usage.take(pids, deployment)
        urls = [deployment.ws_url(port) for port in processes.ports]
        measured, samples = run_load(options.scale(), LoadTarget(urls, {}), None)
        check_alive(processes.all, "scale")
        measured |= usage.until(Usage.take(pids, deployment), time.time() - began)
        for name, pid in pids.items():
            measured[f"rss_before_mib.{name}"] = before[name] / 1024
            measured[f"peak_mib.{name}"] = (status_kib(pid, "VmHWM") or 0) / 1024
        outcomes, history = history_outcomes(deployment, began)
    for key, _, text in LOG_COUNTS:
        measured[key] = float(sum(process.count_lines(text) for process in processes.all))
    logged = (w.log_text() for w in processes.workers)
    stopped = (int(found.group(1)) for text in logged for found in STILL_RUNNING.finditer(text))
    measured |= {"still_running": float(sum(stopped))} | errors(processes) | history
    log(f"    scale: {summary(measured)}")
    problems = samples.get("problems", {}) | {f"history: {k}": n for k, n in outcomes.items()}
    for kind, count in problems.items():
        log(f"    {count} x {kind}")
    for line in samples.get("final_missing", [])[:10]:
        log(f"    final progress missing: {line}")
    return measured


def measure_fanout(
    deployment: ClusterDeployment, options: ClusterOptions, mode: str, logs: Path, rep: int
) -> dict[str, float]:
    """One process_images over the demo set, fanned out over 1 or 2 workers (one pool process
    each, not pinned), with pings on a second connection."""
    with deployment.running(
        f"{mode}-{rep}",
        execution=WORKER,
        web=1,
        workers=FANOUT_WORKERS[mode],
        cpu=None,
        logs=logs,
        extra_env={"MCP_FANOUT_PROCESSES": "1"},
    ) as processes:
        # Every pool started (a Django start-up each) before the call, not within its window.
        for worker in processes.workers:
            worker.wait_log_line(CHUNKS_READY_TEXT)
        urls = [deployment.ws_url(processes.ports[0])]
        target = LoadTarget(urls, {"server": processes.workers[0].pid})
        plan = [options.fanout(str(deployment.var_dir / "data" / deployment.account))]
        measured = run_scenarios(plan, processes.all, target, Pinning(None, None))
    return measured | errors(processes)


def fanout_table(results: RunResults, options: ClusterOptions) -> list[str]:
    """images/s and ping p99 with 1 and 2 workers, and their ratio (target: >= 1.6x)."""
    declared = {metric.key: metric for metric in options.fanout().metrics()}
    rows = []
    for key in (f"{FanOutImages.kind}.images_per_s", f"{FanOutImages.kind}.p99_us"):
        one, two = (results.median(mode, key) for mode in (FANOUT_1, FANOUT_2))
        ratio = two / one if one else math.nan
        rows.append([declared[key].head, f"{one:,.0f}", f"{two:,.0f}", f"{ratio:.2f}x"])
    return table(["metric", "1 worker", "2 workers", "2 / 1"], rows)


def modes(options: ClusterOptions) -> list[ServerInfo]:
    """The deployments the options measure, in order."""
    scale_info = f"{options.scale_connections:,} connections, each running process_batch (count "
    scale_info += f"{options.scale_count}, item_ms {options.scale_item_ms:g}); not pinned"
    scale_info += "".join(f", {name}={value}" for name, value in options.scale_env)
    both = "one manage.py serve and one manage.py runoperations"
    scale_title = f"{options.scale_web} manage.py serve and {options.scale_workers} runoperations"
    compared = bool(options.concurrency or options.first_progress_calls)
    worker = "MCP_EXECUTION=worker, "
    return [
        mode
        for mode, wanted in (
            (
                ServerInfo(INLINE, "one manage.py serve", "MCP_EXECUTION=inline, REDIS_URL set"),
                compared,
            ),
            (
                ServerInfo(WORKER, both, f"{worker}MCP_TOOL_PLACEMENT=add=worker, both on CPU 0"),
                compared or options.stream_calls > 0,
            ),
            (
                ServerInfo(
                    PLACED, both, f"{worker}default placement (add is local), both on CPU 0"
                ),
                bool(options.concurrency),
            ),
            (ServerInfo(SCALE, scale_title, scale_info), options.scale_connections > 0),
            (
                ServerInfo(FANOUT_1, "one serve, one runoperations", "MCP_FANOUT_PROCESSES=1"),
                options.fanout_images > 0,
            ),
            (
                ServerInfo(FANOUT_2, "one serve, two runoperations", "MCP_FANOUT_PROCESSES=1"),
                options.fanout_images > 0,
            ),
        )
        if wanted
    ]


@contextmanager
def cluster_deployment(
    options: ClusterOptions, workdir: Path, *, keep: bool
) -> Iterator[ClusterDeployment]:
    """A fresh database with an account (and the fan-out's images) for the block, dropped
    after it with the run's Redis keys unless `keep`."""
    deployment = ClusterDeployment(options.postgres_url, options.redis_url, workdir / "cluster-var")
    log("preparing the cluster deployment (PostgreSQL database, account, token)")
    try:
        deployment.create()
        if options.fanout_images:
            demo = ["--tenant", deployment.account, "--count", str(options.fanout_images)]
            demo += ["--dir", FANOUT_DIR]
            manage(deployment.env("inline"), "make_demo_images", *demo, timeout=IMAGES_TIMEOUT)
        yield deployment
    finally:
        if keep:
            log(f"kept database {deployment.database} and Redis prefix {deployment.prefix}")
        else:
            deployment.drop()


def run_cluster(
    options: ClusterOptions, pinning: Pinning, workdir: Path, *, keep_database: bool
) -> RunResults:
    """Every repetition of the three scenarios on one fresh database; the results."""

    def measure(mode: ServerInfo, _: object, pinning: Pinning, logs: Path, rep: int) -> Measured:
        if mode.key == SCALE:
            return measure_scale(deployment, options, logs, rep)
        if mode.key in FANOUT_WORKERS:
            return measure_fanout(deployment, options, mode.key, logs, rep)
        return measure_mode(deployment, options, mode.key, pinning, logs, rep)

    with cluster_deployment(options, workdir, keep=keep_database) as deployment:
        return run_plan(
            modes(options),
            [],
            repeats=options.repeats,
            pinning=pinning,
            logs=workdir / "cluster-logs",
            measure=measure,
            metrics=options.metrics(),
        )


Measured = dict[str, float]


def service_versions(options: ClusterOptions) -> list[tuple[str, str]]:
    """PostgreSQL's and Redis's versions, for the facts table."""
    postgres = "unknown"
    try:
        with psycopg.connect(options.postgres_url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        postgres = str(row[0]).split()[0] if row else postgres
    except psycopg.Error:
        pass
    redis_version = str(redis_info(options.redis_url).get("redis_version", "unknown"))
    return [("PostgreSQL", postgres), ("Redis", redis_version)]


def run_and_report(args: argparse.Namespace, pinning: Pinning, command: str, workdir: Path) -> str:
    """Run the cluster benchmark with run.py's or cluster.py's options; its report section."""
    options = ClusterOptions.from_args(args)
    started = time.monotonic()
    results = run_cluster(options, pinning, workdir, keep_database=args.keep_tmp)
    pinned = f"inline and worker runs: {pinning_text(pinning.server_cpu, pinning.client_cpu)}"
    details = f", {(time.monotonic() - started) / 60:.1f} min; medians of {options.repeats} "
    details += f"repetitions; {pinned}; scale runs not pinned"
    calls, progress, scale = cluster_tables(results, INLINE, WORKER)
    placed_calls = cluster_tables(results, INLINE, PLACED)[0] if options.concurrency else []
    hops = zip(
        *(results.samples(WORKER, f"hop.{k}") for k in ("matched", "unmatched")), strict=False
    )
    traced = ", ".join(f"{a:,.0f} ({b:,.0f})" for a, b in hops) or "none"
    fanout = fanout_table(results, options) if options.fanout_images else ["not measured"]
    sections = [
        ("Trivial calls, inline against worker", calls),
        (
            "Trivial calls, inline against a cluster's default placement (add runs in the web "
            "process; issue 12's target: calls/s at least 0.9x inline)",
            placed_calls,
        ),
        (
            "Progress latency",
            [*progress, "", f"Notifications traced (not found) per repetition: {traced}"],
        ),
        (
            f"{options.scale_connections:,} connections over {options.scale_web} web processes, "
            f"{options.scale_workers} worker(s)",
            scale,
        ),
        (
            f"process_images x{options.fanout_images:,} fanned out over 1 and 2 workers "
            "(issue 12's target: 2 workers >= 1.6x the images/s of 1, ping p99 <= 50 ms)",
            fanout,
        ),
        ("Each repetition", per_server_sections(results, "#####")),
    ]
    facts = table(["fact", "value"], [*machine_facts(), *service_versions(options)], 2)
    lines = [run_line(now(), command, details), "", *facts, ""]
    for title, body in sections:
        lines += [f"#### {title}", "", *body, ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from bench.run import main

    sys.exit(main(script="bench/cluster.py"))
