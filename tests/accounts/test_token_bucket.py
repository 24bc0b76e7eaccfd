"""Token buckets: burst, refill, all-or-nothing across buckets, forgetting full ones."""

import pytest

from accounts.token_bucket import BucketsByKey, TokenBucket, take_from_all


def test_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, now=0.0)
    assert [take_from_all([bucket], 1, 0.0)[1] for _ in range(4)] == [-1, -1, -1, 0]
    wait, _ = take_from_all([bucket], 1, 0.0)
    assert wait == pytest.approx(0.5)
    assert take_from_all([bucket], 1, 0.5) == (0.0, -1)
    assert bucket.refill(100.0) == 3  # never above the burst


def test_nothing_is_taken_when_one_bucket_lacks() -> None:
    user, tenant = TokenBucket(1.0, 5, 0.0), TokenBucket(1.0, 1, 0.0)
    assert take_from_all([user, tenant], 1, 0.0) == (0.0, -1)
    wait, lacking = take_from_all([user, tenant], 1, 0.0)
    assert (wait, lacking) == (pytest.approx(1.0), 1)
    assert user.tokens == 4  # the refused message cost the user nothing


def test_a_cost_above_the_burst_takes_the_whole_burst() -> None:
    bucket = TokenBucket(1.0, 4, 0.0)
    assert take_from_all([bucket], 10, 0.0) == (0.0, -1)
    assert take_from_all([bucket], 10, 4.0) == (0.0, -1)


def test_full_idle_buckets_are_forgotten_but_not_those_in_use() -> None:
    buckets: BucketsByKey[int] = BucketsByKey(sweep_interval=0)
    for key in (1, 2, 3):
        buckets.get(key, 1.0, 2, 0.0).tokens = 0
    buckets.get(3, 1.0, 2, 0.0).tokens = 2
    buckets.sweep(1.0, keep=[2])  # 1 is half full, 2 in use, 3 full and idle
    assert (buckets.peek(1) is not None, buckets.peek(2) is not None, buckets.peek(3)) == (
        True,
        True,
        None,
    )


def test_new_limits_apply_without_a_refill() -> None:
    buckets: BucketsByKey[int] = BucketsByKey()
    bucket = buckets.get(1, 1.0, 10, 0.0)
    bucket.tokens = 3
    assert buckets.get(1, 5.0, 2, 0.0) is bucket
    assert (bucket.rate, bucket.capacity, bucket.tokens) == (5.0, 2, 2)
