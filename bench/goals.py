"""The targets of issue "service foundation", checked against the medians of one run."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.results import RunResults

CALLS_C50 = "throughput.c50.calls_per_s"
P50_C1 = "throughput.c1.p50_us"
KIB_IDLE = "idle.kib_per_conn"
CPU_PER_CALL_C50 = "throughput.c50.cpu_us_per_call"


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

    def value(self, results: RunResults, server: str) -> float:
        """The server's median, divided by the baseline's median for a ratio goal."""
        measured = results.median(server, self.metric)
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

    def target_text(self) -> str:
        """E.g. `>= 5x` or `<= 40 KiB`."""
        sign = ">=" if self.at_least else "<="
        if self.baseline is None:
            return f"{sign} {self.bound:g}"
        return f"{sign} {self.bound:g}x"


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
