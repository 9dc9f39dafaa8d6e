"""The invocation deadline: time left, the margin, and the budget before it."""

from __future__ import annotations

import pytest

from personalize_ingest.deadline import Deadline
from personalize_ingest.latency import ServiceLatency
from tests.support.factories import FakeLambdaContext


def test_plenty_of_time_left_is_not_exhausted() -> None:
    # GIVEN 60 s left and a 5 s margin
    deadline = Deadline(FakeLambdaContext(60_000), margin_ms=5_000)

    # WHEN / THEN
    assert deadline.remaining_ms() == 60_000
    assert not deadline.exhausted()
    assert deadline.budget_s() == pytest.approx(55.0)


def test_exhausted_once_less_than_the_margin_is_left() -> None:
    # GIVEN a 5 s margin
    context = FakeLambdaContext(5_000)
    deadline = Deadline(context, margin_ms=5_000)

    # WHEN exactly the margin is left THEN it is not exhausted yet, but there is no budget either
    assert not deadline.exhausted()
    assert deadline.budget_s() == 0.0

    # WHEN less than the margin is left THEN it is exhausted and the budget does not go negative
    context.remaining_ms = 4_999
    assert deadline.exhausted()
    assert deadline.budget_s() == 0.0


def test_follows_the_context_as_time_passes() -> None:
    # GIVEN a deadline over a context with 10 s left
    context = FakeLambdaContext(10_000)
    deadline = Deadline(context, margin_ms=2_000)

    # WHEN 6.5 s pass
    context.remaining_ms = 3_500

    # THEN the budget shrinks accordingly
    assert deadline.budget_s() == pytest.approx(1.5)
    assert not deadline.exhausted()


def test_zero_margin_uses_all_the_time() -> None:
    deadline = Deadline(FakeLambdaContext(1_200), margin_ms=0)

    assert deadline.budget_s() == pytest.approx(1.2)
    assert not deadline.exhausted()


def test_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin_ms"):
        Deadline(FakeLambdaContext(1_000), margin_ms=-1)


@pytest.mark.parametrize(
    ("remaining_ms", "margin_ms", "max_attempts", "expected"),
    [
        # plenty of time: one attempt may use the whole margin, so it always ends before Lambda's deadline
        (900_000, 5_000, 4, (1.25, 3.75)),
        # a long margin is capped at 10 s per attempt, never botocore's 60 s defaults
        (900_000, 60_000, 4, (2.0, 8.0)),
        # little time left: an attempt still gets the margin, not a share of the budget a slow service misses
        (13_000, 5_000, 4, (1.25, 3.75)),
        (5_000, 5_000, 4, (1.25, 3.75)),
        # rounded down to half seconds: a 2.3 s margin -> 2 s
        (12_800, 2_300, 3, (0.5, 1.5)),
        # never below 1 s per attempt
        (900_000, 400, 4, (0.25, 0.75)),
        # no margin: the budget is shared among the attempts (40 s / 4), floored at 1 s
        (40_000, 0, 4, (2.0, 8.0)),
        (3_000, 0, 4, (0.25, 0.75)),
    ],
)
def test_attempt_timeouts_follow_the_time_left(
    remaining_ms: int, margin_ms: int, max_attempts: int, expected: tuple[float, float]
) -> None:
    # GIVEN a deadline
    deadline = Deadline(FakeLambdaContext(remaining_ms), margin_ms=margin_ms)

    # WHEN / THEN
    assert deadline.attempt_timeouts(max_attempts) == pytest.approx(expected)


def test_a_call_starts_only_with_the_time_the_service_has_needed() -> None:
    # GIVEN a container that saw the service answer in 0.8 s at worst, and a 1 s margin
    latency = ServiceLatency()
    for seconds in (0.2, 0.8, 0.5):
        latency.observe(seconds, succeeded=True)
    context = FakeLambdaContext(3_000)
    deadline = Deadline(context, margin_ms=1_000, latency=latency)

    # WHEN 2 s are left before the margin THEN a call may start (0.8 s x 1.5 headroom = 1.2 s)
    assert latency.need_s() == pytest.approx(1.2)
    assert deadline.leaves_time_for_a_call()

    # WHEN only 1 s is left before the margin THEN it may not: it would not finish in time
    context.remaining_ms = 2_000
    assert not deadline.leaves_time_for_a_call()

    # WHEN nothing was observed yet THEN any time before the margin will do
    assert Deadline(context, margin_ms=1_000, latency=ServiceLatency()).leaves_time_for_a_call()


def test_attempt_timeouts_stay_within_the_margin() -> None:
    # GIVEN margins from 1 s to 10 s and any amount of time left
    for margin_ms in range(1_000, 10_001, 500):
        for remaining_ms in (margin_ms, margin_ms + 3_000, 900_000):
            connect, read = Deadline(FakeLambdaContext(remaining_ms), margin_ms).attempt_timeouts(4)

            # THEN one attempt started before the margin ends before Lambda stops the invocation
            assert 0 < connect <= 2.0
            assert connect + read <= margin_ms / 1000


@pytest.mark.parametrize(
    ("remaining_ms", "expected"),
    [
        # plenty of time: 10 s per attempt at most, never botocore's 60 s defaults
        (900_000, (2.0, 8.0)),
        # 30 s left, 3 attempts: each gets the largest step within 30 / 4 = 7.5 s
        (30_000, (2.0, 3.0)),
        # inside the default 5 s margin (rejects of the last chunk, a continuation): 5 / 4 = 1.25 -> 1 s
        (5_000, (0.5, 0.5)),
        # nothing left: the 1 s floor
        (0, (0.5, 0.5)),
    ],
)
def test_support_call_timeouts_follow_the_time_left_not_the_budget(
    remaining_ms: int, expected: tuple[float, float]
) -> None:
    # GIVEN a deadline with the default margin
    deadline = Deadline(FakeLambdaContext(remaining_ms), margin_ms=5_000)

    # WHEN / THEN
    assert deadline.support_call_timeouts(3) == pytest.approx(expected)


def test_every_attempt_of_a_support_call_ends_before_lambdas_deadline() -> None:
    # GIVEN any time left from 4 s (just below the default margin) to 15 minutes
    for remaining_ms in range(4_000, 900_001, 250):
        connect, read = Deadline(FakeLambdaContext(remaining_ms), margin_ms=5_000).support_call_timeouts(3)

        # THEN three attempts fit in the time left with a share to spare, and one never exceeds 10 s
        assert 3 * (connect + read) < remaining_ms / 1000
        assert connect + read <= 10.0
