"""Per batch item accounting and the partial batch response, including the FIFO group stop."""

from __future__ import annotations

from personalize_ingest.model import RecordOutcome
from personalize_ingest.outcome import Outcome
from personalize_ingest.sources import decode_event
from tests.support import factories as f


def test_all_handled_is_an_empty_failure_list() -> None:
    # GIVEN an SQS batch whose records were all handled
    items = decode_event(f.load_event("sqsEvent.json")).items
    outcome = Outcome(items)

    # WHEN the response is built without any failure
    # THEN it reports no item
    assert outcome.response() == {"batchItemFailures": []}


def test_failed_records_report_their_item_once_in_event_order() -> None:
    # GIVEN a Kinesis batch of two records, the second holding two records
    items = decode_event(f.load_event("kinesisStreamEvent.json")).items
    outcome = Outcome(items)

    # WHEN both records of the second item and then the one of the first fail
    outcome.record(RecordOutcome.failed(record, "throttled") for record in items[1].records)
    outcome.record(RecordOutcome.failed(record, "throttled") for record in items[0].records)

    # THEN each item is reported once, in event order, and the tally counts three failed records
    assert outcome.response() == {
        "batchItemFailures": [{"itemIdentifier": items[0].item_id}, {"itemIdentifier": items[1].item_id}]
    }
    assert outcome.tally.failed == 3


def test_kpl_user_record_failure_reports_the_parent_sequence_number() -> None:
    # GIVEN a KPL-aggregated record of three user records
    (item,) = decode_event(f.load_event("kinesisKplAggregatedEvent.json")).items
    outcome = Outcome([item])

    # WHEN the second user record fails
    outcome.record([RecordOutcome.failed(item.records[1], "deadline")])

    # THEN the parent's sequence number is reported
    assert outcome.response() == {"batchItemFailures": [{"itemIdentifier": item.item_id}]}


def test_fifo_failure_stops_only_its_own_group() -> None:
    # GIVEN a FIFO batch: two messages of group s-1, one of group s-2
    decoded = decode_event(f.load_event("sqsFifoEvent.json"))
    first, second, other_group = decoded.items
    outcome = Outcome(decoded.items, fifo=decoded.fifo)

    # WHEN the first message of s-1 fails
    outcome.mark_failed(first.item_id, "throttled")

    # THEN the later message of s-1 must not be sent, the other group goes on
    assert outcome.group_stopped(second)
    assert not outcome.group_stopped(other_group)
    assert outcome.failed_items() == [first.item_id]


def test_standard_queue_failure_stops_nothing() -> None:
    # GIVEN a standard-queue batch
    items = decode_event(f.load_event("sqsEvent.json")).items
    outcome = Outcome(items, fifo=False)

    # WHEN the first message fails
    outcome.mark_failed(items[0].item_id, "throttled")

    # THEN the next message still goes
    assert not outcome.group_stopped(items[1])
    assert outcome.failure_reasons() == {items[0].item_id: "throttled"}
