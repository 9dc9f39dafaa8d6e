"""Decoding Lambda events (tests/events/*.json and builders) into batch items, records and S3 objects."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from personalize_ingest.model import KINESIS, S3, SQS
from personalize_ingest.sources import UnsupportedEvent, continuation_body, decode_event
from tests.support import factories as f

REPO = Path(__file__).resolve().parents[2]


def test_kinesis_records_carry_sequence_numbers_arrival_time_and_array_indexes() -> None:
    # GIVEN a Kinesis event: one record holding an object, one holding an array of two
    event = f.load_event("kinesisStreamEvent.json")

    # WHEN it is decoded
    decoded = decode_event(event)

    # THEN each Kinesis record is one batch item named by its sequence number, holding its records
    assert decoded.event_source == KINESIS
    assert not decoded.fifo
    first, second = decoded.items
    assert first.item_id == event["Records"][0]["kinesis"]["sequenceNumber"]
    assert [r.value["eventType"] for r in first.records] == ["click"]
    assert [r.value["eventType"] for r in second.records] == ["purchase", "click"]
    assert [r.source.index for r in second.records] == [0, 1]
    assert all(r.item_id == second.item_id for r in second.records)
    assert first.records[0].arrival_time == pytest.approx(f.ARRIVAL_SECONDS)
    assert first.records[0].source.as_reject_source() == {
        "eventSource": "aws:kinesis",
        "arn": f.STREAM_ARN,
        "sequenceNumber": first.item_id,
    }


def test_kpl_aggregated_record_is_split_into_user_records_of_the_parent() -> None:
    # GIVEN a KPL-aggregated Kinesis record holding three user records
    event = f.load_event("kinesisKplAggregatedEvent.json")

    # WHEN it is decoded
    (item,) = decode_event(event).items

    # THEN the three user records belong to the parent sequence number, numbered by sub-sequence
    assert item.item_id == event["Records"][0]["kinesis"]["sequenceNumber"]
    assert [r.value["eventType"] for r in item.records] == ["click", "purchase", "click"]
    assert [r.source.sub_sequence_number for r in item.records] == [0, 1, 2]
    assert {r.item_id for r in item.records} == {item.item_id}
    assert len({r.source.derived_event_id() for r in item.records}) == 3


def test_plain_kinesis_records_do_not_import_the_kpl_library() -> None:
    # GIVEN a fresh interpreter decoding a plain (not aggregated) Kinesis event
    script = (
        "import json, sys\n"
        "from personalize_ingest.sources import decode_event\n"
        f"decode_event(json.load(open({str(REPO / 'tests/events/kinesisStreamEvent.json')!r})))\n"
        "print('aws_kinesis_agg' in sys.modules)\n"
    )

    # WHEN it runs
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO / "functions"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip

    # THEN aws_kinesis_agg was never imported
    assert result.stdout.strip() == "False"


def test_corrupt_kpl_aggregate_is_one_rejected_record_not_a_silent_loss() -> None:
    # GIVEN data that starts with the KPL magic bytes but whose digest does not match
    aggregate = bytearray(f.kpl_aggregate([{"a": 1}, {"b": 2}]))
    aggregate[-1] ^= 0xFF
    event = {"Records": [f.kinesis_record(bytes(aggregate), f.sequence_number(1))]}

    # WHEN it is decoded
    (item,) = decode_event(event).items

    # THEN the parent record is one record set aside with a decoding reason
    (record,) = item.records
    assert record.decode_error is not None
    assert record.decode_error.code == "invalid_aggregate"


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"{not json", "invalid_json"), (b"\xff\xfe\x00", "invalid_encoding"), (b'"just a string"', "not_an_object")],
)
def test_undecodable_kinesis_data_becomes_a_rejected_record(payload: bytes, code: str) -> None:
    # GIVEN a Kinesis record whose data is not a JSON object
    event = {"Records": [f.kinesis_record(payload, f.sequence_number(1))]}

    # WHEN it is decoded
    (item,) = decode_event(event).items

    # THEN it is one record carrying the decoding rejection
    (record,) = item.records
    assert record.decode_error is not None
    assert record.decode_error.code == code


def test_sqs_messages_are_items_named_by_message_id_with_sent_timestamp_arrival() -> None:
    # GIVEN an SQS event: one message with an object body, one with an array body
    event = f.load_event("sqsEvent.json")

    # WHEN it is decoded
    decoded = decode_event(event)

    # THEN each message is an item named by its messageId; arrival is SentTimestamp in seconds
    assert decoded.event_source == SQS
    assert [i.item_id for i in decoded.items] == [m["messageId"] for m in event["Records"]]
    assert [len(i.records) for i in decoded.items] == [1, 2]
    assert decoded.items[0].records[0].arrival_time == pytest.approx(f.SENT_TIMESTAMP_MS / 1000)
    assert decoded.items[1].records[1].source.as_reject_source() == {
        "eventSource": "aws:sqs",
        "arn": f.QUEUE_ARN,
        "messageId": decoded.items[1].item_id,
        "index": 1,
    }


def test_fifo_messages_keep_their_group() -> None:
    # GIVEN messages of a FIFO queue in two groups
    event = f.load_event("sqsFifoEvent.json")

    # WHEN decoded
    decoded = decode_event(event)

    # THEN the event is FIFO and each item knows its group, and its receipt handle and receive count (a message
    # held for resumption is made visible again with them)
    assert decoded.fifo and all(i.fifo for i in decoded.items)
    assert [i.group_id for i in decoded.items] == ["s-1", "s-1", "s-2"]
    assert [i.receipt_handle for i in decoded.items] == [r["receiptHandle"] for r in event["Records"]]
    assert [i.receive_count for i in decoded.items] == [1, 1, 1]


def test_sns_envelope_is_unwrapped() -> None:
    # GIVEN an SQS message holding an SNS notification around a record
    event = f.load_event("sqsSnsEnvelopeEvent.json")

    # WHEN decoded
    (item,) = decode_event(event).items

    # THEN the record inside the envelope is the item's record
    (record,) = item.records
    assert record.value["itemId"] == "i-9"
    assert record.source.message_id == item.item_id


def test_s3_notification_yields_the_url_decoded_object() -> None:
    # GIVEN an SQS message holding an S3 notification whose key has spaces (URL-encoded as '+')
    event = f.load_event("sqsS3NotificationEvent.json")

    # WHEN decoded
    (item,) = decode_event(event).items

    # THEN the item announces the object by its real key and version, with S3's eventTime
    assert item.records == []
    (ref,) = item.objects
    assert (ref.bucket, ref.key) == ("ingest-bucket", "events/2026/11/clicks day 1.csv")
    assert ref.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert ref.event_time == pytest.approx(f.ARRIVAL_SECONDS)
    assert ref.start_line == 1
    assert item.queue_arn == f.QUEUE_ARN


def test_s3_notification_through_sns_yields_the_object() -> None:
    # GIVEN S3 -> SNS -> SQS: an S3 notification inside an SNS envelope
    notification = f.s3_notification(f.s3_record("b", "items/a b+c.csv", etag="abc"))
    event = f.sqs_event([f.sqs_message(f.sns_envelope(notification))])

    # WHEN decoded
    (item,) = decode_event(event).items

    # THEN the object is announced by its real key (S3 sent "items/a+b%2Bc.csv")
    (ref,) = item.objects
    assert notification["Records"][0]["s3"]["object"]["key"] == "items/a+b%2Bc.csv"
    assert (ref.key, ref.etag, ref.version_id) == ("items/a b+c.csv", "abc", None)


def test_eventbridge_object_created_yields_the_object() -> None:
    # GIVEN an EventBridge "Object Created" event delivered to SQS
    event = f.load_event("sqsEventBridgeS3Event.json")

    # WHEN decoded
    (item,) = decode_event(event).items

    # THEN the object, its version and etag are announced
    (ref,) = item.objects
    assert (ref.bucket, ref.key) == ("ingest-bucket", "items/catalog.jsonl.gz")
    assert ref.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert ref.etag == "b1946ac92492d2347c6235b4d2611184"


def test_s3_test_event_and_deletions_are_ignored() -> None:
    # GIVEN an s3:TestEvent, an ObjectRemoved notification and an EventBridge "Object Deleted" event
    removed = f.s3_notification(f.s3_record("b", "items/a.csv", event_name="ObjectRemoved:Delete"))
    deleted = f.eventbridge_object_created("b", "items/a.csv") | {"detail-type": "Object Deleted"}
    test_event = json.loads(f.load_event("sqsS3TestEvent.json")["Records"][0]["body"])
    event = f.sqs_event([f.sqs_message(test_event), f.sqs_message(removed), f.sqs_message(deleted)])

    # WHEN decoded
    items = decode_event(event).items

    # THEN none carries records or objects, and each says why
    assert [(i.records, i.objects) for i in items] == [([], [])] * 3
    assert items[0].ignored == "s3:TestEvent"
    assert all(i.ignored for i in items)


def test_continuation_message_resumes_at_its_line() -> None:
    # GIVEN the continuation message the pipeline sends for an object read up to line 1201
    notification = decode_event(f.load_event("sqsS3NotificationEvent.json")).items[0].objects[0]
    body = continuation_body(
        dataclasses.replace(notification, start_line=1201, progress={"delivered": 1200, "rejected": 0})
    )
    event = f.sqs_event([f.sqs_message(body)])

    # WHEN decoded
    (item,) = decode_event(event).items

    # THEN the same object version is announced from line 1201 with the original eventTime
    (ref,) = item.objects
    assert json.loads(body)["continuation"]["line"] == 1201
    assert (ref.bucket, ref.key, ref.version_id) == (
        notification.bucket,
        notification.key,
        notification.version_id,
    )
    assert ref.start_line == 1201
    assert ref.event_time == notification.event_time
    assert ref.progress == {"delivered": 1200, "rejected": 0}


def test_direct_s3_invocation_yields_one_item_per_object() -> None:
    # GIVEN a direct S3 invocation
    event = f.load_event("s3Event.json")

    # WHEN decoded
    decoded = decode_event(event)

    # THEN it is an S3 event with the decoded key ("%2B" in the event is a real '+')
    assert decoded.direct_s3
    assert decoded.event_source == S3
    (item,) = decoded.items
    (ref,) = item.objects
    assert event["Records"][0]["s3"]["object"]["key"] == "users/users%2B2026-11-29.csv"
    assert ref.key == "users/users+2026-11-29.csv"
    assert ref.etag == "d41d8cd98f00b204e9800998ecf8427e"


def test_malformed_envelope_is_a_rejected_record() -> None:
    # GIVEN a continuation message without its line
    event = f.sqs_event([f.sqs_message({"continuation": {"bucket": "b", "key": "k"}})])

    # WHEN decoded
    (item,) = decode_event(event).items

    # THEN the body is set aside as one record, nothing is read
    assert item.objects == []
    (record,) = item.records
    assert record.decode_error is not None
    assert record.decode_error.code == "invalid_envelope"


def test_non_json_sqs_body_is_a_rejected_record_with_the_raw_text() -> None:
    # GIVEN a message whose body is not JSON
    event = f.sqs_event([f.sqs_message("user=u-1&item=i-2")])

    # WHEN decoded
    (record,) = decode_event(event).items[0].records

    # THEN the raw text is kept for the rejects queue
    assert record.value == "user=u-1&item=i-2"
    assert record.decode_error is not None
    assert record.decode_error.code == "invalid_json"


def test_an_empty_records_list_is_an_empty_batch() -> None:
    # GIVEN a console test event or a replay tool's empty batch
    # WHEN decoded
    decoded = decode_event({"Records": []})

    # THEN there is nothing to do and nothing failed
    assert decoded.items == []
    assert not decoded.fifo and not decoded.direct_s3


@pytest.mark.parametrize("event", [{}, {"Records": None}, {"Records": [{"eventSource": "aws:dynamodb"}]}])
def test_unknown_events_are_refused(event: dict) -> None:
    # GIVEN an event that is not Kinesis, SQS or S3
    # WHEN / THEN decoding refuses it
    with pytest.raises(UnsupportedEvent):
        decode_event(event)


def test_kinesis_data_that_is_not_base64_is_rejected() -> None:
    # GIVEN a Kinesis record whose data is not base64
    record = f.kinesis_record(b"{}", f.sequence_number(1))
    record["kinesis"]["data"] = "%%%not-base64%%%"

    # WHEN decoded
    (item,) = decode_event({"Records": [record]}).items

    # THEN the record is set aside as undecodable
    assert item.records[0].decode_error is not None
    assert item.records[0].decode_error.code == "invalid_base64"


@pytest.mark.parametrize(
    ("body", "codes"),
    [
        ("", ["invalid_json"]),
        ("   ", ["invalid_json"]),
        ('[{"itemId": "i-1"}, 7, "text", null, [], {"itemId": "i-2"}]', [None, *["not_an_object"] * 4, None]),
    ],
    ids=["empty body", "blank body", "array with non-objects"],
)
def test_odd_bodies_become_records_one_by_one(body: str, codes: list[str | None]) -> None:
    # GIVEN an SQS message and a Kinesis record with the same odd payload
    for event in (f.sqs_event([f.sqs_message(body)]), f.kinesis_event([body.encode()])):
        # WHEN decoded
        (item,) = decode_event(event).items

        # THEN every part of it is a record (valid or carrying its rejection): none is left out
        assert [r.decode_error.code if r.decode_error else None for r in item.records] == codes
        assert item.ignored is None


def test_an_empty_array_holds_no_record_and_says_so() -> None:
    # GIVEN a message and a Kinesis record whose payload is an empty JSON array
    for event in (f.sqs_event([f.sqs_message("[]")]), f.kinesis_event([b"[]"])):
        # WHEN decoded
        (item,) = decode_event(event).items

        # THEN there is no record, and the item names why (the pipeline logs it) instead of passing silently
        assert item.records == [] and item.objects == []
        assert item.ignored is not None and "empty JSON array" in item.ignored


def test_a_body_nested_too_deeply_to_parse_is_one_invalid_record() -> None:
    # GIVEN a message and a Kinesis record holding JSON nested 5,000 deep (json.loads raises RecursionError)
    deep = '{"itemId": "i", "properties": ' + "[" * 5_000 + "]" * 5_000 + "}"
    for event in (f.sqs_event([f.sqs_message(deep)]), f.kinesis_event([deep.encode()])):
        # WHEN decoded
        (record,) = decode_event(event).items[0].records

        # THEN it is one record rejected as invalid JSON, not an exception failing the whole batch
        assert record.decode_error is not None and record.decode_error.code == "invalid_json"
