"""Markdown for the scale-out benchmark (bench/cluster.py): summary tables and each repetition."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import redis

from bench.harness import Pinning
from bench.markdown import fmt, table
from bench.report import machine_facts, per_server_sections
from bench.results import RunResults
from bench.scenarios import Metric
from bench.targets import ROOT

if TYPE_CHECKING:
    from bench.cluster import ClusterOptions

CLUSTER_LATEST = ROOT / "bench" / "results" / "cluster-latest.md"
DOCS_START = "<!-- bench-cluster:start -->"
DOCS_END = "<!-- bench-cluster:end -->"
INLINE, WORKER, SCALE = "inline", "worker", "scale"
CPU_PARTS = (
    ("service", "server CPU per call (web + worker)"),
    ("web", "web process CPU per call"),
    ("worker", "worker CPU per call"),
    ("redis", "Redis CPU per call"),
    ("postgres", "PostgreSQL backends' CPU per call"),
    ("client", "load generator CPU per call"),
    ("machine", "whole machine CPU per call"),
    ("other", "other processes' CPU per call (not this benchmark's)"),
)


def _m(key: str, label: str, unit: str, higher: bool = False) -> Metric:
    return Metric(key, label, unit, higher)


def cluster_metrics(options: ClusterOptions) -> list[Metric]:
    """Every metric the cluster benchmark may report, in display order."""
    metrics: list[Metric] = []
    for c in options.concurrency:
        metrics += [
            _m(f"c{c}.calls_per_s", f"calls/s, C={c}", "calls/s", True),
            _m(f"c{c}.p50_us", f"p50 latency, C={c}", "µs"),
            _m(f"c{c}.p99_us", f"p99 latency, C={c}", "µs"),
        ]
        metrics += [_m(f"c{c}.cpu_us_per_call.{k}", f"{t}, C={c}", "µs") for k, t in CPU_PARTS]
        metrics += [
            _m(f"c{c}.cpu_pct.machine", f"whole machine busy, C={c} (200 % = both CPUs)", "%")
        ]
    metrics += [
        _m("fp.first_p50_us", "first progress after sending tools/call, p50", "µs"),
        _m("fp.first_p99_us", "first progress after sending tools/call, p99", "µs"),
        _m("fp.response_p50_us", "response of process_batch(count=1), p50", "µs"),
        _m("fp.response_p99_us", "response of process_batch(count=1), p99", "µs"),
        _m("hop.p50_us", "progress hop worker -> client, p50", "µs"),
        _m("hop.p99_us", "progress hop worker -> client, p99", "µs"),
        _m("hop.max_us", "progress hop worker -> client, max", "µs"),
        _m("hop.sending_p50_us", "of which the worker's send until stored in Redis, p50", "µs"),
        _m("hop.in_redis_p50_us", "of which waiting in Redis for the web process, p50", "µs"),
        _m("hop.to_client_p50_us", "of which web process taking it -> client, p50", "µs"),
        _m("hop.to_client_p99_us", "of which web process taking it -> client, p99", "µs"),
        _m("hop.matched", "progress notifications traced", "items", True),
        _m("hop.unmatched", "progress notifications not found in the monitor", "items"),
        _m("connections", "connections opened", "items", True),
        _m("calls.ok", "results received, complete", "items", True),
        _m("results_lost", "final results lost (no result: error or no response)", "items"),
        _m("calls.failed", "of which error responses", "items"),
        _m("no_response", "of which no response (timeout or socket closed)", "items"),
        _m("calls.wrong", "results with a wrong count", "items"),
        _m("final_progress_missing", "final progress missing (last notification < total)", "items"),
        _m("notifications", "progress notifications received", "items", True),
        _m("open_s", "time to open and initialize the connections", "s"),
        _m("all_done_s", "time from the calls to the last result", "s"),
        _m("duration_p50_s", "call duration p50", "s"),
        _m("duration_p99_s", "call duration p99", "s"),
        _m("duration_max_s", "call duration max", "s"),
    ]
    names = [f"web{i + 1}" for i in range(options.scale_web)]
    names += [f"worker{i + 1}" for i in range(options.scale_workers)]
    metrics += [_m(f"peak_mib.{n}", f"peak RSS (VmHWM), {n}", "MiB") for n in names]
    metrics += [_m(f"rss_before_mib.{n}", f"RSS before the calls, {n}", "MiB") for n in names]
    metrics += [_m(f"cpu_pct.{n}", f"CPU during the run, {n}", "%") for n in names]
    metrics += [_m(f"loop_cpu_pct.{n}", f"of which its event loop thread, {n}", "%") for n in names]
    metrics += [
        _m("cpu_pct.redis", "CPU during the run, Redis", "%"),
        _m("cpu_pct.postgres", "CPU during the run, PostgreSQL backends", "%"),
        _m("cpu_pct.client", "CPU during the run, load generator", "%"),
        _m("cpu_pct.machine", "whole machine busy during the run (200 % = both CPUs)", "%"),
        _m("cpu_pct.other", "other processes during the run (not this benchmark's)", "%"),
    ]
    metrics += [
        _m("history.succeeded", "history: operations succeeded", "items", True),
        _m("history.interrupted", "history: operations marked interrupted", "items"),
        _m("history.started", "history: operations with a start time", "items", True),
        _m("history.last_start_s", "history: first queued to last started", "s"),
        _m("still_running", "operations still running in the worker(s) at stop", "items"),
        _m("dropped", "progress messages dropped (channel full, logged)", "items"),
        _m("deadlocks", "PostgreSQL deadlocks (logged)", "items"),
        _m("heartbeat_failed", "failed heartbeat rounds (logged)", "items"),
        _m("history_failed", "failed history writes (logged)", "items"),
        _m("errors", "error lines in the server logs", "items"),
    ]
    return metrics


def _ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def _diff_ms(a: float, b: float) -> str:
    return "n/a" if math.isnan(a) or math.isnan(b) else f"{(a - b) / 1000:+.2f} ms"


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value / 1000:,.2f} ms"


def throughput_table(results: RunResults, options: ClusterOptions) -> list[str]:
    """Inline against worker for trivial calls: medians and the ratio."""
    rows: list[list[str]] = []
    for c in options.concurrency:
        keys = [f"c{c}.calls_per_s", f"c{c}.p50_us", f"c{c}.p99_us"]
        parts = ("service", "redis", "postgres", "machine", "other")
        keys += [f"c{c}.cpu_us_per_call.{k}" for k in parts]
        for key in keys:
            metric = results.metric(key)
            inline, worker = results.median(INLINE, key), results.median(WORKER, key)
            # A ratio to what inline mode hardly uses (Redis, PostgreSQL, others) means nothing.
            compared = not key.endswith((".redis", ".postgres", ".other"))
            rows.append(
                [
                    f"{metric.label} ({metric.unit})",
                    fmt(inline, metric.unit),
                    fmt(worker, metric.unit),
                    _ratio(worker, inline) if compared else "",
                ]
            )
    return table(["trivial tools/call (add)", "inline", "worker", "worker / inline"], rows)


def progress_table(results: RunResults) -> list[str]:
    """First progress and response, inline against worker; the worker's hop through Redis."""
    rows: list[list[str]] = []
    for key in ("fp.first_p50_us", "fp.first_p99_us", "fp.response_p50_us", "fp.response_p99_us"):
        inline, worker = results.median(INLINE, key), results.median(WORKER, key)
        label = results.metric(key).label
        rows.append([label, _ms(inline), _ms(worker), _diff_ms(worker, inline)])
    for key in (
        "hop.p50_us",
        "hop.p99_us",
        "hop.max_us",
        "hop.sending_p50_us",
        "hop.in_redis_p50_us",
        "hop.to_client_p50_us",
        "hop.to_client_p99_us",
    ):
        label = results.metric(key).label
        rows.append([label, "(no hop)", _ms(results.median(WORKER, key)), ""])
    traced = results.samples(WORKER, "hop.matched")
    missed = results.samples(WORKER, "hop.unmatched")
    rows.append(
        [
            "notifications traced (not found) per repetition",
            "",
            ", ".join(f"{a:,.0f} ({b:,.0f})" for a, b in zip(traced, missed, strict=False)),
            "",
        ]
    )
    return table(["progress", "inline", "worker", "worker - inline"], rows)


