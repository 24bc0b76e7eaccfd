"""Small statistics helpers: percentiles of samples and medians of repetitions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of unsorted samples; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def median(values: Sequence[float]) -> float:
    """The median of the finite values; NaN when there are none."""
    finite = [value for value in values if math.isfinite(value)]
    return float(statistics.median(finite)) if finite else math.nan


def spread(values: Sequence[float]) -> float:
    """The largest relative distance of a value from the median (0.1 means ±10 %)."""
    middle = median(values)
    finite = [value for value in values if math.isfinite(value)]
    if not finite or not middle:
        return math.nan
    return max(abs(value - middle) for value in finite) / abs(middle)
