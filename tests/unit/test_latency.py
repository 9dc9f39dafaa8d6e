"""The container's one tracker of the service's time per attempt: what a call needs, and the average."""

from __future__ import annotations

import pytest

from personalize_ingest.latency import LATENCY_HEADROOM, LATENCY_WINDOW, ServiceLatency


def test_the_time_per_call_follows_what_the_container_observed() -> None:
    # GIVEN an assumed time per call
    latency = ServiceLatency(initial_s=0.05)
    # WHEN attempts are observed
    latency.observe(0.2, succeeded=True)
    first = latency.seconds_per_call()
    latency.observe(0.1, succeeded=True)
    # THEN the first replaces the assumption, later ones move the average
    assert first == pytest.approx(0.2)
    assert 0.1 < latency.seconds_per_call() < 0.2


def test_only_successful_attempts_say_what_a_call_needs() -> None:
    # GIVEN a container that saw one slow refused or throttled answer and two successful ones
    latency = ServiceLatency(initial_s=0.05)
    latency.observe(3.0, succeeded=False)
    latency.observe(0.4, succeeded=True)
    latency.observe(0.2, succeeded=True)

    # THEN a call needs the slowest success with headroom, while every answer moved the average
    assert latency.need_s() == pytest.approx(0.4 * LATENCY_HEADROOM)
    assert latency.seconds_per_call() > 0.4


def test_the_window_forgets_the_oldest_success() -> None:
    # GIVEN one slow success followed by a full window of quick ones
    latency = ServiceLatency()
    latency.observe(2.0, succeeded=True)
    for _ in range(LATENCY_WINDOW):
        latency.observe(0.1, succeeded=True)

    # THEN the slow one no longer counts
    assert latency.need_s() == pytest.approx(0.1 * LATENCY_HEADROOM)


def test_clearing_makes_a_cold_container() -> None:
    # GIVEN a tracker that observed attempts
    latency = ServiceLatency(initial_s=0.05)
    latency.observe(0.7, succeeded=True)

    # WHEN it is cleared
    latency.clear()

    # THEN nothing is needed and the assumption is back
    assert latency.need_s() == 0.0
    assert latency.seconds_per_call() == pytest.approx(0.05)
