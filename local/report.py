"""The demo's report: per entity and source, where every distinct record sent ended up.

Printed as a table for people and written as JSON for tests (``python -m local.demo --json PATH``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from local.accounting import OPERATIONS, Evidence, Tally


@dataclass
class Report:
    tallies: dict[tuple[str, str], Tally]
    evidence: Evidence
    seconds_to_drain: float
    seconds_total: float
    drained: bool
    invocations: dict[str, tuple[int, int]]
    """Per entity: function invocations and how many failed as a whole (raised, timed out)."""

    @property
    def unaccounted(self) -> int:
        return sum(len(t.unaccounted) for t in self.tallies.values())

    @property
    def ok(self) -> bool:
        """Every distinct record sent is delivered, rejected or dead-lettered."""
        return self.unaccounted == 0

    def api_calls(self, entity: str) -> Counter[str]:
        return self.evidence.calls.get(OPERATIONS[entity], Counter())

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for (entity, source), tally in sorted(self.tallies.items()):
            calls = self.api_calls(entity)
            rows.append(
                {
                    "entity": entity,
                    "source": source,
                    "sent": tally.sent,
                    "delivered": tally.delivered,
                    "rejected": sum(tally.rejected.values()),
                    "rejectedByCode": dict(sorted(tally.rejected.items())),
                    "deadLettered": tally.dead_lettered,
                    "duplicates": tally.duplicates,
                    "unaccounted": tally.unaccounted,
                    "unexpected": tally.unexpected,
                    "apiCalls": sum(calls.values()),
                    "apiCallsByStatus": dict(sorted(calls.items())),
                }
            )
        return {
            "ok": self.ok,
            "drained": self.drained,
            "secondsToDrain": round(self.seconds_to_drain, 1),
            "secondsTotal": round(self.seconds_total, 1),
            "unmatchedRejects": self.evidence.unmatched_rejects,
            "invocations": {
                entity: {"invocations": n, "failed": f} for entity, (n, f) in self.invocations.items()
            },
            "rows": rows,
            "imports": [
                {
                    "key": document.get("key"),
                    "status": document.get("status"),
                    "jobName": document.get("jobName"),
                    "jobStatus": document.get("jobStatus"),
                    "rows": document.get("rows"),
                    "jobSeconds": (document.get("timings") or {}).get("jobSeconds"),
                    "failureReason": document.get("failureReason"),
                }
                for document in self.evidence.imports
            ],
        }


def render(report: Report) -> str:
    """The report as a fixed-width table, reasons grouped by code, and a verdict line."""
    document = report.as_dict()
    header = ("entity", "source", "sent", "delivered", "rejected", "dlq", "duplicates", "api calls", "missing")
    table = [header]
    for row in document["rows"]:
        table.append(
            (
                row["entity"],
                row["source"],
                str(row["sent"]),
                str(row["delivered"]),
                str(row["rejected"]),
                str(row["deadLettered"]),
                str(row["duplicates"]),
                _calls(row["apiCalls"], row["apiCallsByStatus"]),
                str(len(row["unaccounted"])),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = ["", *lines, "", "Rejected records by code:"]
    for row in document["rows"]:
        if row["rejectedByCode"]:
            codes = ", ".join(f"{code} {count}" for code, count in row["rejectedByCode"].items())
            out.append(f"  {row['entity']}/{row['source']}: {codes}")
    examples: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}
    for position, body in report.evidence.rejected.items():
        examples.setdefault((str(body.get("entity")), str(body.get("code"))), (position, str(body.get("reason"))))
    if examples:
        out.append("Example reasons:")
        for (entity, code), (_, reason) in sorted(examples.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            out.append(f"  {entity} {code}: {reason}")
    for row in document["rows"]:
        for note in row["unexpected"]:
            out.append(f"  note: {row['entity']}/{row['source']} {note}")
        for sample in row["unaccounted"][:10]:
            out.append(f"  MISSING: {row['entity']}/{row['source']} {sample} is in none of the places above")
    if document["unmatchedRejects"]:
        out.append(f"  note: {document['unmatchedRejects']} reject messages match no record the demo sent")
    invocations = ", ".join(
        f"{entity} {made}" + (f" ({failed} failed)" if failed else "")
        for entity, (made, failed) in sorted(report.invocations.items())
    )
    for imported in document["imports"]:
        out.append(
            f"Import route: {imported['key']} -> dataset import job {imported['jobName']}: {imported['status']} "
            f"({imported['jobStatus']}, {imported['rows']} rows, job {imported['jobSeconds']} s)"
            + (f": {imported['failureReason']}" if imported["failureReason"] else "")
        )
    out.append(f"Function invocations: {invocations}")
    state = "drained" if report.drained else "NOT drained (timed out waiting)"
    out.append("")
    out.append(
        f"Time: {document['secondsToDrain']} s from first record to {state}, {document['secondsTotal']} s in all."
    )
    if report.ok:
        total = sum(row["sent"] for row in document["rows"])
        out.append(f"OK: all {total} distinct records sent are delivered, rejected or in a DLQ.")
    else:
        out.append(f"FAILED: {report.unaccounted} distinct records sent are in none of those places.")
    return "\n".join(out)


def _calls(total: int, by_status: dict[str, int]) -> str:
    failed = sum(count for status, count in by_status.items() if status != "200")
    return f"{total}" if not failed else f"{total} ({failed} failed)"
