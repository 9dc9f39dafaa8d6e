"""Scenario 1: CPU per record of ``prepare()`` (normalise + validate) for each entity and record style.

Records are built before the clock starts (as the sources would hand them over); the loop is timed several times
and the fastest repeat is kept, which is the figure least disturbed by the rest of the machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from benchmarks import movielens
from benchmarks.harness import Bench

SCENARIO = "prepare"
CASES: dict[tuple[str, str], tuple[str, Callable[[dict[str, str]], dict[str, Any]]]] = {
    ("events", "bulk"): ("ratings", movielens.event_bulk),
    ("events", "camelCase"): ("ratings", movielens.event_camel),
    ("action_interactions", "bulk"): ("ratings", movielens.action_interaction_bulk),
    ("action_interactions", "camelCase"): ("ratings", movielens.action_interaction_camel),
    ("items", "bulk"): ("movies", movielens.item_bulk),
    ("items", "camelCase"): ("movies", movielens.item_camel),
    ("users", "bulk"): ("ratings", movielens.user_bulk),
    ("users", "camelCase"): ("ratings", movielens.user_camel),
    ("actions", "bulk"): ("movies", movielens.action_bulk),
    ("actions", "camelCase"): ("movies", movielens.action_camel),
}
"""(entity, style) -> (MovieLens file, row -> record value)."""


def run(bench: Bench, quick: bool) -> list[dict[str, Any]]:
    """Measure every case in one worker process."""
    job = {"kind": "prepare", "records": 1_000 if quick else 10_000, "repeats": 2 if quick else 3}
    with bench.worker() as worker:
        return [{"scenario": SCENARIO, **case} for case in worker.run(job)["cases"]]


def measure_prepare(job: dict[str, Any]) -> dict[str, Any]:
    """Worker side: time ``prepare`` over ``job["records"]`` records of every case."""
    from personalize_ingest.entities import ENTITIES
    from personalize_ingest.model import S3, Record, RecordRejected, SourceRef
    from personalize_ingest.records import prepare

    cases = []
    for (entity_name, style), (source, to_value) in CASES.items():
        entity = ENTITIES[entity_name]
        rows = movielens.take(movielens.ratings() if source == "ratings" else movielens.movies(), job["records"])
        records = [
            Record(
                "bench",
                SourceRef(S3, bucket="bench", key=f"{entity.s3_prefix}bench.csv", etag="0" * 32, line=line),
                to_value(row),
                1_795_978_246.0,
            )
            for line, row in enumerate(rows, start=2)
        ]
        rejected = 0
        for record in records[:200]:  # warm the per-layout caches, as the first rows of a file do
            try:
                prepare(entity, record)
            except RecordRejected:
                rejected += 1
        best_cpu = best_wall = float("inf")
        for _ in range(job["repeats"]):
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            for record in records:
                with suppress(RecordRejected):
                    prepare(entity, record)
            best_cpu = min(best_cpu, time.process_time() - cpu_before)
            best_wall = min(best_wall, time.perf_counter() - wall_before)
        cases.append(
            {
                "name": f"{entity_name} {style}",
                "entity": entity_name,
                "style": style,
                "records": len(records),
                "repeats": job["repeats"],
                "rejectedInWarmup": rejected,
                "cpuUsPerRecord": best_cpu / len(records) * 1e6,
                "wallUsPerRecord": best_wall / len(records) * 1e6,
                "recordsPerCpuSecond": len(records) / best_cpu if best_cpu else None,
            }
        )
    return {"cases": cases}
