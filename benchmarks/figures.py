"""Figures derived from a worker's measurement and the emulator's call log, one dict per benchmark row."""

from __future__ import annotations

from typing import Any

KIB = 1024
MIB = 1024 * 1024


def invocation_row(
    scenario: str, name: str, records: int, measured: dict[str, Any], calls: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One row: time, CPU, calls and memory of one measured invocation of ``records`` records."""
    cpu_s, wall_s = measured["cpuS"], measured["wallS"]
    accepted = calls["acceptedCalls"]
    emf = measured.get("emf") or {}
    peak = measured.get("tracemallocPeakBytes")
    return {
        "scenario": scenario,
        "name": name,
        "records": records,
        "delivered": calls["elements"],
        "batchItemFailures": measured["batchItemFailures"],
        "wallS": wall_s,
        "cpuS": cpu_s,
        "userS": measured["userS"],
        "systemS": measured["systemS"],
        "cpuUsPerRecord": cpu_s / records * 1e6 if records else None,
        "recordsPerWallSecond": records / wall_s if wall_s else None,
        "apiCalls": calls["calls"],
        "acceptedCalls": accepted,
        "throttledCalls": calls["throttledCalls"],
        "otherErrors": calls["otherErrors"],
        "recordsPerCall": calls["elements"] / accepted if accepted else None,
        "maxRecordsPerCall": calls["maxElementsPerCall"],
        "callsPerSecond": calls["calls"] / wall_s if wall_s else None,
        "cpuUsPerCall": cpu_s / calls["calls"] * 1e6 if calls["calls"] else None,
        "maxRssBeforeMiB": measured["maxRssBeforeKiB"] / KIB,
        "maxRssAfterMiB": measured["maxRssAfterKiB"] / KIB,
        "maxRssGrowthMiB": (measured["maxRssAfterKiB"] - measured["maxRssBeforeKiB"]) / KIB,
        "tracemallocPeakMiB": peak / MIB if peak is not None else None,
        "importS": measured["importS"],
        "firstInvocationS": measured.get("firstInvocationS"),
        "metrics": _metrics(emf),
        **extra,
    }


def _metrics(document: dict[str, Any]) -> dict[str, float]:
    """Each metric the EMF document declares (in ``_aws.CloudWatchMetrics``), by name, with its value summed."""
    directives = document.get("_aws", {}).get("CloudWatchMetrics", [])
    names = [metric["Name"] for directive in directives for metric in directive["Metrics"]]
    return {name: _metric(document, name) for name in names if name in document}


def _metric(document: dict[str, Any], name: str) -> float:
    value = document[name]
    return sum(value) if isinstance(value, list) else value


def steady_rate(call_times: list[float], burst: int) -> float | None:
    """Calls per second after the first ``burst`` calls (the client bucket starts full), from arrival times."""
    if len(call_times) <= burst + 1:
        return None
    span = call_times[-1] - call_times[burst]
    return (len(call_times) - 1 - burst) / span if span > 0 else None
