"""The short soak (`make soak` at small volumes): Lambda's retry semantics under every injected fault.

Runs the events handler fed by :mod:`benchmarks.lambda_sources` (Kinesis replays from the lowest reported sequence
number, SQS redelivers reported messages, FIFO per group) against the emulator with throttling, 5xx, dropped
connections, lost responses and latency spikes, and a slow-service shard; asserts every target of the soak.
"""

from __future__ import annotations

import pytest

from benchmarks import soak


@pytest.mark.slow
def test_every_soak_target_is_met_at_small_volumes() -> None:
    # GIVEN the soak's workloads at the test volumes (Kinesis, SQS standard, SQS FIFO, a slow shard)
    # WHEN each runs fault-free and under faults
    result = soak.run(**soak.TEST, seed=11)

    # THEN nothing is lost, duplicates stay under 1 % (lost responses apart), calls under 1.3 x the fault-free
    # run, sessions are stored in order, and the slow shard moves on every retry and completes
    lines: list[str] = []
    soak.print_report(result, lines.append)
    report = "\n".join(lines)
    assert result.all_met, report
    kinesis_faults = result.figures[0][1]
    assert kinesis_faults.sent == soak.TEST["kinesis"]
    assert kinesis_faults.attempts > kinesis_faults.calls, "no fault was injected"
    assert result.slow.progress and all(len(p) > 1 for p in result.slow.progress), report
