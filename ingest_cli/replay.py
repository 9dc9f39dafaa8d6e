"""``replay --entity E``: send rejected records back into the pipeline, after an optional fix.

Reads the rejects queue (the stack's ``RejectsQueueUrl``, or ``--queue-url``) or a file of reject messages (JSON
Lines, as ``backfill`` writes them), keeps the messages of the entity, applies ``--fix`` (:mod:`ingest_cli.fixes`),
validates each record again with the function's own rules, and sends the valid ones to the entity's stream or
queue, where the function takes them as any other record. Only messages whose record was sent are deleted from the
rejects queue; every other message (another entity, still invalid, cut when it was set aside, a fix that raised
or returned None, a send that failed) becomes visible again at once. ``--dry-run`` sends and deletes nothing.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest_cli import fixes, runtime, sending
from ingest_cli.output import BAD_INPUT, NOTHING_TO_DO, OK, PROBLEMS, Output
from ingest_cli.stack import load as load_outputs

RECEIVE_VISIBILITY_S = 300
"""How long a received reject is hidden from other readers while this command decides about it."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "replay",
        help="re-validate rejected records (optionally fixed) and send the valid ones back into the pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entity", required=True, help="events, action_interactions, items, users or actions")
    parser.add_argument(
        "--from-file", type=Path, help="reject messages as JSON Lines instead of the rejects queue"
    )
    parser.add_argument("--queue-url", help="the rejects queue (default: the stack's RejectsQueueUrl output)")
    parser.add_argument("--fix", help="fix.json mapping, module:function or file.py:function (see --help text)")
    parser.add_argument(
        "--to",
        choices=("stream", "queue"),
        help="send to the entity's Kinesis stream or SQS queue (default: the stream when the stack has one)",
    )
    parser.add_argument("--limit", type=int, help="look at no more than this many reject messages")
    parser.add_argument("--dry-run", action="store_true", help="fix and validate only: send and delete nothing")
    parser.add_argument(
        "--default-event-type", help="event type for records without one (the function's DEFAULT_EVENT_TYPE)"
    )
    parser.set_defaults(run=run)


@dataclass
class Candidate:
    """One reject message and what replay decided about it."""

    body: str
    receipt: str | None
    message: dict[str, Any] | None = None
    record: Any = None
    outcome: str = ""
    detail: str = ""
    partition_key: str = ""


@dataclass
class Tally:
    looked_at: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    still_invalid: Counter[str] = field(default_factory=Counter)
    fix_errors: list[str] = field(default_factory=list)
    send_errors: list[str] = field(default_factory=list)


def run(args: argparse.Namespace, out: Output) -> int:
    entity = runtime.entity_named(args.entity)
    fix = fixes.load(args.fix)
    if args.limit is not None and args.limit < 1:
        raise runtime.InputError("--limit must be at least 1")
    outputs = None
    if args.from_file is None or not args.dry_run:
        outputs = load_outputs(args.outputs, args.stack)
    destination = None if args.dry_run else sending.destination_for(outputs, entity.name, args.to)  # type: ignore[arg-type]
    queue = None
    if args.from_file is not None:
        candidates = list(_from_file(args.from_file, args.limit))
    else:
        assert outputs is not None
        queue_url = args.queue_url or outputs.require("RejectsQueueUrl", "the rejects queue")
        queue = sending.Queue(queue_url)
        candidates = list(_from_queue(queue, args.limit))
    tally = Tally(looked_at=len(candidates))
    for candidate in candidates:
        _decide(candidate, entity, fix, args.default_event_type, tally)
    ready = [c for c in candidates if c.outcome == "ready"]
    if destination is not None and ready:
        failures = destination.send([(c.record, c.partition_key) for c in ready])
        for index, candidate in enumerate(ready):
            if index in failures:
                candidate.outcome, candidate.detail = "send_failed", failures[index]
                tally.send_errors.append(failures[index])
            else:
                candidate.outcome = "sent"
    for candidate in candidates:
        tally.outcomes[candidate.outcome if candidate.outcome != "ready" else "would_send"] += 1
    if queue is not None:
        queue.delete([c.receipt for c in candidates if c.outcome == "sent" and c.receipt])
        queue.release([c.receipt for c in candidates if c.outcome != "sent" and c.receipt])
    return _report(args, entity.name, destination, tally, out)


