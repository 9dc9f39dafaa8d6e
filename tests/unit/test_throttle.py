"""The per-target token bucket, driven by a fake clock (nothing sleeps for real)."""

from __future__ import annotations

import pytest

from personalize_ingest.throttle import TokenBucket, bucket_for


class FakeClock:
    """A monotonic clock that only moves when told to; ``sleep`` moves it."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_full_bucket_allows_a_burst_of_its_capacity() -> None:
    # GIVEN a bucket of 10 calls/s (capacity one second's worth)
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)

    # WHEN 10 calls are reserved at the same instant
    waits = [bucket.reserve(max_wait_s=0) for _ in range(10)]

    # THEN all go immediately, and the 11th does not fit without waiting
    assert waits == [0.0] * 10
    assert bucket.reserve(max_wait_s=0) is None


def test_waiting_callers_are_spaced_by_the_rate() -> None:
    # GIVEN an empty bucket of 10 calls/s
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.reserve(max_wait_s=0)

    # WHEN three callers reserve at the same instant
    waits = [bucket.reserve(max_wait_s=5) for _ in range(3)]

    # THEN each waits 0.1 s longer than the previous one
    assert waits == pytest.approx([0.1, 0.2, 0.3])


def test_tokens_refill_with_time_up_to_the_capacity() -> None:
    # GIVEN an empty bucket of 2 calls/s
    clock = FakeClock()
    bucket = TokenBucket(2, clock=clock, sleep=clock.sleep)
    assert [bucket.reserve(0), bucket.reserve(0)] == [0.0, 0.0]

    # WHEN 10 s pass (20 tokens' worth)
    clock.now += 10

    # THEN only the capacity (2) is available at once
    assert [bucket.reserve(0), bucket.reserve(0), bucket.reserve(0)] == [0.0, 0.0, None]


def test_acquire_sleeps_for_its_turn() -> None:
    # GIVEN an empty bucket of 4 calls/s
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        assert bucket.acquire(max_wait_s=0)

    # WHEN one more call is acquired with time to wait
    acquired = bucket.acquire(max_wait_s=1)

    # THEN it slept a quarter of a second for it
    assert acquired
    assert clock.slept == pytest.approx([0.25])


def test_acquire_gives_up_without_taking_when_the_wait_is_too_long() -> None:
    # GIVEN an empty bucket of 1 call/s
    clock = FakeClock()
    bucket = TokenBucket(1, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(max_wait_s=0)

    # WHEN a caller may wait only half a second
    acquired = bucket.acquire(max_wait_s=0.5)

    # THEN it gets nothing, did not sleep, and did not take the next token from whoever comes later
    assert not acquired
    assert clock.slept == []
    clock.now += 1
    assert bucket.reserve(max_wait_s=0) == 0.0


def test_a_slow_rate_still_allows_one_call_at_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock, sleep=clock.sleep)

    assert bucket.capacity == 1.0
    assert bucket.reserve(0) == 0.0
    assert bucket.reserve(10) == pytest.approx(2.0)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


def test_buckets_are_shared_per_target_and_rate() -> None:
    # GIVEN the container-wide registry
    target = "arn:aws:personalize:us-east-1:123456789012:dataset/test-throttle-registry/ITEMS"

    # WHEN the same target is asked for twice at the same rate, then at another rate
    first = bucket_for(target, 10)
    again = bucket_for(target, 10)
    changed = bucket_for(target, 5)

    # THEN the first two are the same bucket (shared by threads and warm invocations); a new rate replaces it
    assert first is not None and first is again
    assert changed is not None and changed is not first and changed.rate == 5


def test_rate_zero_means_unlimited() -> None:
    assert bucket_for("0c6a2e4f-0000-4000-8000-000000000000", 0) is None
