"""Every sent record is classified by the evidence: delivered, rejected, dead-lettered, or reported missing."""

from __future__ import annotations

import json
from collections import Counter

from local.accounting import Evidence, account, record_dead_letter
from local.feed import SentRecord, delivery_key
from personalize_ingest.entities import EVENTS, ITEMS
from personalize_ingest.model import SourceRef


def _sent(
    entity: str, source: str, position: tuple[str, ...], key: str | None, expected: str | None = None
) -> SentRecord:
    return SentRecord(entity, source, f"sample:{position[-1]}", position, key, expected, body=f"body-{position}")


def test_records_are_classified_by_where_the_evidence_finds_them() -> None:
    # GIVEN five item rows from one object and what the stack holds after the run
    sent = [
        _sent("items", "s3", ("s3", "items/a.csv", "2"), "sku-1"),
        _sent("items", "s3", ("s3", "items/a.csv", "3"), "sku-2"),
        _sent("items", "s3", ("s3", "items/a.csv", "4"), None, expected="missing_field"),
        _sent("items", "s3", ("s3", "items/a.csv", "5"), "sku-5", expected="too_long"),
        _sent("items", "s3", ("s3", "items/a.csv", "6"), "sku-6"),
    ]
    evidence = Evidence(
        stored={"items": Counter({"sku-1": 1, "sku-2": 3})},
        rejected={
            ("s3", "items/a.csv", "4"): {"entity": "items", "code": "missing_field"},
            ("s3", "items/a.csv", "5"): {"entity": "items", "code": "invalid_json"},
        },
    )

    # WHEN the records are accounted for
    tally = account(sent, evidence)[("items", "s3")]

    # THEN stored ones count as delivered (extra copies as duplicates), rejections by code, the rest as missing
    assert (tally.sent, tally.delivered, tally.duplicates) == (5, 2, 2)
    assert tally.rejected == Counter({"missing_field": 1, "invalid_json": 1})
    assert tally.unaccounted == ["sample:6"]
    assert tally.unexpected == ["sample:5: rejected invalid_json, expected too_long"]


def test_dead_letter_evidence_covers_sqs_messages_kinesis_ranges_and_whole_s3_objects() -> None:
    # GIVEN records of three sources and three dead-letter messages: an SQS message moved by its redrive policy,
    # a Kinesis on-failure record (metadata only) and an S3 notification (keys arrive URL-encoded)
    sent = [
        _sent("actions", "sqs", ("sqs", "m-1"), "act-1"),
        _sent("events", "kinesis", ("kinesis", "100"), "e-100"),
        _sent("events", "kinesis", ("kinesis", "200"), "e-200"),
        _sent("events", "kinesis", ("kinesis", "300"), "e-300"),
        _sent("users", "s3", ("s3", "users/new members.jsonl", "1"), "member-1"),
    ]
    evidence = Evidence()
    on_failure = {"KinesisBatchInfo": {"startSequenceNumber": "150", "endSequenceNumber": "250", "batchSize": 1}}
    notification = {"Records": [{"s3": {"object": {"key": "users/new+members.jsonl"}}}]}
    for message_id, body in (("m-1", "{}"), ("m-2", json.dumps(on_failure)), ("m-3", json.dumps(notification))):
        record_dead_letter({"MessageId": message_id, "Body": body}, evidence, [100, 200, 300])

    # WHEN the records are accounted for
    tallies = account(sent, evidence)

    # THEN exactly the records inside the dead-lettered message, range and object are dead-lettered
    assert tallies[("actions", "sqs")].dead_lettered == 1
    assert (tallies[("events", "kinesis")].dead_lettered, tallies[("events", "kinesis")].unaccounted) == (
        1,
        ["sample:100", "sample:300"],
    )
    assert tallies[("users", "s3")].dead_lettered == 1


def test_delivery_keys_are_the_entity_id_or_the_event_id_the_functions_derive() -> None:
    # GIVEN an item row in bulk layout and an events record without an eventId, from Kinesis
    ref = SourceRef("aws:kinesis", arn="arn:aws:kinesis:us-east-1:123456789012:stream/s", sequence_number="42")

    # WHEN / THEN the item is keyed by ITEM_ID, the event by the eventId derived from its source identity
    assert delivery_key(ITEMS, {"ITEM_ID": "sku-9", "PRICE": "3.50"}, ref) == "sku-9"
    assert delivery_key(EVENTS, {"sessionId": "s", "eventType": "view"}, ref) == ref.derived_event_id()
    assert delivery_key(EVENTS, {"sessionId": "s", "eventId": "given"}, ref) == "given"
    assert delivery_key(EVENTS, "not json", ref) is None
