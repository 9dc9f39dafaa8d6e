"""Builders of real AWS event shapes (Kinesis, SQS, SNS, S3, EventBridge) and a Lambda context test double.

The shapes follow the events Lambda delivers (see tests/events/*.json for stored examples); builders let a test
make a mixed batch without copying a fixture and editing it by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/interactions"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ingest"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:ingest-topic"
SENT_TIMESTAMP_MS = 1795978246729
ARRIVAL_SECONDS = 1795978246.729
EVENT_TIME = "2026-11-29T18:50:46.729Z"


def load_event(name: str) -> dict[str, Any]:
    """A stored event fixture from tests/events/."""
    return json.loads((EVENTS_DIR / name).read_text())


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


# ------------------------------------------------------------------------------------------------- Kinesis


def kinesis_record(
    data: bytes | str | Any,
    sequence_number: str,
    *,
    stream_arn: str = STREAM_ARN,
    arrival: float = ARRIVAL_SECONDS,
) -> dict[str, Any]:
    """One record of a Kinesis event; ``data`` bytes as is, str encoded, anything else JSON-encoded."""
    payload = data if isinstance(data, bytes) else (data if isinstance(data, str) else json.dumps(data)).encode()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "pk-1",
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(payload).decode(),
            "approximateArrivalTimestamp": arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/ingest-function",
        "awsRegion": REGION,
        "eventSourceARN": stream_arn,
    }


def sequence_number(index: int) -> str:
    return f"4959{index:052d}"


def kinesis_event(payloads: Sequence[bytes | str | Any], *, stream_arn: str = STREAM_ARN) -> dict[str, Any]:
    return {
        "Records": [
            kinesis_record(p, sequence_number(i + 1), stream_arn=stream_arn) for i, p in enumerate(payloads)
        ]
    }


def kpl_aggregate(payloads: Iterable[bytes | str | Any]) -> bytes:
    """One KPL-aggregated Kinesis payload holding ``payloads`` as user records (aws-kinesis-agg's format)."""
    from aws_kinesis_agg.aggregator import RecordAggregator

    aggregator = RecordAggregator()
    for index, data in enumerate(payloads):
        raw = data if isinstance(data, bytes) else (data if isinstance(data, str) else json.dumps(data)).encode()
        assert aggregator.add_user_record(f"pk-{index}", raw) is None, "aggregate overflowed one Kinesis record"
    _partition_key, _explicit_hash_key, data_bytes = aggregator.clear_and_get().get_contents()
    return data_bytes


# ------------------------------------------------------------------------------------------------- SQS


def sqs_message(
    body: str | Any,
    message_id: str | None = None,
    *,
    arn: str = QUEUE_ARN,
    group_id: str | None = None,
    sent_ms: int = SENT_TIMESTAMP_MS,
) -> dict[str, Any]:
    """One message of an SQS event; a non-str body is JSON-encoded."""
    text = body if isinstance(body, str) else json.dumps(body)
    attributes = {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": str(sent_ms),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(sent_ms + 3),
    }
    if group_id is not None:
        attributes["MessageGroupId"] = group_id
        attributes["MessageDeduplicationId"] = hashlib.sha256(text.encode()).hexdigest()
        attributes["SequenceNumber"] = str(18849496460467696128 + sent_ms % 1000)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a" + uuid.uuid4().hex,
        "body": text,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": REGION,
    }


def sqs_event(messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(messages)}


def sns_envelope(message: str | Any) -> dict[str, Any]:
    """The JSON SNS puts around a published message in an SQS body (raw message delivery off)."""
    text = message if isinstance(message, str) else json.dumps(message)
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Message": text,
        "Timestamp": EVENT_TIME,
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858f",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC_ARN}:1",
    }


# ------------------------------------------------------------------------------------------------- S3


def s3_record(
    bucket: str,
    key: str,
    *,
    etag: str | None = "0123456789abcdef0123456789abcdef",
    version_id: str | None = None,
    size: int = 1024,
    event_name: str = "ObjectCreated:Put",
    event_time: str = EVENT_TIME,
) -> dict[str, Any]:
    """One record of an S3 event notification (the key URL-encoded as S3 sends it)."""
    s3_object: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "sequencer": "0A1B2C3D4E5F678901"}
    if etag is not None:
        s3_object["eTag"] = etag
    if version_id is not None:
        s3_object["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": event_time,
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "ingest-notification",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": s3_object,
        },
    }


def s3_notification(*records: dict[str, Any]) -> dict[str, Any]:
    """An S3 event notification (the body S3 sends to SQS, and the event of a direct invocation)."""
    return {"Records": list(records)}


def eventbridge_object_created(
    bucket: str, key: str, *, etag: str | None = None, version_id: str | None = None, size: int = 1024
) -> dict[str, Any]:
    """An EventBridge "Object Created" event from S3 (as a rule delivers it to an SQS target)."""
    s3_object: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "sequencer": "617f08299329d189"}
    if etag is not None:
        s3_object["etag"] = etag
    if version_id is not None:
        s3_object["version-id"] = version_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": EVENT_TIME.replace(".729", ""),
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": s3_object,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


# ------------------------------------------------------------------------------------------------- context


class FakeLambdaContext:
    """Test double for Lambda's context object: the attributes Powertools reads, and a remaining time the test
    controls.

    Parameters
    ----------
    remaining_ms
        Time left at the next call of ``get_remaining_time_in_millis``; a test may set it to move the clock.
    tick_ms
        Time that passes with every call (a clock the test controls instead of the wall clock).
    clock
        Alternative to the two above: a function returning the remaining milliseconds.
    """

    function_name = "personalize-ingest-test"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:personalize-ingest-test"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/personalize-ingest-test"
    log_stream_name = "2026/11/29/[$LATEST]0123456789abcdef"

    def __init__(
        self, remaining_ms: int = 600_000, tick_ms: int = 0, clock: Callable[[], int] | None = None
    ) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.remaining_ms = remaining_ms
        self._tick_ms = tick_ms
        self._clock = clock

    def get_remaining_time_in_millis(self) -> int:
        if self._clock is not None:
            return self._clock()
        remaining = self.remaining_ms
        self.remaining_ms = max(0, remaining - self._tick_ms)
        return remaining


def lambda_sqs_event(messages: Sequence[dict[str, Any]], arn: str) -> dict[str, Any]:
    """The SQS event Lambda builds from messages received with ``AttributeNames=["All"]``."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }
