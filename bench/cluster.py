"""The scale-out benchmark (issue 5): inline against worker execution and against a cluster's
default placement (issue 12), progress latency, 1,000 connections over two web processes, and
`kill -9` of workers mid-call (PostgreSQL and Redis; method in docs/BENCHMARKS.md)."""

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil
import psycopg
import redis

from bench import cluster_load as load
from bench import report
from bench.harness import (
    Pinning,
    check_alive,
    log,
    run_load,
    run_plan,
    run_scenarios,
    summary,
    warn_on_errors,
)
from bench.measure import busy_seconds, cpu_seconds, status_kib, thread_cpu_seconds
from bench.report import CALLS, PROGRESS, SCALE, Metric, RunResults, ServerInfo, declare, fmt
from bench.scenarios import FirstProgress, LoadTarget, Scenario
from bench.servers import HOST, IMAGES_TIMEOUT, ClusterDeployment, ClusterProcesses, manage

MARKER = "bench-cluster"
INLINE, WORKER, PLACED = "inline", "worker", "placed"
# process_images fanned out over one worker, then two, each with one pool process (one core).
FANOUT_1, FANOUT_2 = "fanout-1w", "fanout-2w"
FANOUT_WORKERS = {FANOUT_1: 1, FANOUT_2: 2}
FANOUT_DIR, FANOUT_KEY = "fanout", "MCP_FANOUT_PROCESSES"
FANOUT_ENV = f"{FANOUT_KEY}=1"
# kill -9 of a worker mid fan-out, then of the other mid process_batch (its key: its report
# section's, as SCALE's); a short bound for their loss, to keep it short (production's: 15 s).
FAILOVER, FAILOVER_DIR, LOST_AFTER = report.FAILOVER, "failover", 6.0
# A worker logs this once its pool's processes run: from then on it takes chunks.
CHUNKS_READY_TEXT = "takes chunks from"
# Worker mode measures the hand-off itself: even the trivial tool, short and so run by the web
# process under its default placement, goes to the worker.
ALL_ON_WORKERS = {"MCP_TOOL_PLACEMENT": "add=worker"}
# The scale scenario runs many operations for one user: lift the per-process limits above it.
SCALE_LIMITS = "OPERATIONS OPERATIONS_PER_USER OPERATIONS_PER_TENANT IN_FLIGHT_PER_USER "
SCALE_LIMITS += "IN_FLIGHT_PER_TENANT"
SCALE_WEB = 2
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
# The parts of the machine `Usage.until` reports, besides the processes of the deployment.
USAGE_PARTS = (
    ("redis", "Redis"),
    ("postgres", "PostgreSQL backends"),
    ("client", "load generator"),
    ("machine", "whole machine busy during the run (200 % = both CPUs)"),
    ("other", "other processes during the run (not this benchmark's)"),
)
HISTORY = (
    ("succeeded", "history: operations succeeded", "items", True),
    ("interrupted", "history: operations marked interrupted", "items"),
    ("started", "history: operations with a start time", "items", True),
    ("last_start_s", "history: first queued to last started", "s"),
)
STOPPED = [
    ("still_running", "operations still running in the worker(s) at stop", "items"),
    *((key, label, "items") for key, label, _ in LOG_COUNTS),
    ("errors", "error lines in the server logs", "items"),
]
Measured = dict[str, float]


def process_names(options: argparse.Namespace) -> list[str]:
    """The scale run's processes: web1.., worker1.."""
    web = [f"web{i + 1}" for i in range(SCALE_WEB)]
    return web + [f"worker{i + 1}" for i in range(options.scale_workers)]


def scale_scenario(options: argparse.Namespace) -> load.Scale:
    """The scale scenario of these options."""
    return load.Scale(options.scale_connections, options.scale_count, options.scale_item_ms)


def fanout_scenario(options: argparse.Namespace, tenant_root: str = "") -> load.FanOutImages:
    """The fan-out scenario of these options (`tenant_root`: where thumbnails go)."""
    return load.FanOutImages(options.fanout_images, FANOUT_DIR, tenant_root=tenant_root)


