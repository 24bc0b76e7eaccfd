"""Per-request metric counts and observations kept in plain dicts on the event loop and
written to prometheus-client in batches (`Tally`): the recording half of mcp_server/metrics.py."""

from bisect import bisect_left
from collections.abc import Callable
from datetime import timedelta
from typing import Any


class Tally:
    """Per-request counts and observations, kept in plain dicts on the event loop and written
    to prometheus-client together.

    A write of prometheus-client's multiprocess mode takes a lock and writes a file's memory
    map; per request, a count here is one dict update and an observation a bucket's count and
    a sum of `timedelta`s (exact), under a key of the caller's values (the metric, then its
    label values). `flush` turns each key into its labelled child once (`resolve`, cached)
    and writes each count and each bucket with one `inc`: at each heartbeat round
    (`sample_runtime`), before a scrape and at exit. Its size is that of the label sets
    (bounded), not of the traffic. Only the event loop's thread records here.
    """

    def __init__(self, resolve: Callable[[tuple[Any, ...]], Any]) -> None:
        self._resolve = resolve
        self._counts: dict[tuple[Any, ...], float] = {}
        self._observed: dict[tuple[Any, ...], _Observed] = {}
        self._children: dict[tuple[Any, ...], Any] = {}

    def count(self, key: tuple[Any, ...], amount: float = 1) -> None:
        """Add `amount` to the counter (or gauge) series `key`."""
        counts = self._counts
        counts[key] = counts.get(key, 0) + amount

    def observe(self, key: tuple[Any, ...], elapsed: timedelta) -> None:
        """Observe `elapsed` (as seconds, 0 when negative) on the histogram series `key`."""
        observed = self._observed.get(key)
        if observed is None:
            observed = self._observed[key] = _Observed(key[0])
        if elapsed < _ZERO:
            elapsed = _ZERO
        observed.buckets[bisect_left(observed.bounds, elapsed)] += 1
        observed.total += elapsed

    def flush(self) -> None:
        """Write everything recorded since the last flush (from the thread that records)."""
        counts, self._counts = self._counts, {}
        for key, amount in counts.items():
            self._child(key).inc(amount)
        for key, observed in self._observed.items():
            if observed.total or any(observed.buckets):
                observed.write(self._child(key))

    def _child(self, key: tuple[Any, ...]) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._resolve(key)
        return child


_ZERO = timedelta(0)


class _Observed:
    """A histogram series' observations since the last flush: per bucket, and their sum."""

    __slots__ = ("bounds", "buckets", "total")

    def __init__(self, histogram: Any) -> None:
        # The bounds but +Inf as timedeltas: a value's bucket is the first bound it is at
        # most (bisect_left), as prometheus-client's observe picks it; past them, +Inf.
        self.bounds = tuple(timedelta(seconds=bound) for bound in histogram._upper_bounds[:-1])
        self.buckets = [0] * (len(self.bounds) + 1)
        self.total = _ZERO

    def write(self, child: Any) -> None:
        """Add these observations to `child` (its buckets and sum) and start again from none."""
        for bucket, count in zip(child._buckets, self.buckets, strict=True):
            if count:
                bucket.inc(count)
        child._sum.inc(self.total.total_seconds())
        self.buckets = [0] * len(self.buckets)
        self.total = _ZERO
