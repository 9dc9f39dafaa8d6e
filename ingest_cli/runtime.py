"""The one place the command line touches the function runtime (``functions/personalize_ingest``).

Every command reads, validates, batches, sends and sets aside records with the functions' own code, through the
narrowest public parts of it: the row reader (:func:`personalize_ingest.s3objects.iter_rows`,
:func:`~personalize_ingest.s3objects.open_object`), :func:`personalize_ingest.records.prepare`, the
:class:`~personalize_ingest.delivery.Deliverer` and the reject message format
(:func:`personalize_ingest.rejects.reject_message`). When the runtime's internals move, only this module changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# NOTE: in a checkout the runtime package sits in functions/ (its Lambda asset root), not at the top level: an
# editable install maps it, `python -m ingest_cli` from the repository finds it here.
_FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
if _FUNCTIONS_DIR.is_dir() and str(_FUNCTIONS_DIR) not in sys.path:
    sys.path.append(str(_FUNCTIONS_DIR))

from personalize_ingest.config import ConfigurationError as ConfigurationError  # noqa: E402
from personalize_ingest.config import Settings  # noqa: E402
from personalize_ingest.deadline import Deadline  # noqa: E402
from personalize_ingest.delivery import Deliverer  # noqa: E402
from personalize_ingest.entities import ENTITIES as ENTITIES  # noqa: E402
from personalize_ingest.entities import Entity as Entity  # noqa: E402
from personalize_ingest.model import Prepared as Prepared  # noqa: E402
from personalize_ingest.model import Record as Record  # noqa: E402
from personalize_ingest.model import RecordRejected, SourceRef  # noqa: E402
from personalize_ingest.model import Rejection as Rejection  # noqa: E402
from personalize_ingest.observability import ENTITY_DIMENSION as ENTITY_DIMENSION  # noqa: E402
from personalize_ingest.observability import RECORDS_DELIVERED as RECORDS_DELIVERED  # noqa: E402
from personalize_ingest.observability import RECORDS_FAILED as RECORDS_FAILED  # noqa: E402
from personalize_ingest.observability import RECORDS_REJECTED as RECORDS_REJECTED  # noqa: E402
from personalize_ingest.observability import logger as _runtime_logger  # noqa: E402
from personalize_ingest.records import prepare  # noqa: E402
from personalize_ingest.rejects import reject_message as reject_message  # noqa: E402
from personalize_ingest.s3objects import ObjectFormatError, ObjectGone, Row, iter_rows, open_object  # noqa: E402
from personalize_ingest.sources import ObjectRef  # noqa: E402

LOCAL_FILE_BUCKET = "local-file"
"""Stands in for the bucket of a local file's rows, so their source identity (and the eventId derived from it for
interactions) is that of an object: the file's name, its content digest and the line."""
NO_DEADLINE_MS = 15 * 60 * 1000
"""What the deadline of a command-line delivery reports as left: Lambda's longest timeout, so per-attempt timeouts
are the runtime's usual ones (at most 10 s) and no call is cut short by a clock a laptop does not have."""


class InputError(Exception):
    """The input cannot be read at all (missing file or object, bad CSV header); the message says which."""


def route_runtime_logs(level: str) -> Callable[[], None]:
    """Send the runtime's JSON logs to stderr at ``level``: stdout carries only the command's own output.

    Returns what puts the logger back as it was (the command may run inside a longer-lived process).
    """
    previous_level = logging.getLogger(_runtime_logger.name).level
    handlers = [h for h in _runtime_logger.handlers if isinstance(h, logging.StreamHandler)]
    previous_streams = [h.stream for h in handlers]
    _runtime_logger.setLevel(level)
    for handler in handlers:
        # NOTE: the current sys.stderr, looked up per command (a test harness may have replaced it).
        handler.stream = sys.stderr

    def restore() -> None:
        _runtime_logger.setLevel(previous_level)
        for handler, stream in zip(handlers, previous_streams, strict=True):
            handler.stream = stream

    return restore


def entity_named(name: str) -> Entity:
    """The entity called ``name``; :class:`InputError` listing the known ones otherwise."""
    try:
        return ENTITIES[name]
    except KeyError:
        raise InputError(f"unknown entity {name!r}: expected one of {', '.join(ENTITIES)}") from None


@dataclass(frozen=True, slots=True)
class Source:
    """A file to read: a local path or ``s3://bucket/key``, with what names its rows."""

    location: str
    bucket: str
    key: str
    digest: str | None
    """Local files: SHA-256 of the content (in the rows' source identity); None for S3 (the ETag is)."""
    etag: str | None
    arrival_time: float
    """Time used for records without a timestamp: the file's modification time, as S3's event time would be."""

    def source_ref(self, line: int) -> SourceRef:
        return SourceRef(
            event_source="aws:s3",
            bucket=self.bucket,
            key=self.key,
            etag=self.etag if self.digest is None else self.digest,
            line=line,
        )

    def record(self, row: Row) -> Record:
        """The record the function would build from this row."""
        return Record(
            self.location, self.source_ref(row.line), row.value, self.arrival_time, decode_error=row.error
        )


