"""One read of one S3 object (or one byte range of it) in one invocation: rows -> chunks -> result.

The read resumes where its message says (a byte offset, so resuming costs the same anywhere in a plain object),
delivers chunk after chunk while the measured cost of the next chunk fits before the deadline's margin, and ends
in exactly one of: the object's end (``complete``), a continuation message pointing strictly past where it began
(``continued``; on a FIFO queue a progress marker and the message held for redelivery instead, see
:mod:`personalize_ingest.s3stage.progress`), a failed message (``incomplete`` / ``stopped``: the queue's retries
and dead-letter queue apply), or a record set aside naming why the rest cannot be read (``changed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest.batching import lane_key, max_per_call
from personalize_ingest.model import Record, RecordRejected, Rejection
from personalize_ingest.observability import logger
from personalize_ingest.results import (
    CHANGED,
    COMPLETE,
    CONTINUED,
    INCOMPLETE,
    STOPPED,
    UNREADABLE,
    ObjectResult,
    write_report,
)
from personalize_ingest.s3objects import (
    Layout,
    ObjectFormatError,
    ObjectGone,
    OpenedObject,
    Position,
    Row,
    iter_rows,
    iter_rows_at,
    open_object,
    read_layout,
)
from personalize_ingest.s3stage.chunks import Chunk, ChunkCost, in_runs, lines_of, merge_lines
from personalize_ingest.s3stage.fanout import may_fan_out, split_into_ranges
from personalize_ingest.s3stage.progress import forget, hold, receive_note
from personalize_ingest.s3stage.queueing import NotQueued, send_to_source_queue
from personalize_ingest.sources import ByteRange, continuation_body

if TYPE_CHECKING:
    from personalize_ingest.pipeline import Handled
    from personalize_ingest.s3stage.stage import ObjectStage
    from personalize_ingest.sources import BatchItem, ObjectRef

REJECT_FLUSH_ROWS = 10
"""Rejected rows of a chunk are set aside as soon as this many wait (one SendMessageBatch)."""
REJECT_FLUSH_BYTES = 192 * 1024
"""... or as soon as their rows take this many bytes (a SendMessageBatch carries at most 256 KiB)."""


class ObjectRead:
    """Reads ``ref`` (announced by ``item``) for ``stage``'s invocation; :meth:`run` accounts every row.

    ``marker`` is the key of the object's progress marker when ``item`` came from a FIFO queue: out of time, the
    read keeps its position there instead of sending a continuation (:mod:`personalize_ingest.s3stage.progress`).
    """

    def __init__(self, stage: ObjectStage, item: BatchItem, ref: ObjectRef, marker: str | None = None) -> None:
        self.stage = stage
        self.sink = stage.sink
        self.deadline = stage.deadline
        self.settings = stage.settings
        self.entity = stage.settings.entity
        self.item = item
        self.ref = ref
        self.marker = marker
        self.result = ObjectResult.resuming(ref.start_line, ref.progress)
        self.handled_at_start = self.result.handled
        self.etag_seen: str | None = None
        self.where = {"item": item.item_id, **ref.describe(), "start_line": ref.start_line, "hops": ref.hops}
        if ref.part is not None:
            self.where["range"] = ref.part.index

    @property
    def fresh(self) -> bool:
        """True for an object's announcement (not a continuation or a range)."""
        return self.ref.start_offset is None and self.ref.part is None and self.ref.start_line == 1

    # ------------------------------------------------------------------------------------------------ flow

    def run(self) -> None:
        """Read the object from the message's position to its end, the deadline or a stop; write its report."""
        logger.info("reading S3 object", extra=self.where)
        if self.ref.hops >= self.settings.s3_max_hops:
            self._stop(
                f"stopped after {self.ref.hops} continuations (S3_MAX_HOPS is {self.settings.s3_max_hops})"
                + receive_note(self)
            )
            self._finish(STOPPED)
            return
        status, resume = COMPLETE, None
        skip: tuple[tuple[int, int], ...] = ()
        try:
            with self._rows() as rows:
                if rows is None:
                    return
                status, resume, skip = self._stream(rows)
        except ObjectGone as gone:
            if self.fresh:
                # NOTE: the announced version was replaced or deleted before any row was read; the successor has
                # its own notification.
                logger.warning(
                    "S3 object no longer there as announced: skipped", extra={**self.where, "why": str(gone)}
                )
                return
            status = self._changed(str(gone))
        except ObjectFormatError as unreadable:
            self.result.error = str(unreadable)
            status = UNREADABLE
            header = Record(self.item.item_id, self.ref.source(line=1), None, self.ref.event_time)
            header.decode_error = Rejection("invalid_csv", str(unreadable))
            self._account(self.sink.handle_records([header]))
        except (ClientError, BotoCoreError) as exc:
            self.sink.outcome.mark_failed(
                self.item.item_id, f"reading s3://{self.ref.bucket}/{self.ref.key} failed: {exc}"
            )
            logger.error(
                "reading S3 object failed: the item is reported for retry", extra={**self.where, "error": str(exc)}
            )
            return
        self._finish(status, resume, skip)

    def _finish(self, status: str, resume: Position | None = None, skip: tuple[tuple[int, int], ...] = ()) -> None:
        if status == CONTINUED:
            assert resume is not None
            following = self.next_ref(start=resume, skip=skip, hops=self.ref.hops + 1)
            # NOTE: the result says "continued" before the continuation exists, so a fast continuation's final
            # result can never be overwritten by this one.
            self.report(status, resume)
            if self.marker is not None:
                if hold(self, following):
                    return
                status = INCOMPLETE
            elif self.queue([continuation_body(following)]):
                logger.info("deadline near: continuation sent, the message is acknowledged", extra=self.where)
                return
            status = INCOMPLETE
        if status in (COMPLETE, UNREADABLE) and self.sink.outcome.is_failed(self.item.item_id):
            status = INCOMPLETE
        self.report(status)
        if self.marker is not None and status in (COMPLETE, UNREADABLE, CHANGED):
            forget(self)
        logger.info(
            "S3 object processed",
            extra={**self.where, "status": status, "last_line": self.result.last_line, "error": self.result.error},
        )

    # ------------------------------------------------------------------------------------------------ rows

    @contextmanager
    def _rows(self) -> Iterator[Iterator[Row] | None]:
        """The rows still to read: from the object's start, or from the message's byte position.

        None when the object was fanned out into byte ranges instead (their messages read it).
        """
        s3 = self.stage.client("s3")
        ref = self.ref
        end = ref.part.end if ref.part is not None else None
        if ref.start_offset is None:
            with open_object(s3, ref) as opened:
                self.saw(opened)
                size = opened.size
                if not (self.fresh and may_fan_out(self.settings, self.item, size)):
                    yield self._from_start(opened)
                    return
            if split_into_ranges(self, size):
                yield None
                return
            with open_object(s3, ref) as opened:
                yield self._from_start(opened)
            return
        start = Position(ref.start_offset, ref.start_line)
        with open_object(s3, ref) as head:
            self.saw(head)
            layout = read_layout(head.body, ref.key)
        if layout is None:
            yield iter(())
        elif layout.gzip:
            # NOTE: a gzip stream cannot be entered in the middle: the bytes before the position are decompressed
            # and discarded without being split into rows (zlib runs at hundreds of MB/s, parsing at a few).
            with open_object(s3, ref) as opened:
                yield iter_rows(opened.body, ref.key, start=start, end=end)
        else:
            with open_object(s3, ref, offset=start.offset) as opened:
                yield iter_rows_at(opened.body, layout, start, end)

    def _from_start(self, opened: OpenedObject) -> Iterator[Row]:
        rows = iter_rows(opened.body, self.ref.key, layout_seen=self.check_layout)
        if self.ref.start_line > 1:
            # NOTE: a continuation of an earlier version of this function names its line only.
            rows = (row for row in rows if row.line >= self.ref.start_line)
        return rows

    def saw(self, opened: OpenedObject) -> None:
        """Remember the ETag GetObject returned (it pins later reads when the announcement named none)."""
        self.etag_seen = opened.etag

    def check_layout(self, layout: Layout) -> None:
        """Refuse (:class:`ObjectFormatError`) an object whose CSV header cannot be this entity's."""
        problem = self.stage.header_problem(layout)
        if problem is not None:
            raise ObjectFormatError(problem)

    def _stream(self, rows: Iterator[Row]) -> tuple[str, Position | None, tuple[tuple[int, int], ...]]:
        """Deliver the rows chunk by chunk; return (status, position to continue at, lines to skip there).

        Chunks are delivered one after another: every call of a chunk has returned before the next chunk is
        sent, so a session's calls keep source order and a later version of an item is sent after an earlier
        one, also across chunks.
        """
        ref = self.ref
        skip = ref.skip_lines
        if skip:
            rows = (row for row in rows if not in_runs(skip, row.line))
        cost = ChunkCost()
        tally = self.sink.outcome.tally
        while True:
            if self._must_stop(cost):
                first = next(rows, None)
                if first is None:
                    return COMPLETE, None, ()
                return self._out_of_time(Position(first.offset, first.line), skip)
            started_ms = self.deadline.remaining_ms()
            chunk = self._read_chunk(rows)
            if chunk is None:
                return COMPLETE, None, ()
            read_ms = started_ms - self.deadline.remaining_ms()
            calls_before = tally.api_calls
            self._deliver(chunk, self.sink.handle_prepared(chunk.prepared, chunk.rejected))
            cost.add(
                chunk.rows,
                read_ms,
                started_ms - read_ms - self.deadline.remaining_ms(),
                tally.api_calls - calls_before,
            )
            resume = chunk.resume_point()
            if resume is None:
                self.result.last_line = chunk.last_line
                continue
            if not self.deadline.exhausted() or self.item.queue_arn is None:
                # NOTE: rows failed for a reason a retry may cure (throttling, outage, configuration): the message
                # or event is retried from its own start; reading on would only send rows the retry sends again.
                return INCOMPLETE, None, ()
            # NOTE: the deadline came while the chunk's calls ran: continue at the first row not accounted for,
            # skipping the later rows that were (other sessions' calls that had returned).
            carried = lines_of(skip, resume.line) + chunk.accounted_after(resume.line)
            self.result.last_line = max(self.result.last_line, resume.line - 1)
            ending = self._out_of_time(resume, merge_lines(carried))
            if ending[0] == CONTINUED:
                # NOTE: the continuation reads the rows not sent again: they are no failure of this message.
                self.sink.outcome.withdraw_failure(self.item.item_id, chunk.failed)
                self.result.failed -= chunk.failed
            return ending

    def _out_of_time(
        self, resume: Position, skip: tuple[tuple[int, int], ...]
    ) -> tuple[str, Position | None, tuple[tuple[int, int], ...]]:
        """Continue at ``resume`` if this invocation made progress; otherwise stop (the message fails)."""
        if self.item.queue_arn is None:
            # NOTE: a direct S3 invocation has no queue to continue through: the rows not read are failed and the
            # event raises, so Lambda's asynchronous retry reads the object again.
            self.sink.outcome.mark_failed(
                self.item.item_id, "the deadline came before the object was read to its end"
            )
            return INCOMPLETE, None, ()
        if self.result.handled == self.handled_at_start:
            self._stop(
                f"no row could be handled before the deadline (line {resume.line}, byte {resume.offset}); "
                "the message is reported failed so the queue's retries and dead-letter queue apply"
                + receive_note(self)
            )
            return STOPPED, None, ()
        return CONTINUED, resume, skip

    def _read_chunk(self, rows: Iterator[Row]) -> Chunk | None:
        """Read and prepare rows until the chunk is full (rows, lanes or bytes); None at the object's end."""
        stage = self.stage
        rule = stage.chunk_rule
        chunk: Chunk | None = None
        sessions: set[tuple[str | None, str | None]] = set()
        independent = 0
        per_call = max_per_call(self.entity)
        for row in rows:
            if chunk is None:
                chunk = Chunk(first=Position(row.offset, row.line))
            size = chunk.add(row)
            record = Record(
                self.item.item_id,
                self.ref.source(line=row.line),
                row.value,
                self.ref.event_time,
                decode_error=row.error,
            )
            try:
                ready = self.sink.prepare(record)
            except RecordRejected as refused:
                chunk.rejected.append((record, refused.rejection))
                chunk.rejected_bytes += size
                if len(chunk.rejected) >= REJECT_FLUSH_ROWS or chunk.rejected_bytes >= REJECT_FLUSH_BYTES:
                    self._flush_rejects(chunk)
            else:
                chunk.prepared.append(ready)
                key = lane_key(self.entity, ready)
                if key is None:
                    independent += 1
                else:
                    sessions.add(key)
            independent_calls = (independent + per_call - 1) // per_call
            if rule.is_full(chunk.rows, len(sessions) + independent_calls) or chunk.bytes >= stage.chunk_max_bytes:
                break
        return chunk

    def _flush_rejects(self, chunk: Chunk) -> None:
        """Set the chunk's rejected rows aside now, so they never pile up in memory."""
        rejected, chunk.rejected, chunk.rejected_bytes = chunk.rejected, [], 0
        chunk.flushed += len(rejected)
        self._deliver(chunk, self.sink.handle_prepared([], rejected))

    def _deliver(self, chunk: Chunk, handled: Handled) -> None:
        chunk.failed_lines.update(r.source.line for r, _ in handled.failed if r.source.line is not None)
        chunk.failed += len(handled.failed)
        self._account(handled)

    def _account(self, handled: Handled) -> None:
        result = self.result
        result.delivered += len(handled.delivered)
        result.superseded += len(handled.superseded)
        for record, rejection in handled.rejected:
            result.add_reject(record.source.line, rejection)
        result.failed += len(handled.failed)

    def _must_stop(self, cost: ChunkCost) -> bool:
        if self.deadline.exhausted():
            return True
        before_margin_ms = self.deadline.remaining_ms() - self.deadline.margin_ms
        return before_margin_ms < cost.next_chunk_ms() * self.stage.chunk_cost_factor

    # ------------------------------------------------------------------------------------------------ endings

    def _stop(self, reason: str) -> None:
        self.result.error = reason
        self.sink.outcome.mark_failed(self.item.item_id, reason)
        logger.error("S3 object stopped: the message is reported failed", extra={**self.where, "why": reason})

    def _changed(self, why: str) -> str:
        """The object changed between two reads of it: set one record aside naming where reading stopped."""
        reason = (
            f"the object changed or was deleted while it was read ({why}); rows from line {self.ref.start_line} "
            "on were not ingested: the new version's notification reads it anew"
        )
        self.result.error = reason
        record = Record(self.item.item_id, self.ref.source(line=self.ref.start_line), None, self.ref.event_time)
        record.decode_error = Rejection("object_changed", reason)
        self._account(self.sink.handle_records([record]))
        logger.warning("S3 object changed while it was read", extra={**self.where, "why": why})
        return CHANGED

    # ------------------------------------------------------------------------------------------------ messages

    def next_ref(
        self,
        *,
        start: Position,
        hops: int,
        skip: tuple[tuple[int, int], ...] = (),
        part: ByteRange | None = None,
        progress: bool = True,
    ) -> ObjectRef:
        """The reference a continuation or range message carries: this object from ``start`` on."""
        ref = self.ref
        # NOTE: a read pinned to the version first seen: when the announcement named neither version nor ETag,
        # the ETag GetObject returned pins every later read.
        etag = ref.etag if (ref.version_id or ref.etag) else self.etag_seen
        return dataclasses.replace(
            ref,
            etag=etag,
            start_line=start.line,
            start_offset=start.offset,
            hops=hops,
            skip_lines=skip,
            part=part if part is not None else ref.part,
            progress=self.result.progress() if progress else None,
        )

    def queue(self, bodies: list[str]) -> bool:
        """Put ``bodies`` on the announcing queue; False (and the message reported failed) when that failed."""
        try:
            send_to_source_queue(self.stage.client("sqs"), self.item, bodies)
        except (ClientError, BotoCoreError, NotQueued) as exc:
            self.sink.outcome.mark_failed(self.item.item_id, f"the continuation message could not be sent: {exc}")
            logger.error(
                "continuation not sent: the message is reported for retry", extra={**self.where, "error": str(exc)}
            )
            return False
        return True

    def report(self, status: str, resume: Position | None = None, **extra: Any) -> None:
        """Write this read's result file (its range's part file, and the summary once every range reported)."""
        if self.marker is not None:
            if status == CONTINUED:
                # NOTE: no continuation message: the announcement itself is redelivered and resumes here.
                extra.setdefault("resumesBy", "redelivery")
            if self.item.receive_count is not None:
                extra.setdefault("receiveCount", self.item.receive_count)
        document = self.result.document(self.ref, status, resume, **extra)
        try:
            summary = write_report(self.stage.client("s3"), self.ref, document)
        except (ClientError, BotoCoreError) as exc:
            # NOTE: the result file is a report for producers; failing the rows it describes would only send them
            # again.
            logger.error("result file not written", extra={**self.ref.describe(), "error": str(exc)})
            return
        if summary is not None:
            logger.info("every range of the S3 object reported", extra={**self.where, "status": summary["status"]})
