"""The targets of issues "service foundation" and "long-running operations", checked against
the medians of one run."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.results import RunResults

CALLS_C50 = "throughput.c50.calls_per_s"
P50_C1 = "throughput.c1.p50_us"
KIB_IDLE = "idle.kib_per_conn"
CPU_PER_CALL_C50 = "throughput.c50.cpu_us_per_call"
IMAGES_ON_S = "images.on.wall_s"
IMAGES_OFF_S = "images.off.wall_s"
IMAGES_ON_CPU = "images.on.cpu_us"
IMAGES_OFF_CPU = "images.off.cpu_us"
PROGRESS_PER_S = "images.progress_per_s"
PING_P99 = "images-ping.p99_us"
HISTORY_SHARE = "history.share_pct"
STORM_OPEN_S = "storm.open_s"
STORM_RATE = "storm.conn_per_s"
STORM_GROWTH = "storm.growth_x"
STORM_KIB = "storm.kib_per_conn"
STORM_PROBE_P99 = "storm.probe_p99_ms"
STORM_RSS_CLOSED = "storm.rss_closed_pct"
STORM_CPU = "storm.cpu_ms_per_conn"


@dataclass(frozen=True)
class Goal:
    """A bound on a metric of a server, absolute or as a ratio to another server's."""

    metric: str
    label: str
    bound: float
    at_least: bool
    baseline: str | None = None
    # The ratio is baseline / server (for costs, where less is better: "N times cheaper").
    inverted: bool = False
    # Shown for insight, not one of the targets.
    informative: bool = False
    # Another metric of the same server: the goal is the overhead (metric / reference - 1) in %.
    reference: str | None = None

    def value(self, results: RunResults, server: str) -> float:
        """The server's median, as a ratio to the baseline's or as overhead over a reference."""
        measured = results.median(server, self.metric)
        if self.reference is not None:
            base = results.median(server, self.reference)
            return (measured / base - 1) * 100 if base and not math.isnan(base) else math.nan
        if self.baseline is None:
            return measured
        reference = results.median(self.baseline, self.metric)
        numerator, denominator = (reference, measured) if self.inverted else (measured, reference)
        if not denominator or math.isnan(denominator):
            return math.nan
        return numerator / denominator

    def met(self, value: float) -> bool | None:
        """Whether a value meets the bound; None when it could not be measured."""
        if math.isnan(value):
            return None
        return value >= self.bound if self.at_least else value <= self.bound

    def noise_pct(self, results: RunResults, server: str) -> float:
        """For an overhead goal: the larger spread (in %) of the two metrics' repetitions."""
        if self.reference is None:
            return math.nan
        spreads = [results.spread(server, key) for key in (self.metric, self.reference)]
        return max(spreads) * 100 if not any(math.isnan(x) for x in spreads) else math.nan

    def verdict(self, results: RunResults, server: str) -> str:
        """`met`, `**missed**` or `not measured`; marked informative, or inconclusive when the
        repetitions of an overhead spread wider than its bound."""
        text = {True: "met", False: "**missed**", None: "not measured"}[
            self.met(self.value(results, server))
        ]
        noise = self.noise_pct(results, server)
        if noise > self.bound:
            text += f" (inconclusive: runs ±{noise:.0f} %)"
        return f"({text.replace('*', '')}; informative)" if self.informative else text

    def applies(self, results: RunResults, server: str) -> bool:
        """Whether this run measured what the goal needs for this server."""
        needed = [(server, self.metric)]
        if self.reference is not None:
            needed.append((server, self.reference))
        if self.baseline is not None:
            needed.append((self.baseline, self.metric))
        return all(results.samples(who, key) for who, key in needed)

    def unit(self, results: RunResults) -> str:
        """`x` for a ratio, `%` for an overhead, else the metric's unit."""
        if self.reference is not None:
            return "%"
        return "x" if self.baseline else results.metric(self.metric).unit

    def target_text(self, unit: str = "") -> str:
        """E.g. `>= 5x` or `<= 40 KiB`."""
        sign = ">=" if self.at_least else "<="
        if self.baseline is not None:
            return f"{sign} {self.bound:g}x"
        return f"{sign} {self.bound:,g} {unit}".rstrip()


GOALS = (
    Goal(CALLS_C50, "calls/s at C=50, vs the SDK", 5.0, at_least=True, baseline="sdk"),
    Goal(CALLS_C50, "calls/s at C=50, vs raw websockets", 0.15, at_least=True, baseline="raw"),
    Goal(P50_C1, "p50 latency at C=1, vs raw websockets", 3.0, at_least=False, baseline="raw"),
    Goal(KIB_IDLE, "KiB per idle connection", 40.0, at_least=False),
)

# The throughput goals again, per unit of server CPU (calls per CPU-second): on a shared
# machine other processes take CPU time from the servers unevenly; this ratio does not care.
CPU_NORMALISED = (
    Goal(
        CPU_PER_CALL_C50,
        "calls per server CPU-second at C=50, vs the SDK",
        5.0,
        at_least=True,
        baseline="sdk",
        inverted=True,
        informative=True,
    ),
    Goal(
        CPU_PER_CALL_C50,
        "calls per server CPU-second at C=50, vs raw websockets",
        0.15,
        at_least=True,
        baseline="raw",
        inverted=True,
        informative=True,
    ),
)

# Issue "long-running operations": this service only (`manage.py serve`).
LONG_RUNNING = (
    Goal(
        IMAGES_ON_S,
        "process_images time, progress on every item vs off",
        3.0,
        at_least=False,
        reference=IMAGES_OFF_S,
    ),
    Goal(PING_P99, "ping p99 on a second connection during process_images", 50_000, False),
    Goal(PROGRESS_PER_S, "progress notifications/s (first and final not counted)", 10.0, False),
    Goal(HISTORY_SHARE, "history recording, share of server CPU at C=50", 15.0, False),
    Goal(
        IMAGES_ON_CPU,
        "process_images server CPU, progress on vs off",
        3.0,
        at_least=False,
        reference=IMAGES_OFF_CPU,
        informative=True,
    ),
)

# Issue 17 "connection storms" (bench/storm.py), on each channel layer: the targets are set for
# a storm of 10,000 (`--storm-connections`, the default).
STORM = (
    Goal(STORM_OPEN_S, "storm: time to open and initialize them all", 10.0, at_least=False),
    Goal(STORM_RATE, "storm: connections/s, vs raw websockets", 0.6, True, baseline="raw"),
    Goal(STORM_GROWTH, "storm: time for all / time for the first half", 2.5, at_least=False),
    Goal(STORM_KIB, "storm: KiB per idle initialized connection", 28.0, at_least=False),
    Goal(STORM_PROBE_P99, "storm: ping p99 of a client connected before", 50.0, False),
    Goal(STORM_RSS_CLOSED, "storm: RSS after all closed, above before", 10.0, False),
    Goal(
        STORM_CPU,
        "storm: connections per server CPU-second, vs raw websockets",
        0.6,
        at_least=True,
        baseline="raw",
        inverted=True,
        informative=True,
    ),
)
