"""What a run measured and how docs/BENCHMARKS.md shows it, all derived from the metrics the
scenarios declare (`Metric`, with its goals and report section)."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.measure import median, spread

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = "django channels daphne uvicorn uvloop httptools websockets mcp starlette orjson"
INTEGER_UNITS = ("calls/s", "µs", "images/s", "items")
SERVICE_VARIANTS = ("service", "service-daphne", "service-redis")
# Variants of the service compared side by side when both ran: the two keys, the column heads.
DAPHNE = ("uvicorn (serve)", "daphne", "uvicorn / daphne")
DAPHNE = ("uvicorn (serve)", "daphne", "uvicorn / daphne")
METRICS_ON_OFF = "Prometheus metrics on (multiprocess) or off (issue 15: within 3 %)"
COMPARISONS = (
    ("service", "service-daphne", DAPHNE, "uvicorn or daphne for the same application"),
    ("service", "service-metrics-off", ("metrics on", "metrics off", "on / off"), METRICS_ON_OFF),
)
# Report sections a metric may belong to (besides each server's table, where all are); HTTP:
# Streamable HTTP against FastMCP and django-mcpz; MODERN: the 2026-07-28 revision's calls.
SUMMARY, LONG_RUNNING, CALLS, PROGRESS, SCALE, FAILOVER = (
    "summary",
    "long-running",
    "calls",
    "progress",
    "scale",
    "failover",
)
HTTP, MODERN = "http", "modern"


@dataclass(frozen=True)
class Goal:
    """A bound on a metric of a server: absolute, as a ratio to a `baseline` server's (inverted:
    baseline / server, for costs), or as the overhead in % over a `reference` metric of its own;
    `informative` ones are shown for insight, not one of the issues' targets."""

    label: str
    bound: float
    at_least: bool
    baseline: str | None = None
    inverted: bool = False
    informative: bool = False
    reference: str | None = None

    def value(self, results: RunResults, server: str, key: str) -> float:
        """The server's median, as a ratio to the baseline's or as overhead over a reference."""
        measured = results.median(server, key)
        if self.reference is not None:
            base = results.median(server, self.reference)
            return (measured / base - 1) * 100 if base and not math.isnan(base) else math.nan
        if self.baseline is None:
            return measured
        theirs = results.median(self.baseline, key)
        numerator, denominator = (theirs, measured) if self.inverted else (measured, theirs)
        return numerator / denominator if denominator and not math.isnan(denominator) else math.nan

    def verdict(self, results: RunResults, server: str, key: str) -> str:
        """`met`, `**missed**` or `not measured`; marked informative, or inconclusive when the
        repetitions of an overhead spread wider than its bound."""
        value = self.value(results, server, key)
        text = {True: "met", False: "**missed**", None: "not measured"}[
            None if math.isnan(value) else self.holds(value)
        ]
        if self.reference is not None:
            spreads = [results.spread(server, k) for k in (key, self.reference)]
            noise = max(spreads) * 100 if not any(math.isnan(x) for x in spreads) else math.nan
            if noise > self.bound:
                text += f" (inconclusive: runs ±{noise:.0f} %)"
        return f"({text.replace('*', '')}; informative)" if self.informative else text

    def holds(self, value: float) -> bool:
        """Whether a value is within the bound (NaN never is)."""
        return value >= self.bound if self.at_least else value <= self.bound

    def applies(self, results: RunResults, server: str, key: str) -> bool:
        """Whether the run measured what the goal needs for this server."""
        needed = [(server, key)]
        needed += [(server, self.reference)] if self.reference else []
        needed += [(self.baseline, key)] if self.baseline else []
        return all(results.samples(who, k) for who, k in needed)

    def target_text(self, unit: str) -> str:
        """E.g. `>= 5x` or `<= 40 KiB`."""
        sign = ">=" if self.at_least else "<="
        if self.baseline is not None:
            return f"{sign} {self.bound:g}x"
        return f"{sign} {self.bound:,g} {'%' if self.reference else unit}".rstrip()


@dataclass(frozen=True)
class Metric:
    """One number a scenario reports: a key unique in the run, how to show it, its goals."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = False
    goals: tuple[Goal, ...] = ()
    section: str = ""

    @property
    def head(self) -> str:
        """The label with the unit, as a table shows it."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


Row = tuple[Any, ...]  # (name, label, unit[, higher is better])
Goals = Mapping[str, tuple[Goal, ...]]