def scale_table(results: RunResults, options: ClusterOptions) -> list[str]:
    """The scale scenario, each repetition and the worst."""
    keys = [
        "connections",
        "calls.ok",
        "results_lost",
        "calls.failed",
        "no_response",
        "final_progress_missing",
        "notifications",
        "open_s",
        "all_done_s",
        "duration_p50_s",
        "duration_max_s",
    ]
    keys += [m.key for m in cluster_metrics(options) if m.key.startswith("peak_mib.")]
    keys += [m.key for m in cluster_metrics(options) if m.key.startswith("rss_before_mib.")]
    keys += [
        m.key for m in cluster_metrics(options) if m.key.startswith(("cpu_pct.", "loop_cpu_pct."))
    ]
    keys += [
        "history.succeeded",
        "history.interrupted",
        "history.last_start_s",
        "still_running",
        "dropped",
        "deadlocks",
        "heartbeat_failed",
        "history_failed",
        "errors",
    ]
    reps = [f"rep {n}" for n in range(1, results.repeats + 1)]
    rows: list[list[str]] = []
    for key in keys:
        metric = results.metric(key)
        samples = results.samples(SCALE, key)
        if not samples:
            continue
        cells = [fmt(value, metric.unit) for value in samples]
        cells += ["n/a"] * (results.repeats - len(cells))
        finite = [value for value in samples if not math.isnan(value)]
        worst = (min if metric.higher_is_better else max)(finite) if finite else math.nan
        rows.append([f"{metric.label} ({metric.unit})", *cells, f"**{fmt(worst, metric.unit)}**"])
    return table(["measurement", *reps, "worst"], rows)


