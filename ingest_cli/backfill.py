"""``backfill FILE --entity E``: send a file's rows straight to Personalize, as the entity's function would.

The rows go through the function's reader, validation, batching, retries and rate limit (the token bucket of
``CALLS_PER_SECOND``; ``--calls-per-second`` overrides it). The target is the function's: ``--target`` or the
``PERSONALIZE_TRACKING_ID`` / ``PERSONALIZE_DATASET_ARN`` variable. Invalid rows (and rows the service refuses)
are written as reject messages to ``--rejects`` (JSON Lines, the rejects queue's format: ``replay --from-file``
reads it).

The file is sent in chunks, one after another; after each chunk the checkpoint file records the next line. An
interrupted run (Ctrl-C, SIGTERM, a lost connection) started again with the same command resumes at that line:
rows of the chunk in flight may be sent twice, which Personalize absorbs (interactions carry an eventId derived
from the file's content and the line; items, users and actions are upserts). When a chunk has records that
failed (throttling or an outage outlasting the retries, a wrong target), the run stops there, so the checkpoint
never skips a record that was not delivered.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest_cli import runtime
from ingest_cli.output import INTERRUPTED, NOTHING_TO_DO, OK, PROBLEMS, Output, Progress

CHUNK_ROWS = 500
"""Rows read, validated and delivered together (the functions' S3 chunk size)."""
CHECKPOINT_VERSION = 1


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "backfill",
        help="send a file straight to Personalize (same validation, batching, rate limit), resumable",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="a local path or s3://BUCKET/KEY (CSV or JSON Lines, gzip or not)")
    parser.add_argument("--entity", required=True, help="events, action_interactions, items, users or actions")
    parser.add_argument("--target", help="tracking id or dataset ARN (default: the function's variable)")
    parser.add_argument("--calls-per-second", type=float, help="rate limit per target (default: CALLS_PER_SECOND)")
    parser.add_argument(
        "--checkpoint", type=Path, help="checkpoint file (default: ./<file name>.<entity>.checkpoint.json)"
    )
    parser.add_argument(
        "--rejects", type=Path, help="rejects file (default: ./<file name>.<entity>.rejects.jsonl)"
    )
    parser.add_argument("--restart", action="store_true", help="ignore the checkpoint and send from the start")
    parser.add_argument(
        "--chunk-rows", type=int, default=CHUNK_ROWS, help=f"rows per chunk (default {CHUNK_ROWS})"
    )
    parser.add_argument(
        "--default-event-type", help="event type for rows without one (the function's DEFAULT_EVENT_TYPE)"
    )
    parser.set_defaults(run=run)


@dataclass
class Counts:
    rows: int = 0
    delivered: int = 0
    superseded: int = 0
    rejected: int = 0
    failed: int = 0
    apiCalls: int = 0
    throttledCalls: int = 0


@dataclass
class Checkpoint:
    """What a run has done so far; ``next_line`` is the first line not yet known to be handled."""

    source: str
    fingerprint: str
    entity: str
    next_line: int = 1
    complete: bool = False
    counts: Counts | None = None

    def save(self, path: Path) -> None:
        document = {"version": CHECKPOINT_VERSION, **asdict(self)}
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
        # NOTE: replaced in one step, so an interruption while saving leaves the previous checkpoint intact.
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> Checkpoint | None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise runtime.InputError(
                f"the checkpoint {path} cannot be read ({exc}); --restart ignores it"
            ) from exc
        if document.get("version") != CHECKPOINT_VERSION:
            raise runtime.InputError(f"the checkpoint {path} is of another version; --restart ignores it")
        counts = Counts(**document.get("counts") or {})
        return cls(
            document["source"],
            document["fingerprint"],
            document["entity"],
            document["next_line"],
            document["complete"],
            counts,
        )


def _default_path(location: str, entity: str, suffix: str) -> Path:
    name = location.rstrip("/").rsplit("/", 1)[-1]
    return Path(f"{name}.{entity}.{suffix}")


