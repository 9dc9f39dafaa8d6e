"""The reject message body: contract fields, source identifiers, truncation of oversize records."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from personalize_ingest.model import Record, Rejection, SourceRef
from personalize_ingest.rejects import MAX_MESSAGE_BYTES, RejectsSender, reject_message

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas/reject-message.schema.json").read_text())
KINESIS_SOURCE = SourceRef(
    event_source="aws:kinesis",
    arn="arn:aws:kinesis:us-east-1:123456789012:stream/interactions",
    sequence_number="49590338271490256608559692538361571095921575989136588898",
    sub_sequence_number=2,
)
S3_SOURCE = SourceRef(event_source="aws:s3", bucket="ingest", key="items/a.csv", etag="abc", line=7)


def test_message_names_entity_code_reason_source_and_record() -> None:
    # GIVEN a CSV row rejected for an unknown column
    record = Record("s3://ingest/items/a.csv", S3_SOURCE, {"ITEM_ID": "i-1", "TITEL": "x"}, 0.0)
    rejection = Rejection("unknown_field", "TITEL is not a field of an item; did you mean TITLE?")

    # WHEN its message is built
    body = json.loads(reject_message("items", record, rejection))

    # THEN it follows the published schema and says where the row was
    jsonschema.validate(body, SCHEMA)
    assert body == {
        "entity": "items",
        "code": "unknown_field",
        "reason": rejection.reason,
        "source": {"eventSource": "aws:s3", "bucket": "ingest", "key": "items/a.csv", "etag": "abc", "line": 7},
        "record": {"ITEM_ID": "i-1", "TITEL": "x"},
    }


@pytest.mark.parametrize(
    "value", ["x" * (MAX_MESSAGE_BYTES + 5_000), {"sessionId": "s", "properties": {"blob": "é" * 200_000}}]
)
def test_oversize_record_is_cut_and_marked_truncated(value: object) -> None:
    # GIVEN a record larger than one SQS message (raw text, or an object with non-ASCII text)
    record = Record("seq", KINESIS_SOURCE, value, 0.0)

    # WHEN its message is built
    body = reject_message("events", record, Rejection("too_long", "properties is longer than 1024 characters"))

    # THEN it fits one message, is marked truncated, and keeps the start of the record as text
    assert len(body.encode()) <= MAX_MESSAGE_BYTES
    message = json.loads(body)
    jsonschema.validate(message, SCHEMA)
    assert message["truncated"] is True
    expected_text = (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    )
    assert expected_text.startswith(message["record"])
    assert len(message["record"]) > MAX_MESSAGE_BYTES // 3
    assert message["source"]["subSequenceNumber"] == 2


def _no_client() -> Any:
    raise AssertionError("no rejects queue is configured, so no SQS client is needed")


def test_unset_queue_returns_every_record_as_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a sender without REJECTS_QUEUE_URL, whose client cannot be had (nothing may be sent)
    sender = RejectsSender(None, "events", client_factory=_no_client)
    record = Record("seq", KINESIS_SOURCE, {"eventType": ""}, 0.0)

    # WHEN a rejected record is sent
    not_sent = sender.send([(record, Rejection("too_short", "eventType is empty"))])

    # THEN it comes back not sent, naming the variable and why the record was rejected
    assert [n.record for n in not_sent] == [record]
    assert "REJECTS_QUEUE_URL" in not_sent[0].reason
    assert "too_short: eventType is empty" in not_sent[0].reason

    # AND the log says so at WARNING with the code, the rule and the record's place, never its values
    (logged,) = [vars(r) for r in caplog.records if r.levelno >= logging.WARNING]
    assert (logged["code"], logged["reason"]) == ("too_short", "eventType is empty")
    assert logged["source"]["sequenceNumber"] == KINESIS_SOURCE.sequence_number
    assert "record" not in logged


def test_a_record_too_deeply_nested_to_serialise_still_gets_a_valid_message() -> None:
    # GIVEN a record whose value is nested deeper than json can serialise
    deep: object = "leaf"
    for _ in range(5_000):
        deep = [deep]
    record = Record("m-1", S3_SOURCE, {"itemId": "i", "properties": deep}, 0.0)

    # WHEN its message is built
    body = reject_message("items", record, Rejection("invalid_properties", "properties holds a nested array"))

    # THEN the message is valid, names the record's place, and says the record was cut
    message = json.loads(body)
    jsonschema.validate(message, SCHEMA)
    assert message["truncated"] is True
    assert message["source"]["line"] == 7
    assert isinstance(message["record"], str)
