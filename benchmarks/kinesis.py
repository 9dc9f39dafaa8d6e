"""Scenario 4: a Lambda Kinesis event of camelCase JSON events (MovieLens ratings) through the events function.

In file order the ratings come in long runs of one user (one session), the best case for packing ten events into
a call; shuffled, sessions interleave as on a busy stream and calls carry fewer events (one call holds one
sessionId/userId pair).
"""

from __future__ import annotations

from typing import Any

from benchmarks.events import build_event
from benchmarks.figures import invocation_row
from benchmarks.harness import Bench, Worker

SCENARIO = "kinesis_events"
ENTITY = "events"
SHUFFLE_SEED = 7


def run(bench: Bench, quick: bool) -> list[dict[str, Any]]:
    warmup = {"type": "inline", "event": build_event({"type": "kinesis", "records": 20})}
    sizes = (100,) if quick else (100, 1_000)
    runs = [(size, order) for size in sizes for order in ("file order", "shuffled")]
    with bench.worker() as worker:
        # NOTE: the first run warms the worker up (clients created); the later ones run warm.
        return [
            _run(bench, worker, f"{size:,} records, {order}", size, None if index else warmup, order)
            for index, (size, order) in enumerate(runs)
        ]


def _run(
    bench: Bench, worker: Worker, name: str, records: int, warmup: dict[str, Any] | None, order: str
) -> dict[str, Any]:
    spec = {"type": "kinesis", "records": records, "shuffleSeed": SHUFFLE_SEED if order == "shuffled" else None}
    event = {"type": "inline", "event": build_event(spec)}
    bench.emulator.reset()
    measured, calls = bench.invoke(worker, ENTITY, event, warmup)
    return invocation_row(SCENARIO, name, records, measured, calls, order=order, rejected=bench.rejects_count())