def failover_scenario(options: argparse.Namespace, database_url: str = "") -> load.Failover:
    """The failover scenario of these options."""
    return load.Failover(options.failover_images, FAILOVER_DIR, database_url, LOST_AFTER)


def plan(options: argparse.Namespace, mode: str, database_url: str = "") -> list[Scenario]:
    """What one mode runs: the trivial calls, and the first progress (not placed:
    process_batch is on the worker, as in worker mode)."""
    calls: list[Scenario] = [
        load.ClusterThroughput(c, options.warmup, options.window, database_url)
        for c in options.concurrency
    ]
    first = options.first_progress_calls and mode != PLACED
    return calls + ([FirstProgress(options.first_progress_calls)] if first else [])


def metrics(options: argparse.Namespace) -> list[Metric]:
    """Every metric the cluster benchmark may report, in display order."""
    declared = [m for scenario in plan(options, INLINE) for m in scenario.metrics()]
    declared += [*load.HOP_METRICS, *scale_scenario(options).metrics()]
    declared += fanout_scenario(options).metrics() if options.fanout_images else []
    declared += failover_scenario(options).metrics() if options.failover_images else []
    names = process_names(options)
    each = [(f"{k}.{n}", f"{text}, {n}", u) for k, text, u in PER_PROCESS for n in names]
    usage = [(f"cpu_pct.{k}", f"CPU during the run, {text}", "%") for k, text in USAGE_PARTS[:3]]
    usage += [(f"cpu_pct.{k}", text, "%") for k, text in USAGE_PARTS[3:]]
    rows = [*each, *usage, *((f"history.{k}", *rest) for k, *rest in HISTORY), *STOPPED]
    return declared + declare("", rows, SCALE)


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


def redis_db(redis_url: str) -> int:
    """The Redis database number of a URL (0 when it names none)."""
    path = redis_url.rsplit("/", 1)[-1] if redis_url.count("/") >= 3 else ""
    return int(path) if path.isdigit() else 0


def errors(processes: ClusterProcesses) -> Measured:
    """`errors`: the error lines the processes logged (the first ones printed)."""
    return {"errors": float(sum(warn_on_errors(process) for process in processes.all))}


@dataclass(frozen=True)
class Mode(ServerInfo):
    """A deployment the cluster benchmark measures: how it executes calls, its web processes
    and workers, their extra environment, and whether they are pinned to the server CPU."""

    execution: str = WORKER
    web: int = 1
    workers: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    pinned: bool = False