def declare(
    prefix: str, rows: Iterable[Row], section: str = "", goals: Goals | None = None
) -> list[Metric]:
    """Metrics `PREFIX.NAME` (NAME for no prefix) from rows (NAME, label, unit[, higher is
    better]) and their goals."""
    goals = goals or {}
    return [
        Metric(
            f"{prefix}.{n}".lstrip("."), label, unit, bool(x and x[0]), goals.get(n, ()), section
        )
        for n, label, unit, *x in rows
    ]


@dataclass(frozen=True)
class ServerInfo:
    """What the report says about a server under test."""

    key: str
    title: str
    description: str


@dataclass
class RunResults:
    """Every value measured in one run: per server, per metric, one per repetition."""

    servers: list[ServerInfo]
    metrics: list[Metric]
    repeats: int
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def add(self, server: str, measured: dict[str, float]) -> None:
        """Record one repetition's values of some metrics for a server."""
        for key, value in measured.items():
            self.values[server][key].append(value)

    def samples(self, server: str, key: str) -> list[float]:
        """The per-repetition values (empty when not measured)."""
        return list(self.values.get(server, {}).get(key, []))

    def median(self, server: str, key: str) -> float:
        """The median over repetitions (NaN when not measured)."""
        return median(self.samples(server, key))

    def spread(self, server: str, key: str) -> float:
        """The largest relative distance from the median over repetitions."""
        return spread(self.samples(server, key))

    def has(self, server: str) -> bool:
        """Whether the run measured this server."""
        return any(server == info.key for info in self.servers)

    def measured(self, section: str, servers: Sequence[str]) -> list[Metric]:
        """The metrics of a report section (all for "") that one of `servers` measured."""
        chosen = [m for m in self.metrics if m.section == section] if section else self.metrics
        return [m for m in chosen if any(self.samples(s, m.key) for s in servers)]

    def cell(self, server: str, metric: Metric) -> str:
        """The median of a metric, formatted."""
        return fmt(self.median(server, metric.key), metric.unit)

    def spread_cell(self, server: str, metric: Metric) -> str:
        """The spread of a metric, e.g. `±3 %`."""
        value = self.spread(server, metric.key)
        return "n/a" if math.isnan(value) else f"±{value * 100:.0f} %"

    def rep_cells(self, server: str, metric: Metric) -> list[str]:
        """Each repetition's value, formatted (`n/a` for the missing ones)."""
        cells = [fmt(value, metric.unit) for value in self.samples(server, metric.key)]
        return cells + ["n/a"] * (self.repeats - len(cells))