def service_versions(options: ClusterOptions) -> list[tuple[str, str]]:
    """PostgreSQL's and Redis's versions, for the facts table."""
    facts: list[tuple[str, str]] = []
    try:
        with psycopg.connect(options.postgres_url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        facts.append(("PostgreSQL", str(row[0]).split()[0] if row else "unknown"))
    except psycopg.Error:
        facts.append(("PostgreSQL", "unknown"))
    client = redis.Redis.from_url(options.redis_url, socket_timeout=3)
    try:
        facts.append(("Redis", str(client.info("server").get("redis_version", "unknown"))))
    except redis.RedisError:
        facts.append(("Redis", "unknown"))
    finally:
        client.close()
    return facts


def cluster_section(
    results: RunResults,
    options: ClusterOptions,
    pinning: Pinning,
    command: str,
    when: datetime,
    minutes: float,
) -> str:
    """The whole results section of the scale-out benchmark."""
    pinned = (
        f"inline and worker runs: servers on CPU {pinning.server_cpu}, load generator on CPU "
        f"{pinning.client_cpu}"
        if pinning.server_cpu is not None
        else "not pinned"
    )
    lines = [
        f"Run {when.strftime('%Y-%m-%d %H:%M UTC')} with `{command}`, {minutes:.1f} min; "
        f"medians of {options.repeats} repetitions; {pinned}; scale runs not pinned.",
        "",
        *table(["fact", "value"], [*machine_facts(), *service_versions(options)], 2),
        "",
        "#### Trivial calls, inline against worker",
        "",
        *throughput_table(results, options),
        "",
        "#### Progress latency",
        "",
        *progress_table(results),
        "",
        f"#### {options.scale_connections:,} connections over {options.scale_web} web "
        f"processes, {options.scale_workers} worker(s)",
        "",
        *scale_table(results, options),
        "",
        "#### Each repetition",
        "",
        *[
            line.replace("#### ", "##### ", 1) if line.startswith("#### ") else line
            for line in per_server_sections(results)
        ],
    ]
    return "\n".join(lines).rstrip() + "\n"


def replace_cluster_docs(path: Path, section: str) -> None:
    """Replace what lies between the cluster markers of docs/BENCHMARKS.md."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(DOCS_START) + r".*?" + re.escape(DOCS_END), re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(f"{path} has no lines {DOCS_START} and {DOCS_END}")
    replacement = f"{DOCS_START}\n{section.rstrip()}\n{DOCS_END}"
    path.write_text(pattern.sub(lambda _: replacement, text, count=1))