@dataclass
class ClusterRun:
    """One run of the cluster benchmark: its options, deployment, pinning and logs."""

    options: argparse.Namespace
    deployment: ClusterDeployment
    pinning: Pinning
    logs: Path

    def running(self, mode: Mode, rep: int) -> AbstractContextManager[ClusterProcesses]:
        """The processes of `mode`, ready for the block."""
        cpu = self.pinning.server_cpu if mode.pinned else None
        return self.deployment.running(
            f"{mode.key}-{rep}", mode.execution, mode.web, mode.workers, cpu, self.logs, mode.env
        )

    def measure(self, mode: Mode, rep: int) -> Measured:
        """One repetition of `mode`, with the error lines its processes logged."""
        with self.running(mode, rep) as processes:
            urls = [self.deployment.ws_url(port) for port in processes.ports]
            if mode.key == SCALE:
                measured, problems = self.scale(processes, urls)
            elif mode.key in FANOUT_WORKERS:
                measured = self.fanout(processes, urls)
            elif mode.key == FAILOVER:
                measured = self.failover(processes, urls)
            else:
                measured = self.calls(mode, processes, urls, rep)
        if mode.key == SCALE:  # what the processes logged until they stopped
            for key, _, text in LOG_COUNTS:
                measured[key] = float(sum(p.count_lines(text) for p in processes.all))
            logged = (w.log_text() for w in processes.workers)
            stopped = (int(n.group(1)) for text in logged for n in STILL_RUNNING.finditer(text))
            measured |= {"still_running": float(sum(stopped))} | errors(processes)
            log(f"    scale: {summary(measured)}")
            for line in problems:
                log(f"    {line}")
            return measured
        return measured | errors(processes)

    def calls(self, mode: Mode, processes: ClusterProcesses, urls: list[str], rep: int) -> Measured:
        """The plan of one mode (inline, worker, placed) and, in worker mode, the progress hop."""
        redis_pid = redis_server_pid(self.options.redis_url)
        pids = {"web": processes.web[0].pid}
        pids |= {"worker": processes.workers[0].pid} if processes.workers else {}
        pids |= {"redis": redis_pid} if redis_pid is not None else {}
        scenarios = plan(self.options, mode.key, self.deployment.database_url)
        measured = run_scenarios(scenarios, processes.all, LoadTarget(urls, pids), self.pinning)
        if mode.key == WORKER and self.options.stream_calls > 0:
            measured |= self.progress_hop(urls, self.logs / f"monitor-{rep}.txt")
            check_alive(processes.all, "progress stream")
        return measured

    def progress_hop(self, urls: list[str], output: Path) -> Measured:
        """The progress stream's notifications matched with Redis MONITOR's trace of them."""
        if load.redis_cli_path() is None:
            log("    progress hop: redis-cli is missing, not measured")
            return {}
        redis_url = self.options.redis_url
        with load.monitoring(redis_url, output):
            stream = load.ProgressStream(self.options.stream_calls)
            _, samples = run_load(stream, LoadTarget(urls, {}), self.pinning.client_cpu)
        sends = load.parse_progress_sends(output, self.deployment.prefix, redis_db(redis_url))
        hop = load.hop_metrics(sends, list(samples.get("calls", [])))
        log(f"    progress hop: {summary(hop)}")
        return hop

    def fanout(self, processes: ClusterProcesses, urls: list[str]) -> Measured:
        """One process_images over the demo set, fanned out over 1 or 2 workers (one pool
        process each, not pinned), with pings on a second connection."""
        # Every pool started (a Django start-up each) before the call, not within its window.
        for worker in processes.workers:
            worker.wait_log_line(CHUNKS_READY_TEXT)
        target = LoadTarget(urls, {"server": processes.workers[0].pid})
        root = self.deployment.var_dir / "data" / self.deployment.account
        scenarios = [fanout_scenario(self.options, str(root))]
        return run_scenarios(scenarios, processes.all, target, Pinning(None, None))

    def failover(self, processes: ClusterProcesses, urls: list[str]) -> Measured:
        """The failover scenario on two workers whose pools run; only the web process must
        live through it."""
        for worker in processes.workers:
            worker.wait_log_line(CHUNKS_READY_TEXT)
        pids = {worker.name: worker.pid for worker in processes.workers}
        http = f"http://{HOST}:{processes.ports[0]}/mcp"
        target = LoadTarget(urls, pids, http_url=http, bearer=self.deployment.token)
        scenario = failover_scenario(self.options, self.deployment.database_url)
        measured, _ = run_load(scenario, target, None)
        check_alive(processes.web, scenario.label)
        log(f"    {scenario.label}: {summary(measured)}")
        return measured

    def scale(self, processes: ClusterProcesses, urls: list[str]) -> tuple[Measured, list[str]]:
        """N connections over the web processes, each with a running process_batch; what went
        wrong, to log."""
        deployment = self.deployment
        pids = dict(zip(process_names(self.options), (p.pid for p in processes.all), strict=True))
        before = {name: status_kib(pid) or 0 for name, pid in pids.items()}
        began, usage = time.time(), Usage.take(pids, deployment)
        measured, samples = run_load(scale_scenario(self.options), LoadTarget(urls, {}), None)
        check_alive(processes.all, "scale")
        measured |= usage.until(Usage.take(pids, deployment), time.time() - began)
        for name, pid in pids.items():
            measured[f"rss_before_mib.{name}"] = before[name] / 1024
            measured[f"peak_mib.{name}"] = (status_kib(pid, "VmHWM") or 0) / 1024
        outcomes, history = history_outcomes(deployment, began)
        problems = samples.get("problems", {}) | {f"history: {k}": n for k, n in outcomes.items()}
        notes = [f"{count} x {kind}" for kind, count in problems.items()]
        notes += [
            f"final progress missing: {line}" for line in samples.get("final_missing", [])[:10]
        ]
        return measured | history, notes


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
        backends = load.postgres_backends(deployment.database_url)
        threads = {name: _thread_split(pid) for name, pid in pids.items()}
        return cls(threads, totals, {pid: cpu_seconds(pid) for pid in backends})

    def until(self, end: Usage, wall: float) -> Measured:
        """Shares of one CPU (%) from here to `end`: each process and its loop, each part of
        the machine (USAGE_PARTS); a backend that started in between counts from zero."""
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
) -> tuple[dict[str, int], Measured]:
    """The operations queued since `since` (epoch seconds): how many ended how, and the
    HISTORY figures (how long after the first was queued the last one was started)."""
    with psycopg.connect(deployment.database_url, connect_timeout=5) as conn:
        where = "FROM mcp_server_operation WHERE queued_at >= to_timestamp(%s)"
        rows = conn.execute(
            f"SELECT status, error, count(*) {where} GROUP BY 1, 2 ORDER BY 3 DESC", (since,)
        ).fetchall()
        spread = conn.execute(
            "SELECT extract(epoch FROM max(started_at) - min(queued_at)), count(started_at) "
            + where,
            (since,),
        ).fetchone()
    outcomes = {f"{status}{': ' + error if error else ''}": int(n) for status, error, n in rows}
    counted = {
        s: float(sum(n for status, _, n in rows if status == s))
        for s in ("succeeded", "interrupted")
    }
    counted["started"] = float(spread[1]) if spread else math.nan
    counted["last_start_s"] = float(spread[0]) if spread and spread[0] is not None else math.nan
    return outcomes, {f"history.{key}": counted[key] for key, *_ in HISTORY}


