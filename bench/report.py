"""Markdown for a run: machine facts, a table per server, medians side by side, goals."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.goals import (
    CALLS_C50,
    CPU_NORMALISED,
    CPU_PER_CALL_C50,
    GOALS,
    KIB_IDLE,
    LONG_RUNNING,
    P50_C1,
    STORM,
    Goal,
)
from bench.markdown import fmt, table
from bench.report_long import long_running_section
from bench.results import RunResults
from bench.scenarios import Metric

PACKAGES = (
    "django",
    "channels",
    "daphne",
    "uvicorn",
    "uvloop",
    "httptools",
    "websockets",
    "mcp",
    "starlette",
    "orjson",
)
DOCS_START = "<!-- bench-results:start -->"
DOCS_END = "<!-- bench-results:end -->"
SERVICE_VARIANTS = ("service", "service-daphne", "service-redis")


@dataclass(frozen=True)
class RunSettings:
    """How the run was done, for the report header."""

    command: str
    repeats: int
    server_cpu: int | None
    client_cpu: int | None
    database: str


def package_version(name: str) -> str:
    """The installed version of a distribution, or `absent`."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def code_version(root: Path) -> str:
    """The commit measured, and whether tracked files differed from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    if not commit:
        return "unknown"
    return f"{commit} with uncommitted changes" if dirty else commit


def machine_facts() -> list[tuple[str, str]]:
    """nproc, CPU, memory, kernel, Python and the versions of the packages that matter."""
    packages = ", ".join(f"{name} {package_version(name)}" for name in PACKAGES)
    return [
        ("code", code_version(Path(__file__).resolve().parent.parent)),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", _cpu_model()),
        ("memory", _memory_gib()),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("packages", packages),
    ]


def _metric_head(metric: Metric) -> str:
    return f"{metric.label} ({metric.unit})"


SUMMARY_METRICS = (
    "throughput.c1.calls_per_s",
    P50_C1,
    "throughput.c1.p99_us",
    CALLS_C50,
    "throughput.c50.p50_us",
    "throughput.c50.p99_us",
    CPU_PER_CALL_C50,
    "connect.p50_us",
    KIB_IDLE,
)


def summary_section(results: RunResults) -> list[str]:
    """Medians of the main metrics, one row per server."""
    metrics = [results.metric(key) for key in SUMMARY_METRICS if _known(results, key)]
    rows = [
        [f"**{server.key}**", *(fmt(results.median(server.key, m.key), m.unit) for m in metrics)]
        for server in results.servers
    ]
    return table(["server", *(_metric_head(m) for m in metrics)], rows)


def _known(results: RunResults, key: str) -> bool:
    return any(metric.key == key for metric in results.metrics)


def goals_section(results: RunResults) -> list[str]:
    """Each goal for each variant of the service that ran: measured value, target, verdict."""
    rows: list[list[str]] = []
    for server in SERVICE_VARIANTS:
        if not results.has(server):
            continue
        for goal in (*GOALS, *CPU_NORMALISED, *LONG_RUNNING, *STORM):
            if not goal.applies(results, server):
                continue
            value = goal.value(results, server)
            unit = goal.unit(results)
            rows.append(
                [
                    server,
                    goal.label,
                    fmt(value, unit),
                    goal.target_text(unit),
                    goal.verdict(results, server),
                    goal_detail(results, server, goal),
                ]
            )
    return table(["server", "goal", "measured", "target", "verdict", "medians"], rows, 2)


def goal_detail(results: RunResults, server: str, goal: Goal) -> str:
    """The medians a goal was computed from, e.g. `1,460 / 623 calls/s`."""
    unit = results.metric(goal.metric).unit
    mine = fmt(results.median(server, goal.metric), unit)
    if goal.reference is not None:
        return f"{mine} / {fmt(results.median(server, goal.reference), unit)} {unit}"
    if goal.baseline is None:
        return f"{mine} {unit}"
    theirs = fmt(results.median(goal.baseline, goal.metric), unit)
    return f"{mine} / {theirs} {unit}"


def server_comparison_section(
    results: RunResults,
    first: str = "service",
    second: str = "service-daphne",
    heads: tuple[str, str, str] = ("uvicorn (serve)", "daphne", "uvicorn / daphne"),
    title: str = "uvicorn or daphne for the same application",
) -> list[str]:
    """Two variants of the service side by side (uvicorn and daphne), when both ran."""
    if not (results.has(first) and results.has(second)):
        return []
    rows = []
    for key in (CALLS_C50, "throughput.c1.calls_per_s", P50_C1, "connect.p50_us", KIB_IDLE):
        if not _known(results, key):
            continue  # its scenario did not run
        metric = results.metric(key)
        mine = results.median(first, key)
        theirs = results.median(second, key)
        ratio = mine / theirs if theirs else math.nan
        rows.append(
            [
                _metric_head(metric),
                fmt(mine, metric.unit),
                fmt(theirs, metric.unit),
                fmt(ratio, "x"),
            ]
        )
    return [f"### {title}", "", *table(["metric", *heads], rows), ""]


def per_server_sections(results: RunResults) -> list[str]:
    """A table per server: every metric, each repetition, median and spread."""
    lines: list[str] = []
    reps = [f"rep {n}" for n in range(1, results.repeats + 1)]
    for server in results.servers:
        rows = []
        for metric in results.metrics:
            samples = results.samples(server.key, metric.key)
            if not samples:
                continue  # a scenario this server does not run
            cells = [fmt(value, metric.unit) for value in samples]
            cells += ["n/a"] * (results.repeats - len(cells))
            spread = results.spread(server.key, metric.key)
            rows.append(
                [
                    _metric_head(metric),
                    *cells,
                    f"**{fmt(results.median(server.key, metric.key), metric.unit)}**",
                    "n/a" if math.isnan(spread) else f"±{spread * 100:.0f} %",
                ]
            )
        lines += [f"#### {server.key}: {server.title}", "", f"{server.description}.", ""]
        lines += table(["metric", *reps, "median", "spread"], rows)
        lines.append("")
    return lines


def results_section(results: RunResults, settings: RunSettings, when: datetime) -> str:
    """The whole results section (what `--write-docs` puts into docs/BENCHMARKS.md)."""
    pinning = (
        f"servers on CPU {settings.server_cpu}, load generator on CPU {settings.client_cpu}"
        if settings.server_cpu is not None
        else "not pinned"
    )
    lines = [
        f"Run {when.strftime('%Y-%m-%d %H:%M UTC')} with `{settings.command}`; "
        f"medians of {settings.repeats} repetitions; {pinning}; "
        f"database of the service: {settings.database}.",
        "",
        *table(["fact", "value"], machine_facts(), 2),
        "",
        "### Goals",
        "",
        *goals_section(results),
        "",
        "### Medians",
        "",
        *summary_section(results),
        "",
        *server_comparison_section(results),
        *server_comparison_section(
            results,
            "service",
            "service-metrics-off",
            ("metrics on", "metrics off", "on / off"),
            "Prometheus metrics on (multiprocess) or off (issue 15: within 3 %)",
        ),
        *long_running_section(results),
        "### Each server, each repetition",
        "",
        *per_server_sections(results),
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_latest(path: Path, text: str) -> None:
    """Write the standalone report, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def replace_docs_section(path: Path, section: str) -> None:
    """Replace what lies between the results markers of a markdown file."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(DOCS_START) + r".*?" + re.escape(DOCS_END), re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(
            f"{path} has no results markers: add a line {DOCS_START} and a line {DOCS_END}"
        )
    replacement = f"{DOCS_START}\n{section.rstrip()}\n{DOCS_END}"
    path.write_text(pattern.sub(lambda _: replacement, text, count=1))


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
