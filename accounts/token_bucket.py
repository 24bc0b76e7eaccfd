"""Token buckets: a sustained rate with a burst, checked in a few arithmetic operations.

Pure and clock-free (callers pass `time.monotonic()`), so one reading of the clock serves
every bucket a message draws from. The libraries at hand either queue the caller (aiolimiter)
or keep a timestamp per event (pyrate-limiter: memory grows with the rate), neither of which
fits a check on every WebSocket message.
"""

from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


class TokenBucket:
    """`capacity` tokens at most, refilled at `rate` per second; a message costs one."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.stamp = now

    def configure(self, rate: float, capacity: float) -> None:
        """Apply new limits (an override changed) without refilling the bucket."""
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.tokens = min(self.tokens, self.capacity)

    def refill(self, now: float) -> float:
        """Bring the bucket up to `now`; the tokens it holds."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        return self.tokens

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` tokens are there (0: now); call `refill` first."""
        missing = min(cost, self.capacity) - self.tokens
        if missing <= 0:
            return 0.0
        return missing / self.rate if self.rate > 0 else float("inf")

    def is_full(self, now: float) -> bool:
        """Whether the bucket is as good as a new one (so forgetting it loses nothing)."""
        return self.refill(now) >= self.capacity


def take_from_all(buckets: Sequence[TokenBucket], cost: float, now: float) -> tuple[float, int]:
    """Take `cost` tokens from every bucket, or from none.

    Returns (0, -1) when taken, else (seconds to wait, index of the bucket that lacks most).
    A cost above a bucket's capacity takes the whole capacity, so a batch larger than the
    burst is not refused forever.
    """
    wait, lacking = 0.0, -1
    for index, bucket in enumerate(buckets):
        bucket.refill(now)
        needed = bucket.wait_for(cost)
        if needed > wait:
            wait, lacking = needed, index
    if lacking >= 0:
        return wait, lacking
    for bucket in buckets:
        bucket.tokens -= min(cost, bucket.capacity)
    return 0.0, -1


class BucketsByKey(Generic[Key]):
    """One bucket per key (a user, a tenant, an address); full, unused buckets are forgotten."""

    __slots__ = ("_buckets", "_next_sweep", "sweep_interval")

    def __init__(self, sweep_interval: float = 60.0) -> None:
        self._buckets: dict[Key, TokenBucket] = {}
        self.sweep_interval = sweep_interval
        self._next_sweep = 0.0

    def get(self, key: Key, rate: float, capacity: float, now: float) -> TokenBucket:
        """The bucket of `key`, created full or updated to the limits given."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, capacity, now)
        elif bucket.rate != rate or bucket.capacity != max(1.0, capacity):
            bucket.configure(rate, capacity)
        return bucket

    def peek(self, key: Key) -> TokenBucket | None:
        """The bucket of `key` if it has one."""
        return self._buckets.get(key)

    def sweep(self, now: float, keep: Iterable[Key] = ()) -> None:
        """Forget full buckets (at most once per interval); `keep` are in use."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_interval
        kept = set(keep)
        for key in [k for k, b in self._buckets.items() if k not in kept and b.is_full(now)]:
            del self._buckets[key]

    def clear(self) -> None:
        """Forget every bucket."""
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)
