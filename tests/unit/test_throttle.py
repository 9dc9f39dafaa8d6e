"""The per-target token bucket, driven by a fake clock (nothing sleeps for real)."""

from __future__ import annotations

import itertools

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
    # GIVEN a bucket of 10 calls/s given a capacity of one second's worth
    clock = FakeClock()
    bucket = TokenBucket(10, capacity=10, clock=clock, sleep=clock.sleep)

    # WHEN 10 calls are reserved at the same instant
    waits = [bucket.reserve(max_wait_s=0) for _ in range(10)]

    # THEN all go immediately, and the 11th does not fit without waiting
    assert waits == [0.0] * 10
    assert bucket.reserve(max_wait_s=0) is None


def test_waiting_callers_are_spaced_by_the_rate() -> None:
    # GIVEN an empty bucket of 10 calls/s
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    bucket.reserve(max_wait_s=0)

    # WHEN three callers reserve at the same instant
    waits = [bucket.reserve(max_wait_s=5) for _ in range(3)]

    # THEN each waits 0.1 s longer than the previous one
    assert waits == pytest.approx([0.1, 0.2, 0.3])


def test_tokens_refill_with_time_up_to_the_capacity() -> None:
    # GIVEN an empty bucket of 2 calls/s holding up to 2
    clock = FakeClock()
    bucket = TokenBucket(2, capacity=2, clock=clock, sleep=clock.sleep)
    assert [bucket.reserve(0), bucket.reserve(0)] == [0.0, 0.0]

    # WHEN 10 s pass (20 tokens' worth)
    clock.now += 10

    # THEN only the capacity (2) is available at once
    assert [bucket.reserve(0), bucket.reserve(0), bucket.reserve(0)] == [0.0, 0.0, None]


def test_acquire_sleeps_for_its_turn() -> None:
    # GIVEN an empty bucket of 4 calls/s
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
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


def test_by_default_calls_are_paced_without_a_burst() -> None:
    # GIVEN a new (full) bucket of 10 calls/s with the default capacity, as bucket_for() makes them
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)

    # WHEN 30 calls acquire one after another as fast as they can
    sent: list[float] = []
    for _ in range(30):
        assert bucket.acquire(max_wait_s=10)
        sent.append(clock.now)

    # THEN the first goes at once and every later one 1/rate after the previous: no second holds more than 10
    assert sent[0] == 1_000.0
    assert [b - a for a, b in itertools.pairwise(sent)] == pytest.approx([0.1] * 29)
    assert max(sum(1 for t in sent if start <= t < start + 1) for start in sent) == 10


@pytest.mark.parametrize("client_capacity, throttled", [(1, 0), (10, 1)])
def test_a_paced_client_is_never_throttled_by_a_service_bucket_of_the_same_rate(
    client_capacity: float, throttled: int
) -> None:
    # GIVEN a client bucket at the quota's rate, and the service's quota as a bucket of one second's worth that
    # is created when the first call arrives (as Personalize's emulator models it)
    clock = FakeClock()
    client = TokenBucket(10, capacity=client_capacity, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    for _ in range(40):
        assert client.acquire(max_wait_s=10)
        sent.append(clock.now)

    # WHEN the first call reaches the service 30 ms after it was sent and the others 5 ms after (jitter)
    arrivals = [t + (0.030 if i == 0 else 0.005) for i, t in enumerate(sent)]
    service_clock = FakeClock()
    service_clock.now = arrivals[0]
    service = TokenBucket(10, capacity=10, clock=service_clock, sleep=service_clock.sleep)
    refused = 0
    for arrival in arrivals:
        service_clock.now = arrival
        if service.reserve(max_wait_s=0) is None:
            refused += 1

    # THEN paced calls (capacity 1) all pass; a client burst equal to the quota gets one call throttled
    assert refused == throttled


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


def test_a_throttled_call_slows_the_bucket_and_accepted_calls_restore_it() -> None:
    # GIVEN a bucket of 10 calls/s
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)

    # WHEN the service throttles twice, then accepts calls
    bucket.on_throttled()
    bucket.on_throttled()
    slowed = bucket.rate
    for _ in range(5):
        bucket.on_accepted()
    recovering = bucket.rate
    for _ in range(100):
        bucket.on_accepted()

    # THEN the rate dropped multiplicatively, comes back additively, and never exceeds the configured rate
    assert slowed == pytest.approx(10 * 0.7 * 0.7)
    assert slowed < recovering < 10
    assert bucket.rate == 10


def test_the_rate_never_drops_below_a_tenth_of_the_configured_rate() -> None:
    bucket = TokenBucket(10)
    for _ in range(50):
        bucket.on_throttled()
    assert bucket.rate == pytest.approx(1.0)


def test_a_slowed_bucket_spaces_calls_at_its_new_rate() -> None:
    # GIVEN a bucket of 10 calls/s slowed once by a throttled call, its token just used
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    bucket.reserve(max_wait_s=0)
    bucket.on_throttled()

    # WHEN the next call reserves / THEN it waits 1/7 s instead of 1/10 s
    assert bucket.reserve(max_wait_s=5) == pytest.approx(1 / 7)