def _decide(
    candidate: Candidate, entity: runtime.Entity, fix: fixes.Fix | None, event_type: str | None, tally: Tally
) -> None:
    try:
        message = json.loads(candidate.body)
    except ValueError:
        message = None
    if not isinstance(message, dict) or not {"entity", "code", "record"} <= set(message):
        candidate.outcome = "not_a_reject"
        return
    candidate.message = message
    if message["entity"] != entity.name:
        candidate.outcome = "other_entity"
        return
    if message.get("truncated"):
        candidate.outcome, candidate.detail = "truncated", "the record was cut when it was set aside"
        return
    try:
        fixed = fixes.apply(fix, message["record"], message)
    except fixes.FixError as exc:
        candidate.outcome, candidate.detail = "fix_raised", str(exc)
        tally.fix_errors.append(f"{_where(message)}: {exc}")
        return
    if fixed is None:
        candidate.outcome = "fix_skipped"
        return
    checked = runtime.check(entity, runtime.record_from_reject(entity, message, fixed, runtime.now()), event_type)
    if isinstance(checked, runtime.Rejection):
        candidate.outcome, candidate.detail = "still_invalid", f"{checked.code}: {checked.reason}"
        tally.still_invalid[f"{checked.code}: {checked.reason}"] += 1
        return
    candidate.record = fixed
    candidate.partition_key = checked.session_id or checked.entity_id or uuid.uuid4().hex
    candidate.outcome = "ready"


def _where(message: dict[str, Any]) -> str:
    source = message.get("source") or {}
    for key in ("line", "sequenceNumber", "messageId"):
        if key in source:
            return f"{key} {source[key]}" + (f" of {source['key']}" if key == "line" and "key" in source else "")
    return "a record"


def _from_file(path: Path, limit: int | None) -> Iterator[Candidate]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise runtime.InputError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    taken = 0
    for line in lines:
        if line.strip():
            yield Candidate(line, None)
            taken += 1
            if limit is not None and taken >= limit:
                return


def _from_queue(queue: sending.Queue, limit: int | None) -> Iterator[Candidate]:
    for body, receipt in queue.receive_all(limit, RECEIVE_VISIBILITY_S):
        yield Candidate(body, receipt)


def _report(
    args: argparse.Namespace, entity: str, destination: sending.Destination | None, tally: Tally, out: Output
) -> int:
    outcomes = tally.outcomes
    mine = tally.looked_at - outcomes["other_entity"] - outcomes["not_a_reject"]
    document = {
        "entity": entity,
        "source": str(args.from_file) if args.from_file else "rejects queue",
        "destination": destination.describe() if destination else None,
        "dryRun": args.dry_run,
        "lookedAt": tally.looked_at,
        "ofEntity": mine,
        "outcomes": dict(outcomes),
        "stillInvalid": dict(tally.still_invalid.most_common()),
        "fixErrors": tally.fix_errors,
        "sendErrors": tally.send_errors,
    }
    out.document(document)
    if mine == 0:
        out.line(f"nothing to replay: no reject of {entity} among the {tally.looked_at} message(s) looked at")
        return NOTHING_TO_DO
    if args.dry_run:
        out.line(f"{mine} reject(s) of {entity} looked at (dry run: nothing sent or deleted)")
        out.line(f"  valid, would be sent: {outcomes['would_send']}")
    else:
        assert destination is not None
        out.line(f"{mine} reject(s) of {entity} looked at; sent to {destination.describe()}: {outcomes['sent']}")
    labels = {
        "still_invalid": "still invalid (left in place)",
        "fix_raised": "the fix raised (left in place)",
        "fix_skipped": "the fix returned None (left in place)",
        "truncated": "cut when set aside, cannot be replayed (left in place)",
        "send_failed": "send failed (left in place)",
    }
    for outcome, label in labels.items():
        if outcomes[outcome]:
            out.line(f"  {label}: {outcomes[outcome]}")
    for reason, count in tally.still_invalid.most_common(10):
        out.line(f"    {count} x {reason}")
    for error in tally.fix_errors[:5]:
        out.error(error)
    for error in tally.send_errors[:5]:
        out.error(error)
    if tally.fix_errors:
        return BAD_INPUT
    if outcomes["still_invalid"] or outcomes["send_failed"] or outcomes["truncated"]:
        return PROBLEMS
    return OK
