"""Read one announced S3 object to its end or to the deadline, in chunks, and write its result file.

The invocation hands each :class:`~personalize_ingest.sources.ObjectRef` to :meth:`ObjectStage.handle`; the stage
opens the object, turns its rows into records, delivers them chunk by chunk through the invocation
(:class:`RowSink`), continues through the source queue when the deadline comes, and writes the result file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest.batching import ChunkRule, lane_key, max_per_call
from personalize_ingest.model import Prepared, Record, RecordRejected, Rejection
from personalize_ingest.observability import logger
from personalize_ingest.records import prepare
from personalize_ingest.results import COMPLETE, CONTINUED, INCOMPLETE, UNREADABLE, ObjectResult, write_result
from personalize_ingest.s3objects import ObjectFormatError, ObjectGone, iter_rows, open_object
from personalize_ingest.sources import BatchItem, ObjectRef, continuation_body

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from personalize_ingest.config import Settings
    from personalize_ingest.deadline import Deadline
    from personalize_ingest.outcome import Outcome
    from personalize_ingest.pipeline import Handled
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


class RowSink(Protocol):
    """What the stage needs of the invocation: its settings, deadline and outcome, and delivery of records."""

    settings: Settings
    deadline: Deadline
    outcome: Outcome

    def handle_records(self, records: Sequence[Record]) -> Handled:
        """Prepare, deliver and set aside ``records``; account every one of them in the outcome."""
        ...

    def handle_prepared(
        self, received: int, prepared: list[Prepared], rejected: list[tuple[Record, Rejection]]
    ) -> Handled:
        """Deliver ``prepared`` and set aside ``rejected`` (``received`` records in all); account every one."""
        ...


@dataclass(slots=True)
class _Chunk:
    """Rows of an S3 object read and prepared together."""

    first_line: int
    last_line: int = 0
    rows: int = 0
    prepared: list[Prepared] = field(default_factory=list)
    rejected: list[tuple[Record, Rejection]] = field(default_factory=list)


class ObjectStage:
    """Streams announced S3 objects of one invocation into its :class:`RowSink`.

    Parameters
    ----------
    sink
        The invocation: rows become records it delivers, rejects and accounts.
    client
        ``client("s3")`` / ``client("sqs")``: a boto3 client whose timeouts fit the time left.
    """

    def __init__(self, sink: RowSink, client: Callable[[str], Any]) -> None:
        self.sink = sink
        self.settings = sink.settings
        self.entity = sink.settings.entity
        self.deadline = sink.deadline
        self._client = client

    def handle(self, item: BatchItem, ref: ObjectRef) -> None:
        """Read ``ref`` (announced by ``item``) from its start line; every row ends accounted in the outcome."""
        outcome = self.sink.outcome
        where = {"item": item.item_id, **ref.describe(), "start_line": ref.start_line}
        logger.info("reading S3 object", extra=where)
        result = ObjectResult.resuming(ref.start_line, ref.progress)
        status = COMPLETE
        next_line: int | None = None
        try:
            with open_object(self._client("s3"), ref) as body:
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
            self._account_rows(self.sink.handle_records([header]), result)
        except (ClientError, BotoCoreError) as exc:
            outcome.mark_failed(item.item_id, f"reading s3://{ref.bucket}/{ref.key} failed: {exc}")
            logger.error(
                "reading S3 object failed: the item is reported for retry", extra={**where, "error": str(exc)}
            )
            return
        if (
            status == CONTINUED
            and next_line is not None
            and not self._send_continuation(item, ref, next_line, result)
        ):
            status = INCOMPLETE
        if status != CONTINUED and outcome.is_failed(item.item_id):
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
                self.sink.outcome.mark_failed(
                    item.item_id, "the deadline came before the object was read to its end"
                )
                return INCOMPLETE, None
            started_ms = self.deadline.remaining_ms()
            self._account_rows(self.sink.handle_prepared(chunk.rows, chunk.prepared, chunk.rejected), result)
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

    def _send_continuation(self, item: BatchItem, ref: ObjectRef, line: int, result: ObjectResult) -> bool:
        assert item.queue_arn is not None
        body = continuation_body(ref, line, result.progress())
        arn_parts = item.queue_arn.split(":")
        where = {"item": item.item_id, **ref.describe(), "next_line": line}
        try:
            sqs: SQSClient = self._client("sqs")
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
            self.sink.outcome.mark_failed(item.item_id, f"the continuation message could not be sent: {exc}")
            logger.error(
                "continuation not sent: the message is reported for retry", extra={**where, "error": str(exc)}
            )
            return False
        logger.info("deadline near: continuation sent, the message is acknowledged", extra=where)
        return True

    def _write_result(self, ref: ObjectRef, document: dict[str, Any]) -> None:
        try:
            write_result(self._client("s3"), ref, document)
        except (ClientError, BotoCoreError) as exc:
            # NOTE: the result file is a report for producers; failing the rows it describes would only send
            # them again.
            logger.error("result file not written", extra={**ref.describe(), "error": str(exc)})
