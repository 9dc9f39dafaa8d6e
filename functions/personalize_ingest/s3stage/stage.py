"""The S3 stage's entry: what the invocation hands an announced object to, and the rules its reads share.

:meth:`ObjectStage.handle` first asks the router (a seam for other routes, such as a bulk import job, to take an
object before any row is streamed), then reads the object with :class:`~personalize_ingest.s3stage.reading.
ObjectRead`: rows -> chunks -> deliveries through the invocation (:class:`RowSink`) -> continuation or byte ranges
-> result file. On an SQS FIFO queue an object resumes from a progress marker instead of a continuation message
(:mod:`personalize_ingest.s3stage.progress`): :meth:`ObjectStage.release_held` makes the held messages visible
again as the invocation's last step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest.batching import ChunkRule
from personalize_ingest.observability import logger
from personalize_ingest.records import BULK_COLUMNS, UPPER_SNAKE
from personalize_ingest.s3stage.progress import marker_key, read_marker
from personalize_ingest.s3stage.queueing import NotQueued, make_visible
from personalize_ingest.s3stage.reading import ObjectRead
from personalize_ingest.validation import rules_for

if TYPE_CHECKING:
    from personalize_ingest.config import Settings
    from personalize_ingest.deadline import Deadline
    from personalize_ingest.model import Prepared, Record, Rejection
    from personalize_ingest.outcome import Outcome
    from personalize_ingest.pipeline import Handled
    from personalize_ingest.s3objects import Layout
    from personalize_ingest.sources import BatchItem, ObjectRef

S3_CHUNK_ROWS = 500
"""Fewest rows of an S3 object read, prepared and delivered together (unless the object ends first)."""
S3_CHUNK_MAX_ROWS = 5_000
"""Most rows of a chunk (a full chunk of events: ~6 MiB of Python objects)."""
S3_CHUNK_MAX_BYTES = 4 * 1024 * 1024
"""Most bytes of the object in one chunk, rejected rows included: wide rows (80 KB items) close a chunk long
before S3_CHUNK_MAX_ROWS, so memory stays flat whatever the rows' width."""
LANES_PER_WORKER = 4
"""A chunk closes (from S3_CHUNK_ROWS rows on) once it holds this many lanes per delivery thread. Sessions are of
unequal length (MovieLens users: 20 to 2,000+ ratings); with several per thread, started longest first, every
thread still has work while the longest one runs. Measured on 5,000 ratings sorted by user at 25 ms per call:
13.5 s wall with 500-row chunks, 4.7 s with 2 lanes per thread, 3.1 s with 4."""
CHUNK_COST_FACTOR = 1.2
"""A chunk starts only when the time before the margin exceeds this multiple of its expected cost. A chunk the
deadline interrupts loses nothing (the continuation resumes at its first row not yet handled), so the factor
only trims calls the deadline would cut short."""

ObjectRouter = Callable[["BatchItem", "ObjectRef"], bool]
"""Decides, before any row is read, whether another route takes the object (True: the stage leaves it alone)."""


class RowSink(Protocol):
    """What the stage needs of the invocation: its settings, deadline and outcome, and delivery of records."""

    settings: Settings
    deadline: Deadline
    outcome: Outcome

    def prepare(self, record: Record) -> Prepared:
        """The record ready to send (validated, with the dataset schema when one is known); raises
        :class:`~personalize_ingest.model.RecordRejected` with the reason otherwise."""
        ...

    def handle_records(self, records: Sequence[Record]) -> Handled:
        """Prepare, deliver and set aside ``records``; account every one of them in the outcome."""
        ...

    def handle_prepared(self, prepared: list[Prepared], rejected: list[tuple[Record, Rejection]]) -> Handled:
        """Deliver ``prepared`` and set aside ``rejected``; account every one (one outcome per record)."""
        ...


