"""Large S3 objects: read up to the deadline, then a continuation message resumes where the invocation stopped.

The Lambda context is a test double whose remaining time is a clock the test controls: it runs out once the
emulator has stored the first chunk of rows, so the stop point is deterministic without any wall-clock timing.
"""

from __future__ import annotations

import gzip
import importlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from emulator.config import DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle
from personalize_ingest.pipeline import IngestIncomplete
from personalize_ingest.s3stage import LANES_PER_WORKER, S3_CHUNK_ROWS
from tests.support import factories as f

PLENTY_MS = 600_000
USERS = 40
"""Users of the test files, interleaved: more than LANES_PER_WORKER x MAX_CONCURRENT_CALLS (32 by default), so
every chunk closes at S3_CHUNK_ROWS rows."""


def interactions_csv(rows: int, users: int = USERS) -> bytes:
    lines = ["USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP"]
    lines += [f"u-{n % users},i-{n},click,{1764400000 + n}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def clock_until(emulator: EmulatorHandle, stored: int) -> Callable[[], int]:
    """Remaining time that is plentiful until the emulator holds ``stored`` events, then gone."""
    return lambda: PLENTY_MS if emulator.counts().get("events", 0) < stored else 0


@pytest.fixture
def aws(moto_env: str, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = f"ingest-{suffix}"
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("PERSONALIZE_TRACKING_ID", DEFAULT_TRACKING_ID)
    monkeypatch.setenv("REJECTS_QUEUE_URL", sqs.create_queue(QueueName=f"rejects-{suffix}")["QueueUrl"])
    return {"s3": s3, "sqs": sqs, "bucket": bucket, "suffix": suffix}


def handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    return importlib.import_module("events.handler").lambda_handler


def queue(sqs: Any, name: str, fifo: bool = False) -> tuple[str, str]:
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    response = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageSystemAttributeNames=["All"]
    )
    return response.get("Messages", [])


def test_large_object_continues_through_the_queue_and_every_row_is_delivered_once(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a 1,300-row CSV announced through an SQS queue, and an invocation whose time runs out after one chunk
    rows = 1_300
    key = "events/big.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(rows))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    notification = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"')))
    first_event = f.sqs_event([f.sqs_message(notification, "notice", arn=arn)])

    # WHEN the events function handles the notification
    first = handler()(first_event, f.FakeLambdaContext(clock=clock_until(emulator, S3_CHUNK_ROWS)))

    # THEN the message is acknowledged, the first chunk is delivered and a continuation names the next line
    assert first == {"batchItemFailures": []}
    assert emulator.counts()["events"] == S3_CHUNK_ROWS
    (message,) = receive_all(aws["sqs"], url)
    continuation = json.loads(message["Body"])["continuation"]
    assert continuation["line"] == S3_CHUNK_ROWS + 2
    assert (continuation["bucket"], continuation["key"]) == (aws["bucket"], key)
    assert continuation["etag"] == put["ETag"].strip('"')
    assert continuation["eventTime"] == pytest.approx(f.ARRIVAL_SECONDS)
    partial = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert (partial["status"], partial["nextLine"], partial["delivered"]) == ("continued", S3_CHUNK_ROWS + 2, 500)

    # WHEN the continuation message is handled with time enough
    second = handler()(f.lambda_sqs_event([message], arn), f.FakeLambdaContext())

    # THEN the remaining rows are delivered, none twice, and the result covers the whole object
    assert second == {"batchItemFailures": []}
    stored = emulator.records("events")
    assert len(stored) == rows
    assert sorted(int(r["element"]["itemId"][2:]) for r in stored) == list(range(rows))
    assert not any(r["duplicate"] for r in stored)
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert (result["status"], result["delivered"], result["rejected"], result["failed"]) == (
        "complete",
        rows,
        0,
        0,
    )
    assert receive_all(aws["sqs"], url) == []


def test_fifo_continuation_keeps_the_message_group_and_skips_gzip_rows_already_sent(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a gzip object announced by an EventBridge event through a FIFO queue (group "files")
    rows = 700
    key = "events/big.csv.gz"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=gzip.compress(interactions_csv(rows)))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}.fifo", fifo=True)
    announcement = f.eventbridge_object_created(aws["bucket"], key, etag=put["ETag"].strip('"'))
    event = f.sqs_event([f.sqs_message(announcement, "notice", arn=arn, group_id="files")])

    # WHEN the first invocation runs out of time after one chunk
    first = handler()(event, f.FakeLambdaContext(clock=clock_until(emulator, S3_CHUNK_ROWS)))

    # THEN the continuation went to the same FIFO queue and group
    assert first == {"batchItemFailures": []}
    (message,) = receive_all(aws["sqs"], url)
    assert message["Attributes"]["MessageGroupId"] == "files"

    # WHEN the continuation is handled
    second = handler()(f.lambda_sqs_event([message], arn), f.FakeLambdaContext())

    # THEN the gzip object was re-read and only the rows after the continuation line were sent
    assert second == {"batchItemFailures": []}
    stored = emulator.records("events")
    assert sorted(int(r["element"]["itemId"][2:]) for r in stored) == list(range(rows))


def test_direct_s3_invocation_out_of_time_raises_for_a_retry(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a direct S3 invocation for a 700-row object and time for one chunk only
    key = "events/direct.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(700))
    event = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"')))

    # WHEN invoked / THEN it raises, since there is no queue to continue through
    with pytest.raises(IngestIncomplete, match="deadline"):
        handler()(event, f.FakeLambdaContext(clock=clock_until(emulator, S3_CHUNK_ROWS)))

    # AND the result file says the object is incomplete after the first chunk
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert (result["status"], result["delivered"]) == ("incomplete", S3_CHUNK_ROWS)


def sorted_by_user_csv(users: int, rows_per_user: int) -> bytes:
    """A bulk file sorted by user, as exports usually are: each user's rows together, in time order."""
    lines = ["USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP"]
    for user in range(users):
        lines += [f"u-{user},i-{user}-{n},click,{1764400000 + n}" for n in range(rows_per_user)]
    return ("\n".join(lines) + "\n").encode()


def test_a_chunk_of_a_file_sorted_by_user_waits_for_enough_sessions_and_sessions_keep_order_across_chunks(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a file of 40 users x 100 rows, sorted by user, and an invocation whose time runs out after one chunk
    users, per_user = 40, 100
    lanes_wanted = LANES_PER_WORKER * 8  # MAX_CONCURRENT_CALLS defaults to 8
    first_chunk_rows = (lanes_wanted - 1) * per_user + 1  # up to and including the first row of the 32nd user
    key = "events/sorted.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=sorted_by_user_csv(users, per_user))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    notification = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"')))
    first_event = f.sqs_event([f.sqs_message(notification, "notice", arn=arn)])

    # WHEN the events function handles it
    first = handler()(first_event, f.FakeLambdaContext(clock=clock_until(emulator, first_chunk_rows)))

    # THEN the first chunk ran past S3_CHUNK_ROWS until it held 32 sessions, and the continuation names the row
    # after it (line 1 is the header)
    assert first == {"batchItemFailures": []}
    assert emulator.counts()["events"] == first_chunk_rows > S3_CHUNK_ROWS
    (message,) = receive_all(aws["sqs"], url)
    assert json.loads(message["Body"])["continuation"]["line"] == first_chunk_rows + 2

    # WHEN the continuation is handled with time enough
    second = handler()(f.lambda_sqs_event([message], arn), f.FakeLambdaContext())

    # THEN every row arrived once, and every user's events arrived in source order, also the 32nd user's, whose
    # first row was in the first chunk and the others in the second invocation
    assert second == {"batchItemFailures": []}
    stored = emulator.records("events")
    assert len(stored) == users * per_user
    arrival: dict[str, list[int]] = {}
    for row in stored:
        user, n = row["element"]["itemId"][2:].split("-")
        arrival.setdefault(user, []).append(int(n))
    assert arrival == {str(user): list(range(per_user)) for user in range(users)}


def test_without_a_deadline_a_file_sorted_by_user_is_delivered_with_sessions_in_order(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a file sorted by user with long sessions (6 users x 400 rows, more than one chunk's minimum each)
    users, per_user = 6, 400
    key = "events/long-sessions.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=sorted_by_user_csv(users, per_user))
    event = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"')))

    # WHEN handled in one invocation
    handler()(event, f.FakeLambdaContext())

    # THEN each user's events arrived in source order and every call carried one user
    arrival: dict[str, list[int]] = {}
    for row in emulator.records("events"):
        user, n = row["element"]["itemId"][2:].split("-")
        assert row["request"]["userId"] == f"u-{user}"
        arrival.setdefault(user, []).append(int(n))
    assert arrival == {str(user): list(range(per_user)) for user in range(users)}


def test_a_chunk_starts_only_if_a_full_size_chunk_at_the_last_cost_per_row_fits_before_the_margin(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a 1,300-row object and a context where every stored event costs 1 ms of the invocation: 6.5 s before
    # the 5 s margin at the start, so 6.0 s after the first 500-row chunk. At that cost per row a chunk of
    # S3_CHUNK_MAX_ROWS would take 5 s (x 1.5 = 7.5 s), more than is left, although the last chunk took 0.5 s.
    margin_ms, before_margin_ms = 5_000, 6_500
    key = "events/costly.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(1_300))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    notification = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"')))
    event = f.sqs_event([f.sqs_message(notification, "notice", arn=arn)])

    def remaining_ms() -> int:
        return margin_ms + before_margin_ms - emulator.counts().get("events", 0)

    # WHEN handled
    response = handler()(event, f.FakeLambdaContext(clock=remaining_ms))

    # THEN one chunk was delivered and the rest continues through the queue
    assert response == {"batchItemFailures": []}
    assert emulator.counts()["events"] == S3_CHUNK_ROWS
    (message,) = receive_all(aws["sqs"], url)
    assert json.loads(message["Body"])["continuation"]["line"] == S3_CHUNK_ROWS + 2


def test_deadline_already_reached_fails_inline_records_unsent(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a Kinesis batch and an invocation with less time left than the margin
    event = f.kinesis_event([{"sessionId": "s", "userId": "u", "eventType": "click", "itemId": "i-1"}])

    # WHEN handled
    response = handler()(event, f.FakeLambdaContext(remaining_ms=1_000))

    # THEN nothing was sent and the record is reported for retry
    assert response == {"batchItemFailures": [{"itemIdentifier": f.sequence_number(1)}]}
    assert emulator.calls() == []