def compared(
    results: RunResults,
    section: str,
    a: str,
    b: str,
    cells: Callable[[Metric, float, float], list[str]],
) -> list[list[str]]:
    """A row per metric of a section that `a` or `b` measured: `cells(metric, a's, b's median)`."""
    return [
        cells(m, results.median(a, m.key), results.median(b, m.key))
        for m in results.measured(section, [a, b])
    ]


def calls_table(results: RunResults, a: str, b: str) -> list[str]:
    """The trivial calls of server `a` against `b`."""

    def cells(m: Metric, first: float, second: float) -> list[str]:
        # A ratio to what inline mode hardly uses (Redis, PostgreSQL, others) means nothing.
        plain = not m.key.endswith((".redis", ".postgres", ".other")) and first
        return [
            m.head,
            fmt(first, m.unit),
            fmt(second, m.unit),
            fmt(second / first, "x") if plain else "",
        ]

    return report.table(
        ["trivial tools/call (add)", a, b, f"{b} / {a}"], compared(results, CALLS, a, b, cells)
    )


def progress_table(results: RunResults, a: str, b: str) -> list[str]:
    """The progress latencies of server `a` against `b`, in ms."""

    def ms(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value / 1000:,.2f} ms"

    def cells(m: Metric, first: float, second: float) -> list[str]:
        diff = f"{(second - first) / 1000:+.2f} ms"
        return [m.label, ms(first), ms(second), "n/a" if "nan" in diff else diff]

    return report.table(["progress", a, b, f"{b} - {a}"], compared(results, PROGRESS, a, b, cells))


def scale_table(results: RunResults) -> list[str]:
    """The scale runs' repetitions with the worst value."""
    rows = []
    for m in results.measured(SCALE, [SCALE]):
        finite = [value for value in results.samples(SCALE, m.key) if not math.isnan(value)]
        worst = (min if m.higher_is_better else max)(finite) if finite else math.nan
        rows.append([m.head, *results.rep_cells(SCALE, m), f"**{fmt(worst, m.unit)}**"])
    return report.table(
        ["measurement", *(f"rep {n}" for n in range(1, results.repeats + 1)), "worst"], rows
    )