def fmt(value: float, unit: str) -> str:
    """A number as the tables show it: integers for rates and µs, decimals for small values."""
    if math.isnan(value):
        return "n/a"
    if unit in INTEGER_UNITS:
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int = 1) -> list[str]:
    """A markdown table: the first `text_columns` left-aligned, the numbers right-aligned."""
    aligns = [":---" if i < text_columns else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _first_line(path: str, prefix: str) -> str | None:
    try:
        found = (line for line in Path(path).read_text().splitlines() if line.startswith(prefix))
        return next((line.split(":", 1)[1].strip() for line in found), None)
    except OSError:
        return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def _version(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} absent"


def machine_facts() -> list[tuple[str, str]]:
    """The commit, nproc, CPU, memory, kernel, Python and the versions that matter."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if commit != "unknown" and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    memory = _first_line("/proc/meminfo", "MemTotal:")
    return [
        ("code", commit),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown"),
        ("memory", f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "unknown"),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("packages", ", ".join(map(_version, PACKAGES.split()))),
    ]


def run_line(when: datetime, command: str, details: str) -> str:
    """The first line of a results section: when, how, and what was pinned."""
    return f"Run {when.strftime('%Y-%m-%d %H:%M UTC')} with `{command}`{details}."


def pinning_text(server_cpu: int | None, client_cpu: int | None) -> str:
    """`servers on CPU 0, load generator on CPU 1`, or `not pinned`."""
    if server_cpu is None:
        return "not pinned"
    return f"servers on CPU {server_cpu}, load generator on CPU {client_cpu}"


def goals_section(results: RunResults) -> list[str]:
    """Each goal for each variant of the service that ran: measured value, target, verdict."""
    rows: list[list[str]] = []
    for server in (s for s in SERVICE_VARIANTS if results.has(s)):
        for m in results.metrics:
            for goal in (g for g in m.goals if g.applies(results, server, m.key)):
                unit = "%" if goal.reference else "x" if goal.baseline else m.unit
                medians = mine = results.cell(server, m)
                other = goal.reference or (goal.baseline and m.key)
                who = server if goal.reference else goal.baseline
                if other and who:
                    medians = f"{mine} / {fmt(results.median(who, other), m.unit)}"
                value = fmt(goal.value(results, server, m.key), unit)
                verdict = goal.verdict(results, server, m.key)
                medians = f"{medians} {m.unit}".rstrip()
                rows.append([server, goal.label, value, goal.target_text(unit), verdict, medians])
    return table(["server", "goal", "measured", "target", "verdict", "medians"], rows, 2)


def summary_section(results: RunResults) -> list[str]:
    """Medians of the main metrics, one row per server; variants of the service side by side
    (uvicorn and daphne, metrics on and off) when both ran."""
    servers = [server.key for server in results.servers]
    lines: list[str] = []
    metrics: list[Metric] = []
    for section, title in (
        (SUMMARY, "Medians"),
        (HTTP, "Medians over Streamable HTTP"),
        (MODERN, "Medians in the 2026-07-28 revision"),
    ):
        if measured := results.measured(section, servers):
            metrics += measured
            who = [s for s in servers if any(results.samples(s, m.key) for m in measured)]
            rows = [[f"**{s}**", *(results.cell(s, m) for m in measured)] for s in who]
            lines += [f"### {title}", "", *table(["server", *(m.head for m in measured)], rows), ""]
    for first, second, heads, title in COMPARISONS:
        if results.has(first) and results.has(second):
            compared = []
            for m in metrics:
                mine, theirs = results.median(first, m.key), results.median(second, m.key)
                ratio = fmt(mine / theirs if theirs else math.nan, "x")
                compared.append([m.head, fmt(mine, m.unit), fmt(theirs, m.unit), ratio])
            lines += [f"### {title}", "", *table(["metric", *heads], compared), ""]
    return lines


def long_running_section(results: RunResults) -> list[str]:
    """process_images with progress on and off, pings meanwhile, the cost of history."""
    rows = []
    for m in results.measured(LONG_RUNNING, ["service"]):
        goals = [g for g in m.goals if g.applies(results, "service", m.key)]
        rows.append([m.head, results.cell("service", m), results.spread_cell("service", m)])
        rows[-1] += ["; ".join(g.target_text(m.unit) for g in goals)]
        rows[-1] += ["; ".join(g.verdict(results, "service", m.key) for g in goals)]
    if not rows:
        return []
    note = "This service (`manage.py serve`) only; medians over the repetitions."
    header = ["measurement", "median", "spread", "target", "verdict"]
    return ["### Long-running operations", "", note, "", *table(header, rows), ""]


def per_server_sections(results: RunResults, level: str = "####") -> list[str]:
    """A table per server: every metric, each repetition, median and spread."""
    lines: list[str] = []
    header = ["metric", *(f"rep {n}" for n in range(1, results.repeats + 1)), "median", "spread"]
    for s in results.servers:
        rows = [
            [m.head, *results.rep_cells(s.key, m), f"**{results.cell(s.key, m)}**", spread]
            for m in results.measured("", [s.key])
            if (spread := results.spread_cell(s.key, m))
        ]
        lines += [
            f"{level} {s.key}: {s.title}",
            "",
            f"{s.description}.",
            "",
            *table(header, rows),
            "",
        ]
    return lines


def results_section(results: RunResults, first_line: str) -> str:
    """The results section of `bench/run.py` (what `--write-docs` puts into the docs)."""
    lines = [first_line, "", *table(["fact", "value"], machine_facts(), 2), "", "### Goals", ""]
    lines += [*goals_section(results), "", *summary_section(results)]
    lines += [*long_running_section(results), "### Each server, each repetition", ""]
    return "\n".join(lines + per_server_sections(results)).rstrip() + "\n"


def write_latest(path: Path, text: str) -> None:
    """Write a standalone report, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def replace_between(path: Path, marker: str, section: str) -> None:
    """Replace what lies between `<!-- MARKER:start -->` and `<!-- MARKER:end -->` of a file."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(f"{path} has no lines {start} and {end}")
    path.write_text(pattern.sub(lambda _: f"{start}\n{section.rstrip()}\n{end}", text, count=1))


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