def run(args: argparse.Namespace, out: Output) -> int:
    entity = runtime.entity_named(args.entity)
    if args.chunk_rows < 1:
        raise runtime.InputError("--chunk-rows must be at least 1")
    environ = dict(os.environ)
    if args.calls_per_second is not None:
        environ["CALLS_PER_SECOND"] = str(args.calls_per_second)
    if args.default_event_type:
        environ["DEFAULT_EVENT_TYPE"] = args.default_event_type
    settings = runtime.settings_for(entity, args.target, environ)
    checkpoint_path = args.checkpoint or _default_path(args.file, entity.name, "checkpoint.json")
    rejects_path = args.rejects or _default_path(args.file, entity.name, "rejects.jsonl")
    started = time.monotonic()
    with runtime.open_source(args.file) as (source, rows):
        fingerprint = source.digest or source.etag or ""
        checkpoint = None if args.restart else Checkpoint.read(checkpoint_path)
        if checkpoint is not None and (checkpoint.fingerprint, checkpoint.entity) != (fingerprint, entity.name):
            raise runtime.InputError(
                f"the checkpoint {checkpoint_path} belongs to another file or entity "
                f"({checkpoint.source}, {checkpoint.entity}); --restart sends this file from the start"
            )
        if checkpoint is not None and checkpoint.complete:
            out.line(
                f"{args.file} was backfilled completely already ({checkpoint_path}); --restart sends it again"
            )
            out.document({"file": args.file, "entity": entity.name, "complete": True, "alreadyComplete": True})
            return NOTHING_TO_DO
        resumed_at = checkpoint.next_line if checkpoint is not None else 1
        state = checkpoint or Checkpoint(args.file, fingerprint, entity.name)
        counts = state.counts or Counts()
        state.counts = counts
        if resumed_at > 1:
            out.note(f"resuming at line {resumed_at} ({checkpoint_path})")
        sender = runtime.deliverer(settings)
        progress = Progress("backfill", runtime.count_lines(args.file), out.stderr, enabled=args.progress)
        progress.done = max(0, resumed_at - 2)
        sent_this_run = 0
        failure: str | None = None
        try:
            with rejects_path.open("a", encoding="utf-8") as rejects_file:
                chunk: list[runtime.Record] = []
                for row in rows:
                    if row.line < resumed_at:
                        continue
                    chunk.append(source.record(row))
                    if len(chunk) >= args.chunk_rows:
                        failure = _send_chunk(chunk, entity, sender, settings, counts, rejects_file, state)
                        sent_this_run += len(chunk)
                        _after_chunk(state, checkpoint_path, chunk, failure, progress, counts)
                        chunk = []
                        if failure:
                            break
                if chunk and not failure:
                    failure = _send_chunk(chunk, entity, sender, settings, counts, rejects_file, state)
                    sent_this_run += len(chunk)
                    _after_chunk(state, checkpoint_path, chunk, failure, progress, counts)
        except KeyboardInterrupt:
            progress.finish()
            out.error(
                f"interrupted: lines before {state.next_line} are done ({checkpoint_path}); "
                "the same command resumes there"
            )
            return INTERRUPTED
        if not failure:
            state.complete = True
            state.save(checkpoint_path)
        progress.finish(delivered=counts.delivered, rejected=counts.rejected)
    elapsed = time.monotonic() - started
    document = {
        "file": args.file,
        "entity": entity.name,
        "target": settings.target,
        "resumedAtLine": resumed_at,
        "complete": state.complete,
        "nextLine": state.next_line,
        "counts": asdict(counts),
        "rowsThisRun": sent_this_run,
        "seconds": round(elapsed, 1),
        "recordsPerSecond": round(sent_this_run / elapsed, 1) if elapsed > 0 else None,
        "checkpoint": str(checkpoint_path),
        "rejectsFile": str(rejects_path) if counts.rejected else None,
        "failure": failure,
    }
    out.document(document)
    _print_report(out, document, counts)
    if failure:
        out.error(f"stopped at line {state.next_line}: {failure}; the same command resumes there once fixed")
        return PROBLEMS
    return PROBLEMS if counts.rejected else OK


def _send_chunk(
    chunk: list[runtime.Record],
    entity: runtime.Entity,
    sender: Any,
    settings: Any,
    counts: Counts,
    rejects_file: Any,
    state: Checkpoint,
) -> str | None:
    """Deliver one chunk; count it and write its rejects unless some records failed (then nothing is counted)."""
    prepared: list[runtime.Prepared] = []
    rejected: list[tuple[runtime.Record, runtime.Rejection]] = []
    for record in chunk:
        checked = runtime.check(entity, record, settings.default_event_type)
        if isinstance(checked, runtime.Rejection):
            rejected.append((record, checked))
        else:
            prepared.append(checked)
    result = runtime.deliver(sender, prepared)
    counts.apiCalls += result.api_calls
    counts.throttledCalls += result.throttled_calls
    if result.failed:
        # NOTE: the chunk is sent again on resume, so its rejects are written then, not twice.
        return f"{len(result.failed)} record(s) not delivered: {result.failed[0][1]}"
    rejected.extend(result.rejected)
    rejected.sort(key=lambda pair: pair[0].source.line or 0)
    for record, rejection in rejected:
        rejects_file.write(runtime.reject_message(entity.name, record, rejection) + "\n")
    rejects_file.flush()
    counts.rows += len(chunk)
    counts.delivered += result.delivered
    counts.superseded += result.superseded
    counts.rejected += len(rejected)
    return None


def _after_chunk(
    state: Checkpoint,
    path: Path,
    chunk: list[runtime.Record],
    failure: str | None,
    progress: Progress,
    counts: Counts,
) -> None:
    if failure:
        state.next_line = chunk[0].source.line or state.next_line
    else:
        state.next_line = (chunk[-1].source.line or 0) + 1
    state.save(path)
    progress.advance(len(chunk), delivered=counts.delivered, rejected=counts.rejected)


def _print_report(out: Output, document: dict[str, Any], counts: Counts) -> None:
    status = "complete" if document["complete"] else f"stopped before line {document['nextLine']}"
    out.line(f"{document['file']} -> {document['entity']} ({document['target']}): {status}")
    if document["resumedAtLine"] > 1:
        out.line(f"  resumed at line {document['resumedAtLine']}; {document['rowsThisRun']} rows this run")
    out.line(
        f"  rows {counts.rows}: delivered {counts.delivered}, superseded by a later row {counts.superseded}, "
        f"rejected {counts.rejected}"
    )
    out.line(
        f"  {counts.apiCalls} calls ({counts.throttledCalls} throttled) in {document['seconds']} s"
        + (f", {document['recordsPerSecond']} records/s" if document["recordsPerSecond"] else "")
    )
    if document["rejectsFile"]:
        out.line(f"  rejected rows with their reasons: {document['rejectsFile']} (replay --from-file reads it)")
