"""The S3 stage's arithmetic: next-chunk estimate, lines to skip, and its settings."""

from __future__ import annotations

import pytest

from personalize_ingest.config import ConfigurationError, Settings
from personalize_ingest.entities import EVENTS
from personalize_ingest.s3objects import Position, Row
from personalize_ingest.s3stage.chunks import MAX_SKIP_RANGES, Chunk, ChunkCost, in_runs, lines_of, merge_lines


def test_the_next_chunk_is_estimated_from_the_largest_chunk_and_the_measured_cost_per_row() -> None:
    # GIVEN chunks of 500 and 3,100 rows that took 50 ms + 400 ms and 310 ms + 2,480 ms with 50 and 310 calls
    cost = ChunkCost()
    assert cost.next_chunk_ms() == 0.0
    cost.add(500, 50.0, 400.0, 50)
    cost.add(3_100, 310.0, 2_480.0, 310)

    # WHEN / THEN the next is assumed as large as the largest, at 0.1 ms per row read + 0.08 calls x 8 ms per call
    assert cost.next_chunk_ms() == pytest.approx(3_100 * (0.1 + 0.1 * 8.0))


def test_a_chunk_resumes_at_its_first_row_not_accounted_for_and_lists_the_later_ones_that_were() -> None:
    # GIVEN a chunk of rows at lines 10-15 whose lines 12 and 14 failed
    chunk = Chunk(first=Position(100, 10))
    for line in range(10, 16):
        chunk.add(Row(line, {}, None, offset=line * 10, end=Position(line * 10 + 10, line + 1)))
    chunk.failed_lines = {12, 14}

    # WHEN / THEN it resumes at line 12's offset and skips 13 and 15
    assert chunk.resume_point() == Position(120, 12)
    assert chunk.accounted_after(12) == [13, 15]
    assert chunk.end == Position(160, 16)


def test_lines_to_skip_travel_as_runs_and_too_many_runs_are_dropped() -> None:
    runs = merge_lines([7, 3, 4, 5, 9, 10])
    assert runs == ((3, 5), (7, 7), (9, 10))
    assert lines_of(runs, 4) == [5, 7, 9, 10]
    assert in_runs(runs, 10) and not in_runs(runs, 6)
    assert merge_lines(list(range(0, 4 * MAX_SKIP_RANGES, 2))) == ()


def test_fan_out_settings_are_read_and_checked() -> None:
    env = {"PERSONALIZE_TRACKING_ID": "tracker-1", "S3_FANOUT_MIN_BYTES": "0", "S3_MAX_HOPS": "7"}
    settings = Settings.from_env(EVENTS, env)
    assert (settings.s3_fanout_min_bytes, settings.s3_max_hops, settings.s3_fanout_max_ranges) == (0, 7, 64)
    with pytest.raises(ConfigurationError, match="S3_FANOUT_MAX_RANGES must be at least 2"):
        Settings.from_env(EVENTS, {**env, "S3_FANOUT_MAX_RANGES": "1"})