class ObjectStage:
    """Streams announced S3 objects of one invocation into its :class:`RowSink`.

    Parameters
    ----------
    sink
        The invocation: rows become records it delivers, rejects and accounts.
    client
        ``client("s3")`` / ``client("sqs")``: a boto3 client whose timeouts fit the time left.
    router
        Called with every announced object before it is read; True means another route took it.
    """

    chunk_max_bytes = S3_CHUNK_MAX_BYTES
    chunk_cost_factor = CHUNK_COST_FACTOR

    def __init__(self, sink: RowSink, client: Callable[[str], Any], router: ObjectRouter | None = None) -> None:
        self.sink = sink
        self.settings = sink.settings
        self.deadline = sink.deadline
        self.client = client
        self.router = router
        self.held: list[BatchItem] = []
        """FIFO messages reported failed so that their redelivery resumes from a progress marker."""

    def handle(self, item: BatchItem, ref: ObjectRef) -> None:
        """Read ``ref`` (announced by ``item``) from its start position, or on a FIFO queue from the progress
        marker an earlier receive of ``item`` left; account every row in the outcome."""
        marker: str | None = None
        if item.fifo and ref.part is None:
            marker = marker_key(item, ref)
            try:
                resumed = read_marker(self.client("s3"), ref.bucket, marker)
            except (ClientError, BotoCoreError) as exc:
                self.sink.outcome.mark_failed(item.item_id, f"the progress marker could not be read: {exc}")
                logger.error(
                    "progress marker not read: the message is reported for retry",
                    extra={"item": item.item_id, "error": str(exc)},
                )
                return
            except (ValueError, KeyError, TypeError) as exc:
                # NOTE: a marker this function cannot read (written by hand?) is no reason to block the group:
                # the object is read from its start, and the marker is replaced or deleted.
                logger.warning(
                    "progress marker unreadable: the object is read from its start",
                    extra={"item": item.item_id, "error": repr(exc)},
                )
                resumed = None
            if resumed is not None:
                logger.info(
                    "resuming from the progress marker",
                    extra={
                        "item": item.item_id,
                        "line": resumed.start_line,
                        "hops": resumed.hops,
                        "receive_count": item.receive_count,
                    },
                )
                ref = resumed
        if self.router is not None and ref.start_offset is None and ref.part is None and self.router(item, ref):
            return
        ObjectRead(self, item, ref, marker=marker).run()

    def hold(self, item: BatchItem) -> None:
        """Remember that ``item`` was reported failed to be resumed from its marker (see :meth:`release_held`)."""
        self.held.append(item)

    def release_held(self, items: Sequence[BatchItem]) -> None:
        """Make every held message, and the later messages of its group in ``items`` (also reported failed: the
        FIFO rule stopped the group behind it), visible again now, so the group resumes without waiting for the
        visibility timeout. Call it last, once every marker is written.

        A refused or failed call loses nothing: those messages come back after their visibility timeout.
        """
        for held in self.held:
            assert held.queue_arn is not None
            start = next(index for index, item in enumerate(items) if item is held)
            handles = [
                item.receipt_handle
                for item in items[start:]
                if item.group_id == held.group_id
                and item.receipt_handle is not None
                and self.sink.outcome.is_failed(item.item_id)
            ]
            try:
                refused = make_visible(self.client("sqs"), held.queue_arn, handles)
            except (ClientError, BotoCoreError, NotQueued) as exc:
                logger.warning(
                    "held FIFO messages not made visible: they return after their visibility timeout",
                    extra={"item": held.item_id, "error": str(exc)},
                )
                continue
            if refused:
                logger.warning(
                    "SQS did not make every held FIFO message visible: they return after their visibility timeout",
                    extra={"item": held.item_id, "refused": refused},
                )

    @property
    def chunk_rule(self) -> ChunkRule:
        """How many rows of an S3 object go into one chunk (:class:`~personalize_ingest.batching.ChunkRule`)."""
        return ChunkRule(
            min_rows=S3_CHUNK_ROWS,
            max_rows=S3_CHUNK_MAX_ROWS,
            lanes_wanted=LANES_PER_WORKER * self.settings.max_concurrent_calls,
        )

    def header_problem(self, layout: Layout) -> str | None:
        """Why a CSV header cannot be this entity's (None when it can), e.g. a users file in the items folder.

        A bulk-style header (every name UPPER_SNAKE) must hold the column of every member each record needs and
        cannot get otherwise (``ITEM_ID`` for items, ``USER_ID`` for users, ``ACTION_ID`` for actions and action
        interactions); any header must name at least one of the entity's columns. Refusing the header sets one
        record aside instead of rejecting every row with the same reason.
        """
        if layout.header is None:
            return None
        header = set(layout.header)
        entity = self.settings.entity
        rules = rules_for(entity)
        members = {**rules.request, **rules.element}
        own_columns = {
            column for column, member in BULK_COLUMNS.items() if (member or entity.timestamp_member) in members
        }
        if not all(UPPER_SNAKE.match(name) for name in header):
            return None
        # NOTE: eventType can come from DEFAULT_EVENT_TYPE, the timestamp from the arrival time and sessionId from
        # userId, so only the other required members make a column indispensable.
        derivable = {"eventType", "sessionId", entity.timestamp_member}
        needed = sorted(
            column
            for column, member in BULK_COLUMNS.items()
            if member in rules.element_required and member not in derivable
        )
        missing = [column for column in needed if column not in header]
        if missing:
            return (
                f"the CSV header (line 1) has no {', '.join(missing)} column, which every {entity.name} record "
                f"needs: is this a file of another entity? columns: {', '.join(sorted(header))[:300]}"
            )
        if not header & own_columns:
            return (
                f"the CSV header (line 1) names none of the {entity.name} columns "
                f"({', '.join(sorted(own_columns))}): is this a file of another entity?"
            )
        return None
