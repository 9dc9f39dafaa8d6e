"""Concurrency sized to the work: lanes, rate limit x time per call, memory and the ceiling."""

from __future__ import annotations

import pytest

from personalize_ingest.concurrency import DEFAULT_CEILING, ceiling, concurrent_calls
from personalize_ingest.config import Settings
from personalize_ingest.entities import EVENTS, ITEMS

ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
TRACKER = "a1b2c3d4-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("lanes", "rate", "seconds", "memory", "expected", "why"),
    [
        (500, 0, 0.02, 512, 32, "many sessions, no client rate: the ceiling"),
        (3, 0, 0.02, 512, 3, "three sessions: three threads, not 32"),
        (100, 10, 0.05, 512, 2, "10 calls/s at 50 ms: one in flight keeps pace, plus one ready"),
        (100, 10, 0.3, 512, 4, "10 calls/s at 300 ms: three in flight, plus one"),
        (500, 0, 0.02, 64, 16, "64 MB of memory: 16 calls"),
        (500, 1000, 0.02, None, 21, "PutEvents' quota at 20 ms: 20 in flight, plus one"),
        (0, 0, 0.02, 512, 0, "nothing to send"),
    ],
)
def test_concurrent_calls(
    lanes: int, rate: float, seconds: float, memory: int | None, expected: int, why: str
) -> None:
    sized = concurrent_calls(lanes, ceiling=32, calls_per_second=rate, seconds_per_call=seconds, memory_mb=memory)
    assert sized == expected, why


def test_the_ceiling_is_the_configured_maximum_or_the_default() -> None:
    # GIVEN a function that sets MAX_CONCURRENT_CALLS and one that does not
    capped = Settings.from_env(ITEMS, {"PERSONALIZE_DATASET_ARN": ITEMS_ARN, "MAX_CONCURRENT_CALLS": "4"})
    sized = Settings.from_env(EVENTS, {"PERSONALIZE_TRACKING_ID": TRACKER})
    # THEN the first is capped at 4, the second at the default ceiling
    assert (ceiling(capped), ceiling(sized)) == (4, DEFAULT_CEILING)
