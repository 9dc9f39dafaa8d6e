"""Scenario 2: the events function reading a MovieLens ratings object announced by an S3 notification via SQS.

One gzip bulk-layout CSV (USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP) per run, in moto's S3; the function
streams it in chunks and calls the emulator, with no added latency and with a fixed added latency per call (a
realistic service round trip). A pair of runs with tracemalloc on, the second four times the size of the first,
shows whether peak memory grows with the object.
"""

from __future__ import annotations

from typing import Any

from benchmarks import movielens
from benchmarks.figures import invocation_row
from benchmarks.harness import Bench, Worker

SCENARIO = "s3_events"
ENTITY = "events"
WARMUP_ROWS = 50
LATENCY_MS = 25.0


def sizes(quick: bool, records: int | None) -> dict[str, int]:
    """Rows of each run: the full data set by default, a few thousand with ``--quick``."""
    full = records or (1_000 if quick else movielens.ALL_RATINGS)
    return {
        "timing": full,
        "latency": min(full, 300 if quick else 5_000),
        "memorySmall": 250 if quick else 1_250,
        "memoryLarge": 1_000 if quick else 5_000,
    }


def run(bench: Bench, quick: bool, records: int | None = None) -> list[dict[str, Any]]:
    rows = sizes(quick, records)
    warmup = bench.put_object("events/bench/warmup.csv.gz", movielens.ratings_object(WARMUP_ROWS))
    # NOTE: one worker process (one warm container) for the four runs; the tracemalloc pair runs first, so the
    # RSS high-water mark of the larger runs after it shows any growth with the object's size.
    with bench.worker() as worker:
        small, large = rows["memorySmall"], rows["memoryLarge"]
        memory = [
            _run(bench, worker, f"{small:,} rows, tracemalloc", small, warmup, traced=True),
            _run(bench, worker, f"{large:,} rows, tracemalloc", large, None, traced=True),
        ]
        timing = _run(bench, worker, f"{rows['timing']:,} rows, 0 ms", rows["timing"], None)
        latency = _run(
            bench,
            worker,
            f"{rows['latency']:,} rows, {LATENCY_MS:g} ms",
            rows["latency"],
            None,
            latency_ms=LATENCY_MS,
        )
    return [timing, latency, *memory]


def _run(
    bench: Bench,
    worker: Worker,
    name: str,
    rows: int,
    warmup: dict[str, Any] | None,
    *,
    latency_ms: float = 0.0,
    traced: bool = False,
) -> dict[str, Any]:
    key = f"events/bench/ratings-{rows}.csv.gz"
    event = bench.put_object(key, movielens.ratings_object(rows))
    bench.emulator.reset()
    if latency_ms:
        bench.emulator.set_faults(latency={"distribution": "fixed", "ms": latency_ms})
    measured, calls = bench.invoke(worker, ENTITY, event, warmup, traced=traced)
    result = bench.take_object_result(key)
    return invocation_row(
        SCENARIO,
        name,
        rows,
        measured,
        calls,
        latencyMs=latency_ms,
        tracemalloc=traced,
        objectBytes=event["size"],
        objectStatus=result.get("status"),
        rejected=bench.rejects_count(),
    )
