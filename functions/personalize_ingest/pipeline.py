"""The pipeline of one invocation: source event -> records -> prepared -> calls -> outcome -> response.

``make_handler(entity)`` builds a function's ``lambda_handler``. Per invocation it reads the settings (a
misconfiguration raises before any record is touched), decodes the event into batch items, prepares each record,
delivers the valid ones with one :class:`~personalize_ingest.delivery.Deliverer`, sends the invalid ones to the
rejects queue, streams announced S3 objects in chunks, and returns the partial batch response. Every record ends
delivered, rejected (it reached the rejects queue) or failed (its batch item is reported).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest import bulk_import
from personalize_ingest.batching import ChunkRule, lane_key, max_per_call
from personalize_ingest.config import ConfigurationError, Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.delivery import Deliverer
from personalize_ingest.entities import Entity
from personalize_ingest.model import Prepared, Record, RecordRejected, Rejection
from personalize_ingest.observability import emit_metrics, logger
from personalize_ingest.outcome import Outcome, PartialItemFailureResponse
from personalize_ingest.records import prepare
from personalize_ingest.rejects import RejectsSender
from personalize_ingest.results import COMPLETE, CONTINUED, INCOMPLETE, UNREADABLE, ObjectResult, write_result
from personalize_ingest.s3objects import ObjectFormatError, ObjectGone, iter_rows, open_object
from personalize_ingest.sources import (
    FIRST_LINE,
    BatchItem,
    ObjectRef,
    SourceEvent,
    continuation_body,
    decode_event,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sqs import SQSClient

    from personalize_ingest.s3objects import Row

S3_CHUNK_ROWS = 500
"""Fewest rows of an S3 object read, prepared and delivered together (unless the object ends first)."""
S3_CHUNK_MAX_ROWS = 5_000
"""Most rows of a chunk: bounds memory whatever the object's size (a full chunk: ~6 MiB of Python objects)."""
LANES_PER_WORKER = 4
"""A chunk closes (from S3_CHUNK_ROWS rows on) once it holds this many lanes per delivery thread. Sessions are of
unequal length (MovieLens users: 20 to 2,000+ ratings); with several per thread, started longest first, every
thread still has work while the longest one runs. Measured on 5,000 ratings sorted by user at 25 ms per call:
13.5 s wall with 500-row chunks, 4.7 s with 2 lanes per thread, 3.1 s with 4."""
CHUNK_COST_FACTOR = 1.5
"""A chunk starts only when the time before the margin exceeds this multiple of its expected cost (the last
chunk's cost per row times S3_CHUNK_MAX_ROWS)."""

SUPPORT_CALL_ATTEMPTS = 3
"""Attempts (first try included) of the supporting SQS and S3 calls: rejects, continuations, reads, results."""
_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()

Handler = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]


class IngestIncomplete(RuntimeError):
    """Raised at the end of a direct S3 invocation when a row could not be handled: Lambda's asynchronous
    retry and on-failure destination then apply to the whole event."""


def make_handler(entity: Entity) -> Handler:
    """Build the ``lambda_handler`` of the function that ingests ``entity``.

    The handler returns ``{"batchItemFailures": [{"itemIdentifier": id}, ...]}`` for Kinesis and SQS events and
    raises :class:`IngestIncomplete` for a direct S3 invocation whose objects were not fully handled.
    """

    # NOTE: log_event=False overrides POWERTOOLS_LOGGER_LOG_EVENT: the event holds user ids, item ids and
    # properties, which are never logged above DEBUG.
    @logger.inject_lambda_context(clear_state=True, log_event=False)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            settings = Settings.from_env(entity)
        except ConfigurationError:
            logger.exception("the function is misconfigured; no record was touched")
            raise
        logger.append_keys(entity=entity.name)
        invocation = Invocation(settings, Deadline(context, settings.deadline_margin_ms))
        try:
            return dict(invocation.run(event))
        finally:
            emit_metrics(entity.name, invocation.outcome.tally)

    return lambda_handler


