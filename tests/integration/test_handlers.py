"""The five handlers end to end: moto (Kinesis event shapes, SQS, S3) and the Personalize Events emulator.

Assertions are on what the system did: elements the emulator stored, messages in the rejects queue (checked
against the published schema), result files in S3, the batch response and the metrics printed as EMF.
"""

from __future__ import annotations

import gzip
import importlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from emulator.config import DEFAULT_DATASET_ARNS
from emulator.testing import EmulatorHandle
from personalize_ingest.config import ConfigurationError
from personalize_ingest.pipeline import IngestIncomplete
from tests.support import factories as f
from tests.support.environment import TARGETS, drain, target_environment

REJECT_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas/reject-message.schema.json").read_text()
)
VALID: dict[str, dict[str, Any]] = {
    "events": {"sessionId": "s-1", "userId": "u-1", "eventType": "click", "itemId": "i-9", "sentAt": 1764400000},
    "action_interactions": {
        "actionId": "a-1",
        "sessionId": "s-1",
        "userId": "u-1",
        "eventType": "Taken",
        "timestamp": 1764400000,
    },
    "items": {"itemId": "i-1", "properties": {"genres": ["Horror", "Action"]}},
    "users": {"userId": "u-1", "properties": {"membership": "gold"}},
    "actions": {"actionId": "a-1", "properties": {"value": 5}},
}
INVALID: dict[str, dict[str, Any]] = {
    "events": {"sessionId": "s-1", "userId": "u-1", "eventTyp": "click", "sentAt": 1764400000},
    "action_interactions": {"actionId": "a-1", "sessionId": "s-1", "eventType": "Taken", "timestamp": "yesterday"},
    "items": {"itemId": "i-2", "properties": {"userId": "u-1"}},
    "users": {"userId": "", "properties": {"membership": "gold"}},
    "actions": {"actionTitle": "Join"},
}


@dataclass
class Stack:
    """The AWS side of one test: queues and a bucket in moto, the emulator, the function's environment."""

    emulator: EmulatorHandle
    sqs: Any
    s3: Any
    bucket: str
    rejects_url: str
    monkeypatch: pytest.MonkeyPatch

    def configure(self, entity: str, **overrides: str | None) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """Set the environment of ``entity``'s function and return its handler."""
        values: dict[str, str | None] = {
            **target_environment(entity),
            "REJECTS_QUEUE_URL": self.rejects_url,
            **overrides,
        }
        for name, value in values.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        return importlib.import_module(f"{entity}.handler").lambda_handler

    def new_queue(self, name: str, fifo: bool = False) -> tuple[str, str]:
        """Create a queue; return (url, arn)."""
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def rejects(self) -> list[dict[str, Any]]:
        """Every message now in the rejects queue, each validated against the published schema."""
        return [_validated(json.loads(body)) for body in drain(self.sqs, self.rejects_url)]

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def result(self, key: str) -> dict[str, Any]:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=f"results/{key}.result.json")["Body"].read())


