"""The results as tables on the terminal and as a JSON file."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

Column = tuple[str, Callable[[dict[str, Any]], Any]]

_PREPARE: list[Column] = [
    ("case", lambda r: r["name"]),
    ("records", lambda r: r["records"]),
    ("CPU us/record", lambda r: r["cpuUsPerRecord"]),
    ("records/CPU s", lambda r: r["recordsPerCpuSecond"]),
]
_INVOCATION: list[Column] = [
    ("run", lambda r: r["name"]),
    ("delivered", lambda r: r["delivered"]),
    ("wall s", lambda r: r["wallS"]),
    ("CPU s", lambda r: r["cpuS"]),
    ("CPU us/rec", lambda r: r["cpuUsPerRecord"]),
    ("calls", lambda r: r["apiCalls"]),
    ("rec/call", lambda r: r["recordsPerCall"]),
    ("calls/s", lambda r: r["callsPerSecond"]),
    ("throttled", lambda r: r["throttledCalls"]),
    ("maxRSS MiB", lambda r: r["maxRssAfterMiB"]),
    ("+RSS MiB", lambda r: r["maxRssGrowthMiB"]),
    ("tracemalloc MiB", lambda r: r["tracemallocPeakMiB"]),
]
_RATE: list[Column] = [
    ("run", lambda r: r["name"]),
    ("calls", lambda r: r["apiCalls"]),
    ("limit/s", lambda r: r["callsPerSecondLimit"]),
    ("observed calls/s", lambda r: r["observedCallsPerSecond"]),
    ("steady calls/s", lambda r: r["steadyCallsPerSecond"]),
    ("throttled", lambda r: r["throttledCalls"]),
    ("retries", lambda r: r["metrics"].get("Retries")),
]
TITLES = {
    "prepare": "1. prepare(): CPU per record (normalise + validate), best of the repeats",
    "s3_events": "2. events function, MovieLens ratings object via SQS S3 notification",
    "s3_items": "3. items function, MovieLens movies object via SQS S3 notification",
    "kinesis_events": "4. events function, Kinesis event of camelCase JSON events",
    "baselines": "5. events function vs the per-record pattern and a default boto3 client, 20 ms per call",
    "schema_calls": "6. calls made with 1 % schema-breaking records, with and without the dataset schema",
    "files": "7. big S3 files: resuming by position, linear CPU, flat memory, byte-range fan-out",
    "bulk_import": "8. items catalogue: import route (measured) vs PutItems (sample, extrapolated)",
}


def print_tables(results: Sequence[dict[str, Any]], out: TextIO) -> None:
    """One table per scenario, in the order the scenarios ran."""
    for scenario in dict.fromkeys(r["scenario"] for r in results):
        rows = [r for r in results if r["scenario"] == scenario and "targets" not in r]
        print(f"\n{TITLES.get(scenario, scenario)}", file=out)
        print(_table(_PREPARE if scenario == "prepare" else _INVOCATION, rows), file=out)
        for row in results:
            if row["scenario"] == scenario and "targets" in row:
                _print_targets(row["targets"], out)
        rated = [r for r in rows if r.get("callsPerSecondLimit")]
        if rated:
            print("\n   token bucket (client-side rate) against the emulator's quota", file=out)
            print(_table(_RATE, rated), file=out)
        for row in rows:
            if row.get("importS") is not None:
                first = row.get("firstInvocationS")
                print(
                    f"   cold start ({row['name']}): handler import {row['importS']:.2f} s"
                    + (f", first (warm-up) invocation {first:.2f} s" if first is not None else ""),
                    file=out,
                )
        incomplete = [
            r["name"] for r in rows if r.get("delivered", r["records"]) + (r.get("rejected") or 0) != r["records"]
        ]
        if incomplete:
            print(f"   NOT ALL RECORDS DELIVERED in: {', '.join(incomplete)}", file=out)


def _print_targets(targets: Sequence[dict[str, Any]], out: TextIO) -> None:
    """One line per target: met / not met, with what was measured."""
    for target in targets:
        print(
            f"   {'met    ' if target['met'] else 'NOT MET'}  {target['target']}: {target['measured']}", file=out
        )


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def _table(columns: list[Column], rows: Sequence[dict[str, Any]]) -> str:
    cells = [[_format(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(title), *(len(line[i]) for line in cells)) for i, (title, _) in enumerate(columns)]
    lines = [
        "   "
        + "  ".join(
            title.rjust(w) if i else title.ljust(w)
            for i, ((title, _), w) in enumerate(zip(columns, widths, strict=True))
        )
    ]
    for line in cells:
        lines.append(
            "   "
            + "  ".join(
                cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)
