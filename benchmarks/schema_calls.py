"""Scenario ``schema_calls``: what 1 % of schema-breaking records cost in calls, with and without the schema.

The emulator of this scenario has an interactions schema with a ``DEVICE`` field (it refuses any other property,
as Personalize does). One Kinesis batch of 5,000 events in sessions of ten goes through the events function three
times: clean; with 1 % of the events carrying a misspelt property (``devise``) and no schema configured (each bad
record costs a split of its call down to the record: up to 7 calls instead of 1); and the same with the schema in
``DATASET_SCHEMA`` (the bad records are rejected locally, their calls carry the other nine). Target: the last run
makes at most 1.05x the calls of the clean one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from benchmarks.baselines import session_events
from benchmarks.figures import invocation_row
from benchmarks.harness import Bench
from emulator.config import EmulatorConfig, default_group
from emulator.testing import running_emulator
from tests.support import factories
from tests.support.schemas import INTERACTIONS_WITH_DEVICE_SCHEMA

SCENARIO = "schema_calls"
ENTITY = "events"
BAD_EVERY = 100
"""One event in this many breaks the schema (1 %)."""
TARGET_CALLS_RATIO = 1.05
SCHEMA = INTERACTIONS_WITH_DEVICE_SCHEMA


def events_with_device(count: int, broken: bool) -> list[dict[str, Any]]:
    """Session events with a ``device`` property; with ``broken``, every BAD_EVERY-th one misspells it."""
    events = session_events(count)
    for index, event in enumerate(events):
        key = "devise" if broken and index % BAD_EVERY == BAD_EVERY // 2 else "device"
        event["properties"] = {key: "ios" if index % 2 else "android"}
    return events


def run(bench: Bench, quick: bool) -> list[dict[str, Any]]:
    count = 1_000 if quick else 5_000
    config = EmulatorConfig(groups=[replace(default_group(), schemas={"INTERACTIONS": SCHEMA})])
    runs = [
        ("warm-up (not counted)", False, {}),
        ("clean batch", False, {}),
        ("1 % breaking, no schema", True, {}),
        ("1 % breaking, DATASET_SCHEMA set", True, {"DATASET_SCHEMA": json.dumps(SCHEMA)}),
    ]
    rows: list[dict[str, Any]] = []
    with running_emulator(config) as emulator, bench.worker() as worker:
        for name, broken, settings in runs:
            emulator.reset()
            event = {"type": "inline", "event": factories.kinesis_event(events_with_device(count, broken))}
            env = {"AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": emulator.url, **settings}
            measured, _ = bench.invoke(worker, ENTITY, event, None, env=env)
            rows.append(
                invocation_row(
                    SCENARIO, name, count, measured, bench.call_summary(emulator), rejected=bench.rejects_count()
                )
            )
    rows = rows[1:]
    clean, without, with_schema = (row["apiCalls"] for row in rows)
    ratio = with_schema / clean
    rows.append(
        {
            "scenario": SCENARIO,
            "name": "targets",
            "records": 0,
            "callsRatioWithSchema": ratio,
            "callsRatioWithoutSchema": without / clean,
            "targets": [
                {
                    "target": f"1 % schema-breaking records: calls <= {TARGET_CALLS_RATIO:g}x the clean batch's",
                    "measured": f"{ratio:.3f}x with the schema ({with_schema:,} vs {clean:,} calls); "
                    f"{without / clean:.2f}x without it ({without:,})",
                    "met": ratio <= TARGET_CALLS_RATIO,
                }
            ],
        }
    )
    return rows
