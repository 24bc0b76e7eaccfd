"""The numbers of one run: per server, per metric, one value per repetition."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from bench.scenarios import Metric
from bench.stats import median, spread


@dataclass(frozen=True)
class ServerInfo:
    """What the report says about a server under test."""

    key: str
    title: str
    description: str


@dataclass
class RunResults:
    """Every value measured in one run, with the order in which to show things."""

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

    def samples(self, server: str, metric: str) -> list[float]:
        """The per-repetition values (empty when not measured)."""
        return list(self.values.get(server, {}).get(metric, []))

    def median(self, server: str, metric: str) -> float:
        """The median over repetitions (NaN when not measured)."""
        return median(self.samples(server, metric))

    def spread(self, server: str, metric: str) -> float:
        """The largest relative distance from the median over repetitions."""
        return spread(self.samples(server, metric))

    def has(self, server: str) -> bool:
        """Whether the run measured this server."""
        return any(server == info.key for info in self.servers)

    def metric(self, key: str) -> Metric:
        """The metric with this key."""
        for metric in self.metrics:
            if metric.key == key:
                return metric
        raise KeyError(key)
