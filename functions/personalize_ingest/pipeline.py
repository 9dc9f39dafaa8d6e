"""The pipeline of one invocation: source event -> records -> prepared -> calls -> outcome -> response.

``make_handler(entity)`` builds a function's ``lambda_handler``. Per invocation it reads the settings (a
misconfiguration raises before any record is touched), decodes the event into batch items, prepares each record,
delivers the valid ones with one :class:`~personalize_ingest.delivery.Deliverer`, sends the invalid ones to the
rejects queue, hands announced S3 objects to the S3 stage (:mod:`personalize_ingest.s3stage`), and returns the
partial batch response. Every record ends delivered, rejected (it reached the rejects queue) or failed (its batch
item is reported).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from personalize_ingest import bulk_import
from personalize_ingest.clients import SUPPORT_CALL_ATTEMPTS as SUPPORT_CALL_ATTEMPTS
from personalize_ingest.clients import control_plane_client
from personalize_ingest.clients import support_client as aws_client
from personalize_ingest.config import ConfigurationError, Settings
from personalize_ingest.deadline import Deadline
from personalize_ingest.delivery import Deliverer
from personalize_ingest.entities import Entity
from personalize_ingest.model import KINESIS, Fate, Prepared, Record, RecordOutcome, RecordRejected, Rejection
from personalize_ingest.observability import emit_metrics, logger
from personalize_ingest.outcome import Outcome, PartialItemFailureResponse
from personalize_ingest.records import prepare
from personalize_ingest.rejects import RejectsSender
from personalize_ingest.s3stage import ObjectStage
from personalize_ingest.sources import BatchItem, ObjectRef, SourceEvent, decode_event

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from personalize_ingest.schema import DatasetSchema

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
    """The outcomes of the records handed to :meth:`Invocation.handle_records` or ``handle_prepared``: one per
    record; ``delivered``, ``superseded``, ``rejected`` and ``failed`` are views of them."""

    outcomes: list[RecordOutcome] = field(default_factory=list)

    def _with(self, fate: Fate) -> list[RecordOutcome]:
        return [o for o in self.outcomes if o.fate is fate]

    @property
    def delivered(self) -> list[Record]:
        return [o.record for o in self._with(Fate.DELIVERED)]

    @property
    def superseded(self) -> list[Record]:
        return [o.record for o in self._with(Fate.SUPERSEDED)]

    @property
    def rejected(self) -> list[tuple[Record, Rejection]]:
        return [(o.record, o.rejection) for o in self._with(Fate.REJECTED)]

    @property
    def failed(self) -> list[tuple[Record, str]]:
        return [(o.record, o.reason) for o in self._with(Fate.FAILED)]


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
        self.checkpointed = False
        """The source replays everything after its lowest failed record (Kinesis)."""
        self._deliverer: Deliverer | None = None
        self.schema: DatasetSchema | None = None
        if settings.schema_source is not None:
            # NOTE: imported only when a schema is configured: nothing is added to a cold start without one.
            from personalize_ingest.schema import schema_for

            self.schema = schema_for(self.entity, settings.schema_source, settings.target, control_plane_client)
        # NOTE: the client is chosen per SendMessageBatch, so its timeouts fit the time left at that moment.
        self._rejects = RejectsSender(
            settings.rejects_queue_url, self.entity.name, client_factory=lambda: aws_client("sqs", deadline)
        )
        self.objects = ObjectStage(
            self, lambda service: aws_client(service, deadline), router=self._offer_to_import
        )
        """The S3 stage: announced objects are handed to it, and it accounts every row through this invocation."""

    # ------------------------------------------------------------------------------------------------ flow

    def run(self, event: dict[str, Any]) -> PartialItemFailureResponse:
        """Process the event and return the partial batch response (raise for a direct S3 invocation)."""
        source_event = decode_event(event)
        self.outcome = Outcome(source_event.items, fifo=source_event.fifo)
        self.checkpointed = source_event.event_source == KINESIS
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
        # NOTE: last, after every progress marker is written: a held FIFO message may be received again at once.
        self.objects.release_held(source_event.items)
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
                self.outcome.record(
                    RecordOutcome.failed(record, "not sent: an earlier message of its FIFO group failed")
                    for record in item.records
                )
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
                self.objects.handle(item, ref)

    # ------------------------------------------------------------------------------------------------ records

    def handle_records(self, records: Sequence[Record]) -> Handled:
        """Prepare, deliver and set aside ``records``; return (and account in the outcome) one outcome each."""
        prepared: list[Prepared] = []
        rejected: list[tuple[Record, Rejection]] = []
        for record in records:
            self._prepare_into(record, prepared, rejected)
        return self.handle_prepared(prepared, rejected)

    def prepare(self, record: Record) -> Prepared:
        """``record`` validated and ready to send (checked against the dataset schema when one is known).

        Raises
        ------
        RecordRejected
            naming the field and the rule the record breaks.
        """
        return prepare(
            self.entity, record, default_event_type=self.settings.default_event_type, schema=self.schema
        )

    def _prepare_into(
        self, record: Record, prepared: list[Prepared], rejected: list[tuple[Record, Rejection]]
    ) -> Prepared | None:
        try:
            ready = self.prepare(record)
        except RecordRejected as refused:
            rejected.append((record, refused.rejection))
            return None
        prepared.append(ready)
        return ready

    def handle_prepared(self, prepared: list[Prepared], rejected: list[tuple[Record, Rejection]]) -> Handled:
        """Deliver ``prepared`` and set aside ``rejected``; return (and account in the outcome) one outcome per
        record. A rejected record whose reject message did not reach the queue is failed instead."""
        outcomes = [RecordOutcome.rejected(record, rejection) for record, rejection in rejected]
        tally = self.outcome.tally
        if prepared:
            delivery = self.deliverer().deliver(prepared, checkpointed=self.checkpointed)
            tally.api_calls += delivery.api_calls
            tally.throttled_calls += delivery.throttled_calls
            tally.retries += delivery.retries
            outcomes.extend(delivery.outcomes)
        outcomes = self._set_aside(outcomes)
        self.outcome.record(outcomes)
        failed = [o for o in outcomes if o.fate is Fate.FAILED]
        if failed:
            logger.warning(
                "records failed: their batch items are reported for retry",
                extra={
                    "records": len(failed),
                    "items": sorted({o.record.item_id for o in failed})[:20],
                    "first_reason": failed[0].reason,
                },
            )
        return Handled(outcomes)

    def _set_aside(self, outcomes: list[RecordOutcome]) -> list[RecordOutcome]:
        """Send the rejected records to the rejects queue; those that did not reach it are failed instead."""
        rejected = [o for o in outcomes if o.fate is Fate.REJECTED]
        if not rejected:
            return outcomes
        refused = self._rejects.send([(o.record, o.rejection) for o in rejected])
        not_sent = {id(n.record): n.reason for n in refused}
        if not_sent:
            logger.error(
                "rejected records could not be set aside: reported failed",
                extra={"records": len(not_sent), "reason": next(iter(not_sent.values()))},
            )
        for outcome in rejected:
            logger.debug(
                "record rejected",
                extra={
                    "source": outcome.record.source.as_reject_source(),
                    "code": outcome.code,
                    "reason": outcome.reason,
                },
            )
        return [
            RecordOutcome.failed(o.record, not_sent[id(o.record)]) if id(o.record) in not_sent else o
            for o in outcomes
        ]

    def _offer_to_import(self, item: BatchItem, ref: ObjectRef) -> bool:
        """The import route (personalize_ingest.bulk_import) takes a new object, or leaves it to the S3 stage."""
        routed = bulk_import.offer(self.entity, item, ref, self.deadline)
        if routed.failure is not None:
            self.outcome.mark_failed(item.item_id, routed.failure)
        return routed.taken

    def deliverer(self) -> Deliverer:
        # NOTE: created on first use so an invocation holding only S3 test events or rejects opens no client.
        if self._deliverer is None:
            self._deliverer = Deliverer(self.settings, self.deadline)
        return self._deliverer


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