@contextmanager
def open_source(location: str, s3_client: Any = None) -> Iterator[tuple[Source, Iterator[Row]]]:
    """Open a local file or ``s3://bucket/key``; yield its description and rows, read as a function reads them.

    Raises
    ------
    InputError
        when the file or object cannot be opened or its CSV header cannot be read.
    """
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://") :].partition("/")
        if not bucket or not key:
            raise InputError(f"{location}: expected s3://BUCKET/KEY")
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        try:
            head = s3_client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore ClientError/BotoCoreError: the message says which
            raise InputError(f"{location} cannot be read: {exc}") from exc
        etag = str(head.get("ETag", "")).strip('"') or None
        source = Source(location, bucket, key, None, etag, head["LastModified"].timestamp())
        ref = ObjectRef(bucket, key, head.get("VersionId"), etag, source.arrival_time)
        try:
            with open_object(s3_client, ref) as opened:
                yield source, _rows(iter_rows(opened.body, key), location)
        except ObjectGone as gone:
            raise InputError(f"{location} cannot be read: {gone}") from gone
        return
    path = Path(location)
    try:
        digest = _sha256(path)
        stream: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise InputError(f"{location} cannot be read: {exc.strerror or exc}") from exc
    source = Source(location, LOCAL_FILE_BUCKET, path.name, digest, None, path.stat().st_mtime)
    with stream:
        yield source, _rows(iter_rows(stream, path.name), location)


def _rows(rows: Iterator[Row], location: str) -> Iterator[Row]:
    try:
        yield from rows
    except ObjectFormatError as exc:
        raise InputError(f"{location}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_lines(location: str) -> int | None:
    """Physical lines of a local file (gzip read through), for an ETA; None for S3 or an unreadable file."""
    if location.startswith("s3://"):
        return None
    import gzip

    try:
        with Path(location).open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with gzip.open(location, "rb") if gzipped else Path(location).open("rb") as stream:
            return sum(block.count(b"\n") for block in iter(lambda: stream.read(1 << 20), b""))
    except (OSError, EOFError):
        return None


def check(entity: Entity, record: Record, default_event_type: str | None = None) -> Prepared | Rejection:
    """Normalise and validate ``record`` as the entity's function does: the wire-ready element, or why not."""
    try:
        return prepare(entity, record, default_event_type=default_event_type)
    except RecordRejected as refused:
        return refused.rejection


_FIELD_FIRST = re.compile(
    r"^(?:unknown field '(?P<unknown>[^']+)'|(?P<field>[A-Za-z_][\w.\[\]]*) (?:is|must|has|does|holds)\b)"
)
_SUGGESTION = re.compile(r"did you mean '([^']+)'\?")


def problem(line: int | None, rejection: Rejection) -> dict[str, Any]:
    """A rejection as ``validate`` reports it: line, code, reason, and the field and suggestion the reason names.

    NOTE: the runtime's reasons start with the field they are about ("ITEM_ID is required ...", "unknown field
    'itemID' ...; did you mean 'itemId'?"); the field and suggestion are read from there, None when a reason is
    about the line itself (invalid JSON, encoding).
    """
    match = _FIELD_FIRST.match(rejection.reason)
    field = (match.group("unknown") or match.group("field")) if match else None
    suggestion = _SUGGESTION.search(rejection.reason)
    return {
        "line": line,
        "code": rejection.code,
        "field": None if field == "line" else field,
        "reason": rejection.reason,
        "suggestion": suggestion.group(1) if suggestion else None,
    }


def record_from_reject(entity: Entity, message: Mapping[str, Any], value: Any, arrival_time: float) -> Record:
    """A record rebuilt from a reject message (``source`` keeps its place), holding ``value``."""
    source = message.get("source") or {}
    ref = SourceRef(
        event_source=str(source.get("eventSource", "replay")),
        arn=source.get("arn"),
        sequence_number=source.get("sequenceNumber"),
        sub_sequence_number=source.get("subSequenceNumber"),
        message_id=source.get("messageId"),
        bucket=source.get("bucket"),
        key=source.get("key"),
        version_id=source.get("versionId"),
        etag=source.get("etag"),
        line=source.get("line"),
        index=source.get("index"),
    )
    return Record(f"replay:{entity.name}", ref, value, arrival_time)


# --------------------------------------------------------------------------------------------------- delivery


class _NoLambdaClock:
    """The Lambda context's one method, for a delivery that runs outside Lambda (see NO_DEADLINE_MS)."""

    def get_remaining_time_in_millis(self) -> int:
        return NO_DEADLINE_MS


def settings_for(entity: Entity, target: str | None, environ: Mapping[str, str]) -> Settings:
    """The entity's function settings from ``environ`` (the same variables), with ``target`` when given.

    Raises
    ------
    ConfigurationError
        naming the variable that is missing or malformed (as the function would).
    """
    env = dict(environ)
    if target:
        env[entity.target_variable] = target
    return Settings.from_env(entity, env)


@dataclass(slots=True)
class Delivery:
    """What one :func:`deliver` call did with each record (the runtime's report, flattened)."""

    delivered: int = 0
    superseded: int = 0
    rejected: list[tuple[Record, Rejection]] = field(default_factory=list)
    failed: list[tuple[Record, str]] = field(default_factory=list)
    api_calls: int = 0
    throttled_calls: int = 0


def deliverer(settings: Settings) -> Deliverer:
    """The entity's deliverer (its rate limit, retries and concurrency), without a Lambda clock."""
    return Deliverer(settings, Deadline(_NoLambdaClock(), settings.deadline_margin_ms))


def deliver(sender: Deliverer, prepared: Sequence[Prepared]) -> Delivery:
    """Send ``prepared`` through ``sender``; every record ends delivered, superseded, rejected or failed."""
    report = sender.deliver(prepared)
    return Delivery(
        delivered=len(report.delivered),
        superseded=len(report.superseded),
        rejected=[(p.record, rejection) for p, rejection in report.rejected],
        failed=[(p.record, reason) for p, reason in report.failed],
        api_calls=report.api_calls,
        throttled_calls=report.throttled_calls,
    )


def now() -> float:
    return time.time()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
