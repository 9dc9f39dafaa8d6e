"""``validate FILE|s3://BUCKET/KEY --entity E``: read a file exactly as the entity's function would, say which rows
it would reject and why, and send nothing.

Each problem names the line (the CSV header is line 1), the code and the reason; the reason names the field and
the rule and, for an unknown column, the closest known one ("did you mean ..."). Values are never printed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from ingest_cli import runtime
from ingest_cli.output import OK, PROBLEMS, Output, Progress

MAX_LISTED = 100
"""Problems listed in the text output (the summary counts them all; ``--json`` lists every one)."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a CSV / JSON Lines file (local or s3://) as the function would read it; nothing is sent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="a local path or s3://BUCKET/KEY (CSV or JSON Lines, gzip or not)")
    parser.add_argument("--entity", required=True, help="events, action_interactions, items, users or actions")
    parser.add_argument(
        "--default-event-type", help="event type for rows without one (the function's DEFAULT_EVENT_TYPE)"
    )
    parser.add_argument("--all", action="store_true", help=f"list every problem (default: the first {MAX_LISTED})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    """Exit 0 when every row would be accepted, 1 when some would be rejected (see :mod:`ingest_cli.output`)."""
    entity = runtime.entity_named(args.entity)
    problems: list[dict[str, Any]] = []
    rows = valid = 0
    progress = Progress("validate", runtime.count_lines(args.file), out.stderr, enabled=args.progress)
    with runtime.open_source(args.file) as (source, reader):
        for row in reader:
            rows += 1
            checked = runtime.check(entity, source.record(row), args.default_event_type)
            if isinstance(checked, runtime.Rejection):
                problems.append(runtime.problem(row.line, checked))
            else:
                valid += 1
            progress.advance(1)
    progress.finish()
    by_code = Counter(problem["code"] for problem in problems)
    out.document(
        {
            "file": args.file,
            "entity": entity.name,
            "rows": rows,
            "valid": valid,
            "invalid": len(problems),
            "byCode": dict(by_code.most_common()),
            "problems": problems,
        }
    )
    listed = problems if args.all else problems[:MAX_LISTED]
    for problem in listed:
        out.line(f"line {problem['line']}: {problem['code']}: {problem['reason']}")
    if len(listed) < len(problems):
        out.line(f"... and {len(problems) - len(listed)} more (--all lists every one)")
    summary = f"{args.file}: {rows} rows for {entity.name}: {valid} valid, {len(problems)} would be rejected"
    if by_code:
        summary += " (" + ", ".join(f"{code} {n}" for code, n in by_code.most_common()) + ")"
    out.line(summary)
    return PROBLEMS if problems else OK
