"""Scenario 3: the items function reading the MovieLens movies (ITEM_ID,TITLE,GENRES) from S3.

Two runs. CPU: ``CALLS_PER_SECOND=0`` and no emulator quota, so nothing waits and the figure is the function's own
cost per item. Rate: the default client-side rate (10 calls/s, PutItems' quota) against the emulator's default
10 requests/s quota, to see the token bucket hold the rate: calls per second observed by the emulator after the
bucket's first call, and whether any call was throttled.
"""

from __future__ import annotations

from typing import Any

from benchmarks import movielens
from benchmarks.figures import invocation_row, steady_rate
from benchmarks.harness import Bench, Worker

SCENARIO = "s3_items"
ENTITY = "items"
WARMUP_ROWS = 20
DEFAULT_RATE = 10.0
"""The items function's default CALLS_PER_SECOND (entities.ITEMS) and the emulator's PutItems quota."""
CLIENT_BURST = 1
"""Calls the function's token bucket lets out at once (personalize_ingest.throttle.PACED_CAPACITY)."""


def run(bench: Bench, quick: bool) -> list[dict[str, Any]]:
    warmup = bench.put_object("items/bench/warmup.csv.gz", movielens.movies_object(WARMUP_ROWS))
    cpu_rows = 500 if quick else movielens.ALL_MOVIES
    rate_rows = 150 if quick else 400
    with bench.worker() as worker:
        cpu = _run(bench, worker, f"{cpu_rows:,} movies, unlimited", cpu_rows, warmup, unlimited=True)
    # NOTE: the rate run gets a fresh worker, like a new container: its token bucket starts full.
    with bench.worker() as worker:
        rate = _run(
            bench, worker, f"{rate_rows:,} movies, {DEFAULT_RATE:g} calls/s", rate_rows, None, unlimited=False
        )
    return [cpu, rate]


def _run(
    bench: Bench, worker: Worker, name: str, rows: int, warmup: dict[str, Any] | None, *, unlimited: bool
) -> dict[str, Any]:
    key = f"items/bench/movies-{rows}.csv.gz"
    event = bench.put_object(key, movielens.movies_object(rows))
    bench.emulator.reset()
    overrides = {}
    if unlimited:
        bench.emulator.set_quota("PutItems", 0)
        overrides["CALLS_PER_SECOND"] = "0"
    measured, calls = bench.invoke(worker, ENTITY, event, warmup, env=overrides)
    result = bench.take_object_result(key)
    times = calls["callTimes"]
    burst = 0 if unlimited else CLIENT_BURST
    return invocation_row(
        SCENARIO,
        name,
        rows,
        measured,
        calls,
        callsPerSecondLimit=None if unlimited else DEFAULT_RATE,
        observedCallsPerSecond=(len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None,
        steadyCallsPerSecond=steady_rate(times, burst),
        objectStatus=result.get("status"),
        rejected=bench.rejects_count(),
    )
