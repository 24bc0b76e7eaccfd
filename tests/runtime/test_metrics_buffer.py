"""The metrics' write buffer counts exactly what prometheus-client would have counted."""

from prometheus_client import CollectorRegistry, Counter, Histogram

from mcp_server.metrics import CounterBuffer

VALUES = (0.0, 0.0005, 0.001, 0.0011, 0.05, 0.25, 7.0, 299.9, 300.0, 1e6)
BUCKETS = (0.001, 0.01, 0.25, 1, 300)


def samples(registry: CollectorRegistry, name: str) -> list[tuple[str, dict[str, str], float]]:
    (family,) = [f for f in registry.collect() if f.name == name]
    return [
        (s.name.replace("direct", "x"), s.labels, s.value)
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def test_buffered_observations_equal_the_library_s_own() -> None:
    registry = CollectorRegistry()
    direct = Histogram("direct", "d", ("tool",), buckets=BUCKETS, registry=registry)
    buffered = Histogram("x", "b", ("tool",), buckets=BUCKETS, registry=registry)
    buffer = CounterBuffer(interval=3600)
    for value in VALUES:
        direct.labels("echo").observe(value)
        buffer.observe(buffered.labels("echo"), value)
    assert samples(registry, "x")[0][2] == 0  # nothing written before the flush
    buffer.flush()
    assert samples(registry, "x") == samples(registry, "direct")


def test_buffered_counts_reach_the_counter_at_the_flush() -> None:
    registry = CollectorRegistry()
    requests = Counter("requests", "r", ("method",), registry=registry)
    buffer = CounterBuffer(interval=3600)
    for _ in range(5):
        buffer.add(requests.labels("ping"))
    assert requests.labels("ping")._value.get() == 0
    buffer.flush()
    assert requests.labels("ping")._value.get() == 5