def fanout_table(results: RunResults, options: argparse.Namespace) -> list[str]:
    """images/s and ping p99 with 1 and 2 workers, and their ratio (target: >= 1.6x)."""
    declared = {metric.key: metric for metric in fanout_scenario(options).metrics()}
    rows = []
    for key in (f"{load.FanOutImages.kind}.images_per_s", f"{load.FanOutImages.kind}.p99_us"):
        one, two = (results.median(mode, key) for mode in (FANOUT_1, FANOUT_2))
        rows.append(
            [
                declared[key].head,
                f"{one:,.0f}",
                f"{two:,.0f}",
                f"{two / one if one else math.nan:.2f}x",
            ]
        )
    return report.table(["metric", "1 worker", "2 workers", "2 / 1"], rows)


def failover_table(results: RunResults) -> list[str]:
    """Each repetition of the failover mode; a goal is met when every repetition meets it."""
    rows = []
    for m in results.measured(FAILOVER, [FAILOVER]):
        samples = results.samples(FAILOVER, m.key)
        verdicts = ["met" if all(map(g.holds, samples)) else "**missed**" for g in m.goals]
        targets = "; ".join(goal.target_text(m.unit) for goal in m.goals)
        rows.append([m.head, *results.rep_cells(FAILOVER, m), targets, "; ".join(verdicts)])
    reps = [f"rep {n}" for n in range(1, results.repeats + 1)]
    return report.table(["measurement", *reps, "target", "verdict"], rows)


def modes(options: argparse.Namespace) -> list[Mode]:
    """The deployments the options measure, in order."""
    scale_info = f"{options.scale_connections:,} connections, each running process_batch (count "
    scale_info += f"{options.scale_count}, item_ms {options.scale_item_ms:g}); not pinned"
    scale_info += "".join(f", {name}={value}" for name, value in options.scale_env)
    limit = str(max(2 * options.scale_connections, 64))
    scale_env = {f"MCP_MAX_{name}": limit for name in SCALE_LIMITS.split()}
    both, worker = "one manage.py serve and one manage.py runoperations", "MCP_EXECUTION=worker, "
    scale_title = f"{SCALE_WEB} manage.py serve and {options.scale_workers} runoperations"
    calls, fanout = bool(options.concurrency or options.first_progress_calls), {FANOUT_KEY: "1"}
    inline = "MCP_EXECUTION=inline, REDIS_URL set"
    placement = f"{worker}MCP_TOOL_PLACEMENT=add=worker, both on CPU 0"
    placed = f"{worker}default placement (add is local), both on CPU 0"
    scale_env |= dict(options.scale_env)
    scaled = Mode(
        SCALE, scale_title, scale_info, WORKER, SCALE_WEB, options.scale_workers, scale_env
    )
    fan_1 = Mode(FANOUT_1, "one serve, one runoperations", FANOUT_ENV, env=fanout)
    fan_2 = Mode(FANOUT_2, "one serve, two runoperations", FANOUT_ENV, workers=2, env=fanout)
    lost = {"MCP_OPERATION_LOST_AFTER": f"{LOST_AFTER:g}"}
    lost_info = f"{FANOUT_ENV}, MCP_OPERATION_LOST_AFTER={LOST_AFTER:g}"
    failover = Mode(FAILOVER, fan_2.title, lost_info, workers=2, env=fanout | lost)
    wanted = [
        (Mode(INLINE, "one manage.py serve", inline, INLINE, workers=0, pinned=True), calls),
        (
            Mode(WORKER, both, placement, env=ALL_ON_WORKERS, pinned=True),
            calls or options.stream_calls > 0,
        ),
        (Mode(PLACED, both, placed, pinned=True), bool(options.concurrency)),
        (scaled, options.scale_connections > 0),
        *((mode, options.fanout_images > 0) for mode in (fan_1, fan_2)),
        (failover, options.failover_images > 0),
    ]
    return [mode for mode, chosen in wanted if chosen]