@dataclass(slots=True)
class Handled:
    """What happened to a list of records handed to :meth:`Invocation.handle_records`."""

    delivered: list[Prepared] = field(default_factory=list)
    superseded: list[Prepared] = field(default_factory=list)
    rejected: list[tuple[Record, Rejection]] = field(default_factory=list)
    failed: list[tuple[Record, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Chunk:
    """Rows of an S3 object read and prepared together."""

    first_line: int
    last_line: int = 0
    rows: int = 0
    prepared: list[Prepared] = field(default_factory=list)
    rejected: list[tuple[Record, Rejection]] = field(default_factory=list)


class Invocation:
    """One invocation's state: settings, deadline, deliverer, rejects sender and the outcome being built.

    Parameters
    ----------
    settings
        The function's validated settings.
    deadline
        The invocation's deadline (context time minus the safety margin).
    """

    def __init__(self, settings: Settings, deadline: Deadline) -> None:
        self.settings = settings
        self.entity = settings.entity
        self.deadline = deadline
        self.outcome = Outcome(())
        self._deliverer: Deliverer | None = None
        # NOTE: the client is chosen per SendMessageBatch, so its timeouts fit the time left at that moment.
        self._rejects = RejectsSender(
            settings.rejects_queue_url, self.entity.name, client_factory=lambda: aws_client("sqs", deadline)
        )

    # ------------------------------------------------------------------------------------------------ flow

    def run(self, event: dict[str, Any]) -> PartialItemFailureResponse:
        """Process the event and return the partial batch response (raise for a direct S3 invocation)."""
        source_event = decode_event(event)
        self.outcome = Outcome(source_event.items, fifo=source_event.fifo)
        logger.info(
            "invocation started",
            extra={
                "event_source": source_event.event_source,
                "items": len(source_event.items),
                "fifo": source_event.fifo,
                "remaining_ms": self.deadline.remaining_ms(),
            },
        )
        for wave in _waves(source_event):
            self._process_wave(wave, source_event)
        response = self.outcome.response()
        tally = self.outcome.tally
        logger.info(
            "invocation finished",
            extra={
                "received": tally.received,
                "delivered": tally.delivered,
                "superseded": tally.superseded,
                "rejected": tally.rejected,
                "failed": tally.failed,
                "failed_items": len(response["batchItemFailures"]),
            },
        )
        if source_event.direct_s3 and response["batchItemFailures"]:
            reasons = self.outcome.failure_reasons()
            raise IngestIncomplete(
                f"{len(reasons)} S3 object(s) not fully ingested: "
                + "; ".join(f"{item}: {reason}" for item, reason in reasons.items())
            )
        return response

    def _process_wave(self, items: Sequence[BatchItem], source_event: SourceEvent) -> None:
        records: list[Record] = []
        to_read: list[BatchItem] = []
        for item in items:
            if self.outcome.group_stopped(item):
                # NOTE: FIFO order holds per message group: after a failure the rest of the group is reported
                # failed without being sent, and comes back in order on the next receive.
                self.outcome.tally.received += len(item.records)
                self.outcome.count_failed_records([r.item_id for r in item.records], "an earlier message failed")
                self.outcome.mark_failed(item.item_id, "an earlier message of its FIFO group failed")
                logger.info("skipped: earlier message of the group failed", extra={"item": item.item_id})
                continue
            if item.ignored is not None:
                logger.info("nothing to ingest", extra={"item": item.item_id, "why": item.ignored})
                continue
            records.extend(item.records)
            if item.objects:
                to_read.append(item)
        if records:
            self.handle_records(records)
        for item in to_read:
            for ref in item.objects:
                if self.outcome.is_failed(item.item_id):
                    break
                self._process_object(item, ref, source_event)

    # ------------------------------------------------------------------------------------------------ records

    def handle_records(self, records: Sequence[Record]) -> Handled:
        """Prepare, deliver and set aside ``records``; account every one of them in the outcome."""
        prepared: list[Prepared] = []
        rejected: list[tuple[Record, Rejection]] = []
        for record in records:
            self._prepare_into(record, prepared, rejected)
        return self.handle_prepared(len(records), prepared, rejected)

    def _prepare_into(
        self, record: Record, prepared: list[Prepared], rejected: list[tuple[Record, Rejection]]
    ) -> Prepared | None:
        try:
            ready = prepare(self.entity, record, default_event_type=self.settings.default_event_type)
        except RecordRejected as refused:
            rejected.append((record, refused.rejection))
            return None
        prepared.append(ready)
        return ready

    def handle_prepared(
        self, received: int, prepared: list[Prepared], rejected: list[tuple[Record, Rejection]]
    ) -> Handled:
        """Deliver ``prepared`` and set aside ``rejected`` (``received`` records in all); account every one."""
        handled = Handled(rejected=rejected)
        tally = self.outcome.tally
        tally.received += received
        if prepared:
            report = self.deliverer().deliver(prepared)
            tally.api_calls += report.api_calls
            tally.throttled_calls += report.throttled_calls
            tally.retries += report.retries
            handled.delivered = report.delivered
            handled.superseded = report.superseded
            handled.rejected.extend((p.record, rejection) for p, rejection in report.rejected)
            handled.failed.extend((p.record, reason) for p, reason in report.failed)
        if handled.superseded:
            logger.info(
                "superseded by later records of the same id", extra={"superseded": len(handled.superseded)}
            )
        not_sent = self._rejects.send(handled.rejected)
        if not_sent:
            unsent = {id(n.record) for n in not_sent}
            handled.rejected = [(r, j) for r, j in handled.rejected if id(r) not in unsent]
            handled.failed.extend((n.record, n.reason) for n in not_sent)
            logger.error(
                "rejected records could not be set aside: reported failed",
                extra={"records": len(not_sent), "reason": not_sent[0].reason},
            )
        for record, rejection in handled.rejected:
            logger.debug(
                "record rejected",
                extra={
                    "source": record.source.as_reject_source(),
                    "code": rejection.code,
                    "reason": rejection.reason,
                },
            )
        tally.delivered += len(handled.delivered)
        tally.superseded += len(handled.superseded)
        tally.rejected += len(handled.rejected)
        for record, reason in handled.failed:
            self.outcome.mark_failed(record.item_id, reason)
        tally.failed += len(handled.failed)
        if handled.failed:
            logger.warning(
                "records failed: their batch items are reported for retry",
                extra={
                    "records": len(handled.failed),
                    "items": sorted({r.item_id for r, _ in handled.failed})[:20],
                    "first_reason": handled.failed[0][1],
                },
            )
        return handled

    def deliverer(self) -> Deliverer:
        # NOTE: created on first use so an invocation holding only S3 test events or rejects opens no client.
        if self._deliverer is None:
            self._deliverer = Deliverer(self.settings, self.deadline)
        return self._deliverer

    # ------------------------------------------------------------------------------------------------ S3 objects

    def _process_object(self, item: BatchItem, ref: ObjectRef, source_event: SourceEvent) -> None:
        if ref.start_line == FIRST_LINE:
            # A new object may take the import route (functions/personalize_ingest/bulk_import.py) instead.
            routed = bulk_import.offer(self.entity, item, ref, self.deadline)
            if routed.failure is not None:
                self.outcome.mark_failed(item.item_id, routed.failure)
            if routed.taken:
                return
        where = {"item": item.item_id, **ref.describe(), "start_line": ref.start_line}
        logger.info("reading S3 object", extra=where)
        result = ObjectResult.resuming(ref.start_line, ref.progress)
        status = COMPLETE
        next_line: int | None = None
        try:
            with open_object(aws_client("s3", self.deadline), ref) as body:
                status, next_line = self._stream_rows(item, ref, iter_rows(body, ref.key, ref.start_line), result)
        except ObjectGone as gone:
            # NOTE: the announced version was replaced or deleted; the successor has its own notification.
            logger.warning("S3 object no longer there as announced: skipped", extra={**where, "why": str(gone)})
            return
        except ObjectFormatError as unreadable:
            result.error = str(unreadable)
            status = UNREADABLE
            header = Record(item.item_id, ref.source(line=1), None, ref.event_time)
            header.decode_error = Rejection("invalid_csv", str(unreadable))
            self._account_rows(self.handle_records([header]), result)
        except (ClientError, BotoCoreError) as exc:
            self.outcome.mark_failed(item.item_id, f"reading s3://{ref.bucket}/{ref.key} failed: {exc}")
            logger.error(
                "reading S3 object failed: the item is reported for retry", extra={**where, "error": str(exc)}
            )
            return
        if (
            status == CONTINUED
            and next_line is not None
            and not self._send_continuation(item, ref, next_line, result, source_event)
        ):
            status = INCOMPLETE
        if status != CONTINUED and self.outcome.is_failed(item.item_id):
            status = INCOMPLETE
        self._write_result(ref, result.document(ref, status, next_line if status == CONTINUED else None))
        logger.info(
            "S3 object processed",
            extra={**where, "status": status, "last_line": result.last_line, "next_line": next_line},
        )

    def _stream_rows(
        self, item: BatchItem, ref: ObjectRef, rows: Iterator[Row], result: ObjectResult
    ) -> tuple[str, int | None]:
        """Deliver the rows chunk by chunk; return (status, line to continue at).

        Chunks are delivered one after another: every call of a chunk has returned before the next chunk is
        sent, so a session's calls keep source order and a later version of an item is sent after an earlier
        one, also across chunks.
        """
        next_chunk_cost_ms = 0.0
        while True:
            chunk = self._read_chunk(item, ref, rows)
            if chunk is None:
                return COMPLETE, None
            if self._must_stop(next_chunk_cost_ms):
                if item.queue_arn is not None:
                    return CONTINUED, chunk.first_line
                # NOTE: a direct S3 invocation has no queue to continue through: the rows not read are failed
                # and the event raises, so Lambda's asynchronous retry reads the object again.
                self.outcome.mark_failed(item.item_id, "the deadline came before the object was read to its end")
                return INCOMPLETE, None
            started_ms = self.deadline.remaining_ms()
            self._account_rows(self.handle_prepared(chunk.rows, chunk.prepared, chunk.rejected), result)
            result.last_line = chunk.last_line
            # NOTE: chunks run from S3_CHUNK_ROWS to S3_CHUNK_MAX_ROWS rows; the next one is assumed to be as
            # large as a chunk can be, at the last one's cost per row.
            cost_ms = max(0, started_ms - self.deadline.remaining_ms())
            next_chunk_cost_ms = cost_ms * max(1.0, S3_CHUNK_MAX_ROWS / chunk.rows)
            if result.failed:
                # NOTE: the message or event is retried and reads the object again from its start line; reading
                # on would only send rows that retry sends again.
                return INCOMPLETE, None

    def _read_chunk(self, item: BatchItem, ref: ObjectRef, rows: Iterator[Row]) -> _Chunk | None:
        """Read and prepare rows until :attr:`chunk_rule` says the chunk is full; None at the object's end."""
        rule = self.chunk_rule
        chunk: _Chunk | None = None
        sessions: set[tuple[str | None, str | None]] = set()
        independent = 0
        per_call = max_per_call(self.entity)
        for row in rows:
            if chunk is None:
                chunk = _Chunk(first_line=row.line)
            record = Record(
                item.item_id, ref.source(line=row.line), row.value, ref.event_time, decode_error=row.error
            )
            chunk.rows += 1
            chunk.last_line = row.line
            ready = self._prepare_into(record, chunk.prepared, chunk.rejected)
            if ready is not None:
                key = lane_key(self.entity, ready)
                if key is None:
                    independent += 1
                else:
                    sessions.add(key)
            independent_calls = (independent + per_call - 1) // per_call
            if rule.is_full(chunk.rows, len(sessions) + independent_calls):
                break
        return chunk

    @property
    def chunk_rule(self) -> ChunkRule:
        """How many rows of an S3 object go into one chunk (:class:`~personalize_ingest.batching.ChunkRule`)."""
        return ChunkRule(
            min_rows=S3_CHUNK_ROWS,
            max_rows=S3_CHUNK_MAX_ROWS,
            lanes_wanted=LANES_PER_WORKER * self.settings.max_concurrent_calls,
        )

    def _must_stop(self, next_chunk_cost_ms: float) -> bool:
        if self.deadline.exhausted():
            return True
        before_margin_ms = self.deadline.remaining_ms() - self.deadline.margin_ms
        return before_margin_ms < next_chunk_cost_ms * CHUNK_COST_FACTOR

    @staticmethod
    def _account_rows(handled: Handled, result: ObjectResult) -> None:
        result.delivered += len(handled.delivered)
        result.superseded += len(handled.superseded)
        for record, rejection in handled.rejected:
            result.add_reject(record.source.line, rejection)
        result.failed += len(handled.failed)

    def _send_continuation(
        self, item: BatchItem, ref: ObjectRef, line: int, result: ObjectResult, source_event: SourceEvent
    ) -> bool:
        assert item.queue_arn is not None
        body = continuation_body(ref, line, result.progress())
        arn_parts = item.queue_arn.split(":")
        where = {"item": item.item_id, **ref.describe(), "next_line": line}
        try:
            sqs: SQSClient = aws_client("sqs", self.deadline)
            queue_url = sqs.get_queue_url(QueueName=arn_parts[5], QueueOwnerAWSAccountId=arn_parts[4])["QueueUrl"]
            if item.group_id is not None:
                # NOTE: FIFO: the same group keeps the object's rows in order; the deduplication id is fixed by
                # the object and line, so a retried send within five minutes is dropped by SQS.
                dedup = hashlib.sha256(body.encode()).hexdigest()
                sqs.send_message(
                    QueueUrl=queue_url,
                    MessageBody=body,
                    MessageGroupId=item.group_id,
                    MessageDeduplicationId=dedup,
                )
            else:
                sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        except (ClientError, BotoCoreError, IndexError) as exc:
            self.outcome.mark_failed(item.item_id, f"the continuation message could not be sent: {exc}")
            logger.error(
                "continuation not sent: the message is reported for retry", extra={**where, "error": str(exc)}
            )
            return False
        logger.info("deadline near: continuation sent, the message is acknowledged", extra=where)
        return True

    def _write_result(self, ref: ObjectRef, document: dict[str, Any]) -> None:
        try:
            write_result(aws_client("s3", self.deadline), ref, document)
        except (ClientError, BotoCoreError) as exc:
            # NOTE: the result file is a report for producers; failing the rows it describes would only send
            # them again.
            logger.error("result file not written", extra={**ref.describe(), "error": str(exc)})


def _waves(source_event: SourceEvent) -> Iterable[list[BatchItem]]:
    """All items at once; on FIFO, the n-th message of every group together, so a failure can stop its group."""
    if not source_event.fifo:
        yield source_event.items
        return
    groups: dict[str | None, list[BatchItem]] = {}
    for item in source_event.items:
        groups.setdefault(item.group_id, []).append(item)
    depth = max(len(members) for members in groups.values())
    for position in range(depth):
        yield [members[position] for members in groups.values() if position < len(members)]


def aws_client(service: str, deadline: Deadline) -> Any:
    """The container's ``sqs`` or ``s3`` client for the time left in the invocation.

    Timeouts come from :meth:`Deadline.support_call_timeouts` (never botocore's 60 s defaults), so the supporting
    calls - also those made after the margin - end before Lambda stops the invocation. Clients are cached per
    timeouts and endpoint configuration (boto3's standard variables): a container keeps a handful of them.
    """
    connect_s, read_s = deadline.support_call_timeouts(SUPPORT_CALL_ATTEMPTS)
    endpoint_override = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
    key = (service, connect_s, read_s, endpoint_override, os.environ.get("AWS_ENDPOINT_URL"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            config = Config(
                connect_timeout=connect_s,
                read_timeout=read_s,
                retries={"mode": "standard", "total_max_attempts": SUPPORT_CALL_ATTEMPTS},
            )
            client = _clients[key] = boto3.client(service, config=config)  # type: ignore[call-overload]
        return client