def _validated(message: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(message, REJECT_SCHEMA)
    return message


@pytest.fixture
def stack(moto_env: str, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Stack:
    return build_stack(emulator, monkeypatch)


def build_stack(emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A bucket and a rejects queue in moto (``AWS_ENDPOINT_URL`` already set) and a clean function environment."""
    suffix = uuid.uuid4().hex[:8]
    sqs = boto3.client("sqs")
    s3 = boto3.client("s3")
    bucket = f"ingest-{suffix}"
    s3.create_bucket(Bucket=bucket)
    rejects_url = sqs.create_queue(QueueName=f"rejects-{suffix}")["QueueUrl"]
    for name in ("DEFAULT_EVENT_TYPE", "PERSONALIZE_TRACKING_ID", "PERSONALIZE_DATASET_ARN"):
        monkeypatch.delenv(name, raising=False)
    return Stack(emulator, sqs, s3, bucket, rejects_url, monkeypatch)


def emf_documents(captured: str) -> list[dict[str, Any]]:
    """The EMF metric documents Powertools printed."""
    documents = []
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric(document: dict[str, Any], name: str) -> float:
    """A metric's value in an EMF document (Powertools prints each value as a list)."""
    value = document[name]
    return sum(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------------------------- Kinesis


def test_kinesis_mixed_batch_delivers_valid_rejects_invalid_and_reports_metrics(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a Kinesis batch: a valid event, an array of a valid and an invalid event, and text that is not JSON
    handler = stack.configure("events")
    valid, invalid = VALID["events"], INVALID["events"]
    event = f.kinesis_event([valid, [valid | {"itemId": "i-10"}, invalid], "not json"])
    capsys.readouterr()

    # WHEN the events function handles it
    response = handler(event, f.FakeLambdaContext())

    # THEN both valid events reached Personalize, the two bad records are in the rejects queue, nothing failed
    assert response == {"batchItemFailures": []}
    stored = stack.emulator.records("events")
    assert sorted(row["element"]["itemId"] for row in stored) == ["i-10", "i-9"]
    assert {row["request"]["sessionId"] for row in stored} == {"s-1"}
    rejects = stack.rejects()
    assert sorted(r["code"] for r in rejects) == ["invalid_json", "unknown_field"]
    by_code = {r["code"]: r for r in rejects}
    assert by_code["unknown_field"]["record"] == invalid
    assert by_code["unknown_field"]["source"]["index"] == 1
    assert by_code["unknown_field"]["source"]["sequenceNumber"] == event["Records"][1]["kinesis"]["sequenceNumber"]
    assert by_code["invalid_json"]["record"] == "not json"
    (emf,) = emf_documents(capsys.readouterr().out)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["entity"]]
    assert emf["entity"] == "events"
    counts = {name: metric(emf, name) for name in ("RecordsReceived", "RecordsDelivered", "RecordsRejected")}
    assert counts == {"RecordsReceived": 4, "RecordsDelivered": 2, "RecordsRejected": 2}
    assert (metric(emf, "RecordsFailed"), metric(emf, "ApiCalls"), metric(emf, "ThrottledCalls")) == (0, 1, 0)


def test_kpl_aggregated_user_records_are_delivered_and_rejected_one_by_one(stack: Stack) -> None:
    # GIVEN a KPL-aggregated Kinesis record of two valid events and one invalid event
    handler = stack.configure("events")
    aggregate = f.kpl_aggregate([VALID["events"], INVALID["events"], VALID["events"] | {"itemId": "i-11"}])
    event = {"Records": [f.kinesis_record(aggregate, f.sequence_number(5))]}

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the two valid user records are stored with distinct derived eventIds; the invalid one names its place
    assert response == {"batchItemFailures": []}
    elements = stack.emulator.elements("events")
    assert sorted(e["itemId"] for e in elements) == ["i-11", "i-9"]
    assert len({e["eventId"] for e in elements}) == 2
    (reject,) = stack.rejects()
    assert reject["source"]["subSequenceNumber"] == 1


def test_kpl_user_record_failure_reports_the_parent_sequence_number(stack: Stack) -> None:
    # GIVEN the rejects queue unset and a KPL record holding one invalid user record among valid ones
    handler = stack.configure("events", REJECTS_QUEUE_URL=None)
    aggregate = f.kpl_aggregate([VALID["events"], INVALID["events"]])
    plain = VALID["events"] | {"itemId": "i-12"}
    event = {
        "Records": [
            f.kinesis_record(aggregate, f.sequence_number(9)),
            f.kinesis_record(plain, f.sequence_number(10)),
        ]
    }

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the invalid user record cannot be set aside: its parent is reported, the other record is not
    assert response == {"batchItemFailures": [{"itemIdentifier": f.sequence_number(9)}]}
    assert sorted(e["itemId"] for e in stack.emulator.elements("events")) == ["i-12", "i-9"]


# --------------------------------------------------------------------------------------------- SQS, each entity


@pytest.mark.parametrize("entity", list(TARGETS))
def test_each_function_delivers_valid_and_rejects_invalid_sqs_records(stack: Stack, entity: str) -> None:
    # GIVEN an SQS batch for the entity: a valid record and an invalid one, in separate messages
    handler = stack.configure(entity)
    event = f.sqs_event([f.sqs_message(VALID[entity], "m-valid"), f.sqs_message(INVALID[entity], "m-invalid")])

    # WHEN the entity's function handles it
    response = handler(event, f.FakeLambdaContext())

    # THEN one element reached the entity's operation, the other is in the rejects queue, nothing failed
    assert response == {"batchItemFailures": []}
    assert len(stack.emulator.records(entity)) == 1
    (reject,) = stack.rejects()
    assert reject["entity"] == entity
    assert reject["record"] == INVALID[entity]
    assert reject["source"] == {"eventSource": "aws:sqs", "arn": f.QUEUE_ARN, "messageId": "m-invalid"}


def test_items_properties_and_sns_envelope(stack: Stack) -> None:
    # GIVEN an item published through SNS (the SQS body is the SNS envelope)
    handler = stack.configure("items")
    event = f.sqs_event([f.sqs_message(f.sns_envelope(VALID["items"]))])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the item is stored with its categorical list joined by '|'
    assert response == {"batchItemFailures": []}
    (element,) = stack.emulator.elements("items")
    assert element["itemId"] == "i-1"
    assert json.loads(element["properties"]) == {"genres": "Horror|Action"}


def test_records_without_timestamp_get_the_sqs_sent_time(stack: Stack) -> None:
    # GIVEN an event without sentAt
    handler = stack.configure("events")
    record = {k: v for k, v in VALID["events"].items() if k != "sentAt"}

    # WHEN handled from SQS
    handler(f.sqs_event([f.sqs_message(record, sent_ms=1764400123000)]), f.FakeLambdaContext())

    # THEN its sentAt is the message's SentTimestamp in seconds
    (element,) = stack.emulator.elements("events")
    assert int(element["sentAt"]) == 1764400123


# --------------------------------------------------------------------------------------------- failures


def test_unset_rejects_queue_reports_invalid_records_failed(stack: Stack) -> None:
    # GIVEN no REJECTS_QUEUE_URL
    handler = stack.configure("events", REJECTS_QUEUE_URL=None)
    event = f.sqs_event([f.sqs_message(VALID["events"], "m-ok"), f.sqs_message(INVALID["events"], "m-bad")])

    # WHEN a batch with an invalid record is handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the invalid record's message is reported failed (never dropped); the valid one was delivered
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert len(stack.emulator.records("events")) == 1


def test_unreachable_rejects_queue_reports_invalid_records_failed(stack: Stack) -> None:
    # GIVEN a rejects queue URL naming a queue that does not exist
    missing = stack.rejects_url.rsplit("/", 1)[0] + "/no-such-queue"
    handler = stack.configure("items", REJECTS_QUEUE_URL=missing)
    event = f.sqs_event([f.sqs_message(INVALID["items"], "m-bad"), f.sqs_message(VALID["items"], "m-ok")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the invalid record is failed, not lost
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert [e["itemId"] for e in stack.emulator.elements("items")] == ["i-1"]


@pytest.mark.parametrize(
    ("entity", "variable", "value"),
    [
        ("events", "PERSONALIZE_TRACKING_ID", None),
        ("items", "PERSONALIZE_DATASET_ARN", DEFAULT_DATASET_ARNS["USERS"]),
        ("users", "MAX_ATTEMPTS", "zero"),
    ],
)
def test_misconfiguration_raises_naming_the_variable_and_touches_nothing(
    stack: Stack, entity: str, variable: str, value: str | None
) -> None:
    # GIVEN a function whose configuration is missing or malformed
    handler = stack.configure(entity, **{variable: value})
    event = f.sqs_event([f.sqs_message(VALID[entity]), f.sqs_message(INVALID[entity])])

    # WHEN it is invoked / THEN it raises naming the variable
    with pytest.raises(ConfigurationError, match=variable):
        handler(event, f.FakeLambdaContext())

    # AND no record was sent or set aside
    assert stack.emulator.calls() == []
    assert stack.rejects() == []


def test_wrong_tracking_id_fails_records_instead_of_rejecting_them(stack: Stack) -> None:
    # GIVEN the events function pointed at a tracking id the service does not know
    handler = stack.configure("events", PERSONALIZE_TRACKING_ID="11111111-2222-3333-4444-555555555555")
    event = f.sqs_event([f.sqs_message(VALID["events"] | {"itemId": f"i-{n}"}, f"m-{n}") for n in range(3)])

    # WHEN a batch of valid records is handled
    response = handler(event, f.FakeLambdaContext())

    # THEN every message is reported failed and the rejects queue stays empty
    assert response == {"batchItemFailures": [{"itemIdentifier": f"m-{n}"} for n in range(3)]}
    assert stack.rejects() == []
    assert stack.emulator.records("events") == []


def test_fifo_failure_stops_the_rest_of_its_group_only(stack: Stack) -> None:
    # GIVEN a FIFO batch without a rejects queue: group g-1 starts with an invalid record
    handler = stack.configure("events", REJECTS_QUEUE_URL=None)
    fifo = f.queue_arn("ingest.fifo")
    event = f.sqs_event(
        [
            f.sqs_message(INVALID["events"], "g1-first", arn=fifo, group_id="g-1"),
            f.sqs_message(VALID["events"] | {"itemId": "g1-second"}, "g1-second", arn=fifo, group_id="g-1"),
            f.sqs_message(VALID["events"] | {"itemId": "g2-first"}, "g2-first", arn=fifo, group_id="g-2"),
            f.sqs_message(VALID["events"] | {"itemId": "g2-second"}, "g2-second", arn=fifo, group_id="g-2"),
        ]
    )

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN g-1's failed message and its later message are reported, the later one was never sent; g-2 went on
    assert response == {"batchItemFailures": [{"itemIdentifier": "g1-first"}, {"itemIdentifier": "g1-second"}]}
    assert [e["itemId"] for e in stack.emulator.elements("events")] == ["g2-first", "g2-second"]


# --------------------------------------------------------------------------------------------- S3


def test_s3_notification_gzip_bom_crlf_csv_is_delivered_with_result_file(stack: Stack) -> None:
    # GIVEN a gzip CSV of items with a BOM and CRLF line ends, one row invalid, announced through SQS
    handler = stack.configure("items")
    csv_text = "ITEM_ID,GENRES,PRICE\r\ni-1,Horror|Action,9.5\r\n,Comedy,3\r\ni-3,Drama,\r\n"
    key = "items/catalog 2026.csv.gz"
    put = stack.put(key, gzip.compress(b"\xef\xbb\xbf" + csv_text.encode()))
    notification = f.s3_notification(f.s3_record(stack.bucket, key, etag=put["ETag"].strip('"')))

    # WHEN the items function handles the notification
    response = handler(f.sqs_event([f.sqs_message(notification, "m-s3")]), f.FakeLambdaContext())

    # THEN the two valid rows are stored, the invalid row is rejected by line, the result file counts them
    assert response == {"batchItemFailures": []}
    elements = stack.emulator.elements("items")
    assert [e["itemId"] for e in elements] == ["i-1", "i-3"]
    assert json.loads(elements[0]["properties"]) == {"genres": "Horror|Action", "price": "9.5"}
    (reject,) = stack.rejects()
    assert reject["source"] == {
        "eventSource": "aws:s3",
        "bucket": stack.bucket,
        "key": key,
        "etag": put["ETag"].strip('"'),
        "line": 3,
    }
    assert reject["record"] == {"ITEM_ID": "", "GENRES": "Comedy", "PRICE": "3"}
    result = stack.result(key)
    assert (result["status"], result["delivered"], result["rejected"], result["failed"]) == ("complete", 2, 1, 0)
    assert result["rejects"][0]["line"] == 3


def test_eventbridge_jsonl_object_is_delivered(stack: Stack) -> None:
    # GIVEN users as JSON Lines, announced by an EventBridge "Object Created" event
    handler = stack.configure("users")
    key = "users/export.jsonl"
    put = stack.put(key, b'{"userId": "u-1"}\n{"userId": "u-2", "properties": {"tier": "gold"}}\n')
    message = f.eventbridge_object_created(stack.bucket, key, etag=put["ETag"].strip('"'))

    # WHEN handled
    response = handler(f.sqs_event([f.sqs_message(message)]), f.FakeLambdaContext())

    # THEN both users are stored
    assert response == {"batchItemFailures": []}
    assert [e["userId"] for e in stack.emulator.elements("users")] == ["u-1", "u-2"]
    assert stack.result(key)["status"] == "complete"


def test_s3_rows_keep_their_event_ids_when_the_object_is_notified_twice(stack: Stack) -> None:
    # GIVEN an interactions file in the bulk layout announced by two different SQS messages
    handler = stack.configure("events")
    key = "events/clicks.csv"
    put = stack.put(
        key, b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu-1,i-1,click,1764400000\nu-2,i-2,click,1764400001\n"
    )
    notification = f.s3_notification(f.s3_record(stack.bucket, key, etag=put["ETag"].strip('"')))

    # WHEN both notifications are handled
    for message_id in ("first-notice", "second-notice"):
        assert handler(f.sqs_event([f.sqs_message(notification, message_id)]), f.FakeLambdaContext()) == {
            "batchItemFailures": []
        }

    # THEN each row was sent twice with the same eventId, so Personalize keeps one of each
    stored = stack.emulator.records("events")
    assert len(stored) == 4
    first_round, second_round = stored[:2], stored[2:]
    assert {r["element"]["eventId"] for r in first_round} == {r["element"]["eventId"] for r in second_round}
    assert len({r["element"]["eventId"] for r in stored}) == 2
    assert [r["duplicate"] for r in first_round] == [False, False]
    assert [r["duplicate"] for r in second_round] == [True, True]
    assert {row["request"]["sessionId"] for row in stored} == {"u-1", "u-2"}


def test_s3_test_event_is_acknowledged_without_calls(stack: Stack) -> None:
    # GIVEN the s3:TestEvent S3 sends when a notification is configured
    handler = stack.configure("events")

    # WHEN handled
    response = handler(f.load_event("sqsS3TestEvent.json"), f.FakeLambdaContext())

    # THEN nothing is sent and the message is acknowledged
    assert response == {"batchItemFailures": []}
    assert stack.emulator.calls() == []


def test_direct_s3_invocation_delivers_and_returns(stack: Stack) -> None:
    # GIVEN actions in a CSV object and the S3 event of a direct invocation
    handler = stack.configure("actions")
    key = "actions/actions.csv"
    put = stack.put(key, b"ACTION_ID,VALUE\na-1,5\na-2,7\n")
    event = f.s3_notification(f.s3_record(stack.bucket, key, etag=put["ETag"].strip('"')))

    # WHEN invoked directly
    response = handler(event, f.FakeLambdaContext())

    # THEN the actions are stored
    assert response == {"batchItemFailures": []}
    assert [e["actionId"] for e in stack.emulator.elements("actions")] == ["a-1", "a-2"]


def test_direct_s3_invocation_raises_when_rows_fail(stack: Stack) -> None:
    # GIVEN a direct S3 invocation for an object with an invalid row and no rejects queue
    handler = stack.configure("action_interactions", REJECTS_QUEUE_URL=None)
    key = "action-interactions/a.csv"
    put = stack.put(key, b"ACTION_ID,USER_ID,EVENT_TYPE,TIMESTAMP\na-1,u-1,Taken,1764400000\na-2,,Taken,soon\n")
    event = f.s3_notification(f.s3_record(stack.bucket, key, etag=put["ETag"].strip('"')))

    # WHEN invoked / THEN it raises so Lambda's asynchronous retry applies
    with pytest.raises(IngestIncomplete, match="not fully ingested"):
        handler(event, f.FakeLambdaContext())

    # AND the valid row was delivered and the result file says the object is incomplete
    assert [e["actionId"] for e in stack.emulator.elements("action_interactions")] == ["a-1"]
    assert stack.result(key)["status"] == "incomplete"


# --------------------------------------------------------------------------------------------- rejects, logs


def test_many_and_oversize_rejects_all_reach_the_queue(stack: Stack) -> None:
    # GIVEN 12 invalid events of ~60 KB (more than one SendMessageBatch by count and by size) and one of ~400 KB
    handler = stack.configure("events")
    bulky = [INVALID["events"] | {"properties": {"note": "x" * 60_000}, "itemId": f"i-{n}"} for n in range(12)]
    huge = INVALID["events"] | {"properties": {"note": "y" * 400_000}}
    event = f.kinesis_event([*bulky, huge])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN all 13 reached the rejects queue; the one too large for a message is cut and marked truncated
    assert response == {"batchItemFailures": []}
    rejects = stack.rejects()
    assert len(rejects) == 13
    (truncated,) = [r for r in rejects if r.get("truncated")]
    assert truncated["source"]["sequenceNumber"] == f.sequence_number(13)
    assert isinstance(truncated["record"], str)
    assert truncated["record"].startswith('{"sessionId":"s-1"')
    assert sorted(r["record"]["itemId"] for r in rejects if not r.get("truncated")) == sorted(
        f"i-{n}" for n in range(12)
    )


def test_superseded_items_count_as_delivered_and_only_the_latest_is_sent(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two versions of the same item in one batch
    handler = stack.configure("items")
    older = {"itemId": "i-1", "properties": {"price": 1}}
    newer = {"itemId": "i-1", "properties": {"price": 2}}
    capsys.readouterr()

    # WHEN handled
    response = handler(f.sqs_event([f.sqs_message(older), f.sqs_message(newer)]), f.FakeLambdaContext())

    # THEN only the newer version was sent, and both count as delivered
    assert response == {"batchItemFailures": []}
    (element,) = stack.emulator.elements("items")
    assert json.loads(element["properties"]) == {"price": 2}
    (emf,) = emf_documents(capsys.readouterr().out)
    assert (metric(emf, "RecordsReceived"), metric(emf, "RecordsDelivered")) == (2, 2)


def test_logs_name_sources_but_never_user_or_item_ids_above_debug(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN records with recognisable ids, one valid, one invalid, and no rejects queue (so a failure is logged)
    handler = stack.configure("events", REJECTS_QUEUE_URL=None)
    valid = VALID["events"] | {"userId": "secret-user-7", "itemId": "secret-item-7"}
    invalid = INVALID["events"] | {"userId": "secret-user-8"}
    caplog.set_level(logging.INFO)

    # WHEN handled
    handler(f.sqs_event([f.sqs_message(valid, "m-1"), f.sqs_message(invalid, "m-2")]), f.FakeLambdaContext())

    # THEN the log records at INFO and above (message and extra keys) name the failed message but no id
    logs = [vars(record) for record in caplog.records if record.levelno >= logging.INFO]
    assert any(record.get("items") == ["m-2"] for record in logs)
    text = json.dumps(logs, default=str)
    assert "m-2" in text
    assert "secret-user" not in text
    assert "secret-item" not in text


def test_missing_metrics_namespace_does_not_fail_a_handled_batch(stack: Stack) -> None:
    # GIVEN a function deployed without POWERTOOLS_METRICS_NAMESPACE
    handler = stack.configure("users", POWERTOOLS_METRICS_NAMESPACE=None)

    # WHEN a valid record is handled
    response = handler(f.sqs_event([f.sqs_message(VALID["users"], "m-1")]), f.FakeLambdaContext())

    # THEN the record is delivered and the batch acknowledged despite the metrics
    assert response == {"batchItemFailures": []}
    assert [e["userId"] for e in stack.emulator.elements("users")] == ["u-1"]