@contextmanager
def cluster_deployment(
    options: argparse.Namespace, workdir: Path, *, keep: bool
) -> Iterator[ClusterDeployment]:
    """A fresh database with an account (and the fan-out's images) for the block, dropped
    after it with the run's Redis keys unless `keep`."""
    deployment = ClusterDeployment(options.postgres_url, options.redis_url, workdir / "cluster-var")
    log("preparing the cluster deployment (PostgreSQL database, account, token)")
    try:
        deployment.create()
        sets = ((FANOUT_DIR, options.fanout_images), (FAILOVER_DIR, options.failover_images))
        for directory, count in ((d, n) for d, n in sets if n):
            demo = ["--tenant", deployment.account, "--count", str(count), "--dir", directory]
            manage(deployment.env("inline"), "make_demo_images", *demo, timeout=IMAGES_TIMEOUT)
        yield deployment
    finally:
        if keep:
            log(f"kept database {deployment.database} and Redis prefix {deployment.prefix}")
        else:
            deployment.drop()


def run_cluster(
    options: argparse.Namespace, pinning: Pinning, workdir: Path, *, keep_database: bool
) -> RunResults:
    """Every repetition of the modes on one fresh database; the results."""
    with cluster_deployment(options, workdir, keep=keep_database) as deployment:
        run = ClusterRun(options, deployment, pinning, workdir / "cluster-logs")
        return run_plan(modes(options), run.measure, options.repeats, run.logs, metrics(options))


def service_versions(options: argparse.Namespace) -> list[tuple[str, str]]:
    """PostgreSQL's and Redis's versions, for the facts table."""
    postgres = "unknown"
    try:
        with psycopg.connect(options.postgres_url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        postgres = str(row[0]).split()[0] if row else postgres
    except psycopg.Error:
        pass
    return [
        ("PostgreSQL", postgres),
        ("Redis", str(redis_info(options.redis_url).get("redis_version", "unknown"))),
    ]


def run_and_report(
    options: argparse.Namespace, pinning: Pinning, command: str, workdir: Path
) -> str:
    """Run the cluster benchmark with run.py's or cluster.py's options; its report section."""
    started = time.monotonic()
    results = run_cluster(options, pinning, workdir, keep_database=options.keep_tmp)
    pinned = (
        f"inline and worker runs: {report.pinning_text(pinning.server_cpu, pinning.client_cpu)}"
    )
    details = f", {(time.monotonic() - started) / 60:.1f} min; medians of {options.repeats} "
    details += f"repetitions; {pinned}; scale runs not pinned"
    hops = zip(
        *(results.samples(WORKER, f"hop.{k}") for k in ("matched", "unmatched")), strict=False
    )
    traced = ", ".join(f"{a:,.0f} ({b:,.0f})" for a, b in hops) or "none"
    placed = "add runs in the web process; issue 12's target: calls/s at least 0.9x inline"
    fanout = (
        f"process_images x{options.fanout_images:,} fanned out over 1 and 2 workers (issue 12's "
    )
    fanout += "target: 2 workers >= 1.6x the images/s of 1, ping p99 <= 50 ms)"
    scale = f"{options.scale_connections:,} connections over {SCALE_WEB} web processes, "
    failover = f"kill -9 of a worker mid process_images x{options.failover_images:,} over 2 "
    failover += "workers, then of the other mid process_batch (issue 12)"
    sections = [
        ("Trivial calls, inline against worker", calls_table(results, INLINE, WORKER)),
        (
            f"Trivial calls, inline against a cluster's default placement ({placed})",
            calls_table(results, INLINE, PLACED) if options.concurrency else [],
        ),
        (
            "Progress latency",
            [
                *progress_table(results, INLINE, WORKER),
                "",
                f"Notifications traced (not found) per repetition: {traced}",
            ],
        ),
        (f"{scale}{options.scale_workers} worker(s)", scale_table(results)),
        (fanout, fanout_table(results, options) if options.fanout_images else ["not measured"]),
        *([(failover, failover_table(results))] if options.failover_images else []),
        ("Each repetition", report.per_server_sections(results, "#####")),
    ]
    facts = report.table(
        ["fact", "value"], [*report.machine_facts(), *service_versions(options)], 2
    )
    lines = [report.run_line(report.now(), command, details), "", *facts, ""]
    for title, body in sections:
        lines += [f"#### {title}", "", *body, ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from bench.run import main

    sys.exit(main(script="bench/cluster.py"))
