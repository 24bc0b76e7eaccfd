"""The metrics' tally writes exactly what prometheus-client would have, at its flush only."""

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mcp_server.metrics_tally import Tally

SECONDS = (0.0, 0.0005, 0.001, 0.0011, 0.05, 0.25, 7.0, 299.9, 300.0, 1e6)
BUCKETS = (0.001, 0.01, 0.25, 1, 300)


def labelled(key: tuple[Any, ...]) -> Any:
    metric, *values = key
    return metric.labels(*values) if values else metric


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    (family,) = [f for f in registry.collect() if f.name == name]
    return {
        (s.name.replace(name, ""), s.labels.get("le", "")): s.value
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_observations_equal_the_library_s_own_once_flushed() -> None:
    registry = CollectorRegistry()
    direct = Histogram("direct", "d", ("tool",), buckets=BUCKETS, registry=registry)
    tallied = Histogram("tallied", "t", ("tool",), buckets=BUCKETS, registry=registry)
    tally = Tally(labelled)
    for value in SECONDS:
        direct.labels("echo").observe(value)
        tally.observe((tallied, "echo"), timedelta(seconds=value))
    # A clock that went back: observed as no time at all.
    direct.labels("echo").observe(0.0)
    tally.observe((tallied, "echo"), timedelta(seconds=-2))
    assert not samples(registry, "tallied")  # nothing written (not even a series) before it
    tally.flush()
    expected, got = samples(registry, "direct"), samples(registry, "tallied")
    # Buckets and counts exactly; the sum of exact timedeltas up to the float's rounding.
    assert got.pop(("_sum", "")) == pytest.approx(expected.pop(("_sum", "")))
    assert got == expected
    tally.flush()  # nothing new: nothing added
    assert samples(registry, "tallied")[("_count", "")] == len(SECONDS) + 1


def test_counts_reach_counters_and_gauges_at_the_flush() -> None:
    registry = CollectorRegistry()
    requests = Counter("requests", "r", ("method",), registry=registry)
    open_now = Gauge("open", "o", ("transport",), registry=registry)
    tally = Tally(labelled)
    for _ in range(5):
        tally.count((requests, "ping"))
    tally.count((requests, "ping"), 2)
    for change in (1, 1, -1):
        tally.count((open_now, "websocket"), change)
    assert requests.labels("ping")._value.get() == 0
    tally.flush()
    assert requests.labels("ping")._value.get() == 7
    assert open_now.labels("websocket")._value.get() == 1
    tally.flush()
    assert requests.labels("ping")._value.get() == 7
