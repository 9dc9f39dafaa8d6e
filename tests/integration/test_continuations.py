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
from tests.support.s3files import interactions_csv, queue, receive_all, take_all

PLENTY_MS = 600_000


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


def test_fifo_gzip_object_resumes_from_its_progress_marker_and_skips_gzip_rows_already_sent(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a gzip object announced by an EventBridge event through a FIFO queue (group "files")
    rows = 700
    key = "events/big.csv.gz"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=gzip.compress(interactions_csv(rows)))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}.fifo", fifo=True)
    announcement = f.eventbridge_object_created(aws["bucket"], key, etag=put["ETag"].strip('"'))
    aws["sqs"].send_message(
        QueueUrl=url, MessageBody=json.dumps(announcement), MessageGroupId="files", MessageDeduplicationId="a"
    )

    # WHEN the first invocation runs out of time after one chunk
    first = poll(aws, url, arn, f.FakeLambdaContext(clock=clock_until(emulator, S3_CHUNK_ROWS)))

    # THEN no continuation was sent: the announcement itself is reported failed, kept in its group, visible at
    # once, and a progress marker holds where to resume
    assert first is not None and len(first["batchItemFailures"]) == 1
    (message,) = receive_all(aws["sqs"], url)
    assert message["Attributes"]["MessageGroupId"] == "files"
    assert json.loads(message["Body"]) == announcement
    (marker,) = progress_markers(aws, key)
    kept = json.loads(aws["s3"].get_object(Bucket=aws["bucket"], Key=marker)["Body"].read())
    assert (kept["continuation"]["line"], kept["continuation"]["hops"]) == (S3_CHUNK_ROWS + 2, 1)
    partial = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert (partial["status"], partial["resumesBy"], partial["nextLine"]) == (
        "continued",
        "redelivery",
        S3_CHUNK_ROWS + 2,
    )

    # WHEN the redelivered announcement is handled with time enough
    second = handler()(f.lambda_sqs_event([message], arn), f.FakeLambdaContext())

    # THEN the gzip object was re-read and only the rows after the marker's line were sent
    assert second == {"batchItemFailures": []}
    stored = emulator.records("events")
    assert sorted(int(r["element"]["itemId"][2:]) for r in stored) == list(range(rows))
    assert progress_markers(aws, key) == []


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


def test_a_long_file_spends_at_least_80_percent_of_the_budget_delivering_before_it_continues(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a 10,000-row object and a context where every stored event costs 1 ms of the invocation, with 6.5 s
    # before the 5 s margin: the budget is worth 6,500 rows
    margin_ms, before_margin_ms = 5_000, 6_500
    key = "events/costly.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(10_000))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    notification = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"')))
    event = f.sqs_event([f.sqs_message(notification, "notice", arn=arn)])

    def remaining_ms() -> int:
        return margin_ms + before_margin_ms - emulator.counts().get("events", 0)

    # WHEN handled
    response = handler()(event, f.FakeLambdaContext(clock=remaining_ms))

    # THEN at least 80% of the budget went into delivering, and the rest continues right after the last row sent
    assert response == {"batchItemFailures": []}
    delivered = emulator.counts()["events"]
    assert delivered >= 0.8 * before_margin_ms
    (message,) = receive_all(aws["sqs"], url)
    assert json.loads(message["Body"])["continuation"]["line"] == delivered + 2


def run_chain(
    emulator: EmulatorHandle,
    sqs: Any,
    url: str,
    arn: str,
    first_event: dict[str, Any],
    *,
    events_per_invocation: int,
    max_invocations: int = 60,
) -> list[dict[str, Any]]:
    """Handle the event, then every message the function puts back on the queue, one at a time, each with time
    for about ``events_per_invocation`` stored events (the deadline comes in the middle of a chunk's calls).
    Return the message bodies handled after the first event, in order."""
    bodies: list[dict[str, Any]] = []
    pending = [first_event]
    for _ in range(max_invocations):
        if not pending:
            return bodies
        event = pending.pop(0)
        base = emulator.counts().get("events", 0)

        def clock(base: int = base) -> int:
            return PLENTY_MS if emulator.counts().get("events", 0) - base < events_per_invocation else 0

        response = handler()(event, f.FakeLambdaContext(clock=clock))
        assert response == {"batchItemFailures": []}
        for message in take_all(sqs, url):
            bodies.append(json.loads(message["Body"])["continuation"])
            pending.append(f.lambda_sqs_event([message], arn))
    raise AssertionError(f"still continuing after {max_invocations} invocations")


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_chain_with_a_tiny_budget_delivers_every_row_exactly_once_and_moves_forward_every_hop(
    aws: dict[str, Any], emulator: EmulatorHandle, compress: bool
) -> None:
    # GIVEN a 4,000-row object and invocations whose deadline comes after ~730 stored events, inside a chunk
    rows = 4_000
    key = "events/chain.csv.gz" if compress else "events/chain.csv"
    data = interactions_csv(rows)
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=gzip.compress(data) if compress else data)
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    notification = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"')))

    # WHEN the notification and every continuation are handled
    continuations = run_chain(
        emulator,
        aws["sqs"],
        url,
        arn,
        f.sqs_event([f.sqs_message(notification, "notice", arn=arn)]),
        events_per_invocation=730,
    )

    # THEN every row arrived exactly once (no eventId stored twice) although the deadline cut chunks short
    stored = emulator.records("events")
    assert sorted(int(r["element"]["itemId"][2:]) for r in stored) == list(range(rows))
    assert not any(r["duplicate"] for r in stored)
    # AND each continuation starts strictly after the one before it, at a byte offset, one hop further
    assert len(continuations) >= 4
    assert any(c.get("skip") for c in continuations), "a deadline inside a chunk carries the lines already sent"
    positions = [(c["offset"], c["line"]) for c in continuations]
    assert positions == sorted(set(positions))
    assert [c["hops"] for c in continuations] == list(range(1, len(continuations) + 1))
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert (result["status"], result["delivered"], result["failed"], result["hops"]) == (
        "complete",
        rows,
        0,
        len(continuations),
    )


def test_an_invocation_that_handles_no_row_fails_its_message_instead_of_continuing(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a continuation message whose invocation has no time for any call (less than the margin is left)
    key = "events/stuck.csv"
    data = interactions_csv(1_000)
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=data)
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    offset = data.index(b"u-", data.index(b"\n") + 1)
    body = {
        "continuation": {
            "bucket": aws["bucket"],
            "key": key,
            "etag": put["ETag"].strip('"'),
            "line": 2,
            "offset": offset,
            "eventTime": f.ARRIVAL_SECONDS,
            "hops": 3,
        }
    }
    event = f.sqs_event([f.sqs_message(body, "stuck", arn=arn)])

    # WHEN handled
    response = handler()(event, f.FakeLambdaContext(remaining_ms=1_000))

    # THEN the message is reported failed (maxReceiveCount and the DLQ apply), no continuation is sent, and the
    # result file says why the file stopped
    assert response == {"batchItemFailures": [{"itemIdentifier": "stuck"}]}
    assert receive_all(aws["sqs"], url) == []
    assert emulator.calls() == []
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert result["status"] == "stopped"
    assert "no row could be handled before the deadline (line 2" in result["error"]


def test_a_continuation_past_the_hop_limit_stops_and_fails_its_message(
    aws: dict[str, Any], emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN S3_MAX_HOPS=5 and a continuation that is the fifth hop
    monkeypatch.setenv("S3_MAX_HOPS", "5")
    key = "events/hops.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(10))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    body = {
        "continuation": {
            "bucket": aws["bucket"],
            "key": key,
            "etag": put["ETag"].strip('"'),
            "line": 2,
            "offset": 36,
            "eventTime": f.ARRIVAL_SECONDS,
            "hops": 5,
        }
    }

    # WHEN handled with plenty of time
    response = handler()(f.sqs_event([f.sqs_message(body, "hop", arn=arn)]), f.FakeLambdaContext())

    # THEN nothing is read or sent, the message fails, and the result file names the limit
    assert response == {"batchItemFailures": [{"itemIdentifier": "hop"}]}
    assert emulator.calls() == [] and receive_all(aws["sqs"], url) == []
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert result["status"] == "stopped" and "S3_MAX_HOPS is 5" in result["error"]


def test_a_continuation_of_the_earlier_line_only_format_still_resumes_at_its_line(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a continuation message as the previous version of the function sent them (a line, no byte offset)
    key = "events/legacy.csv"
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(700))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}")
    body = {
        "continuation": {
            "bucket": aws["bucket"],
            "key": key,
            "etag": put["ETag"].strip('"'),
            "line": 502,
            "eventTime": f.ARRIVAL_SECONDS,
            "progress": {"delivered": 500, "rejected": 0},
        }
    }

    # WHEN handled
    response = handler()(f.sqs_event([f.sqs_message(body, "legacy", arn=arn)]), f.FakeLambdaContext())

    # THEN the rows from line 502 on were sent and the result counts the whole object
    assert response == {"batchItemFailures": []}
    assert sorted(int(r["element"]["itemId"][2:]) for r in emulator.records("events")) == list(range(500, 700))
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert (result["status"], result["delivered"]) == ("complete", 700)
    assert receive_all(aws["sqs"], url) == []


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


# ---------------------------------------------------------------------------------------------------- FIFO


def poll(aws: dict[str, Any], url: str, arn: str, context: f.FakeLambdaContext) -> dict[str, Any] | None:
    """One round of Lambda's SQS poller: receive a batch, invoke the function, delete the messages it did not
    report failed. None when nothing could be received."""
    messages = receive_all(aws["sqs"], url)
    if not messages:
        return None
    response = handler()(f.lambda_sqs_event(messages, arn), context)
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return response


def progress_markers(aws: dict[str, Any], key: str) -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix=f"results/{key}.progress/")
    return [entry["Key"] for entry in listed.get("Contents", [])]


def fifo_group_with_a_big_object(aws: dict[str, Any], key: str, rows: int) -> tuple[str, str, str]:
    """A FIFO queue holding, in group "g", the announcement of a ``rows``-row object then a later record."""
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(rows))
    url, arn = queue(aws["sqs"], f"ingest-{aws['suffix']}.fifo", fifo=True)
    announcement = f.eventbridge_object_created(aws["bucket"], key, etag=put["ETag"].strip('"'))
    later = {"sessionId": "s-later", "userId": "u-later", "eventType": "click", "itemId": "later-1", "sentAt": 1}
    for dedup, body in (("announce", announcement), ("later", later)):
        aws["sqs"].send_message(
            QueueUrl=url, MessageBody=json.dumps(body), MessageGroupId="g", MessageDeduplicationId=dedup
        )
    return url, arn, put["ETag"].strip('"')


def test_fifo_object_resumes_at_the_head_of_its_group_before_a_later_message_of_the_group(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a FIFO group holding the announcement of a 1,300-row object and, after it, a message with one record;
    # and another group with one record
    rows = 1_300
    key = "events/fifo-big.csv"
    url, arn, _ = fifo_group_with_a_big_object(aws, key, rows)
    other = {"sessionId": "s-other", "userId": "u-other", "eventType": "click", "itemId": "other-1", "sentAt": 1}
    aws["sqs"].send_message(
        QueueUrl=url, MessageBody=json.dumps(other), MessageGroupId="h", MessageDeduplicationId="other"
    )

    # WHEN Lambda's poller runs rounds whose invocations each have time for one chunk of rows only
    responses = []
    while len(responses) < 10:
        stored_before = emulator.counts().get("events", 0)
        context = f.FakeLambdaContext(clock=clock_until(emulator, stored_before + S3_CHUNK_ROWS))
        response = poll(aws, url, arn, context)
        if response is None:
            break
        responses.append(response)

    # THEN the first rounds failed both messages (the announcement held at the head of its group, the later
    # message behind it) and the messages came back at once, without waiting for their visibility timeout
    assert len(responses) == 3
    assert all(len(r["batchItemFailures"]) == 2 for r in responses[:2])
    assert responses[2] == {"batchItemFailures": []}
    # AND no continuation message was sent: the queue is empty
    assert receive_all(aws["sqs"], url) == []
    # AND every row was delivered exactly once, and the later record only after the object's last row; the other
    # group went on in the first round
    stored = emulator.records("events")
    items = [r["element"]["itemId"] for r in stored]
    assert items[-1] == "later-1"
    assert items.count("other-1") == 1 and items.index("other-1") < S3_CHUNK_ROWS + 1
    rows_stored = [item for item in items if item.startswith("i-")]
    assert sorted(int(item[2:]) for item in rows_stored) == list(range(rows))
    assert len(items) == rows + 2
    assert not any(r["duplicate"] for r in stored)
    # AND the result file covers the whole object, and the progress marker is gone
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert (result["status"], result["delivered"], result["failed"], result["hops"]) == ("complete", rows, 0, 2)
    assert progress_markers(aws, key) == []


def test_fifo_object_that_needs_more_hops_than_allowed_stops_and_its_message_fails(
    aws: dict[str, Any], emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN S3_MAX_HOPS=2 and a FIFO group holding a 2,000-row object (four chunks) then a later record
    monkeypatch.setenv("S3_MAX_HOPS", "2")
    rows = 2_000
    key = "events/fifo-stuck.csv"
    url, arn, _ = fifo_group_with_a_big_object(aws, key, rows)

    # WHEN the poller runs rounds with time for one chunk each
    responses = []
    for _ in range(3):
        stored_before = emulator.counts().get("events", 0)
        context = f.FakeLambdaContext(clock=clock_until(emulator, stored_before + S3_CHUNK_ROWS))
        response = poll(aws, url, arn, context)
        assert response is not None
        responses.append(response)

    # THEN the third receive stops at once: both messages failed, no row sent again, the later record not sent
    assert all(len(r["batchItemFailures"]) == 2 for r in responses)
    stored = emulator.records("events")
    assert len(stored) == 2 * S3_CHUNK_ROWS
    assert not any(r["duplicate"] for r in stored)
    assert "later-1" not in {r["element"]["itemId"] for r in stored}
    # AND the result file says why, naming the receive count; the marker stays so every later receive stops too
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert result["status"] == "stopped"
    assert "S3_MAX_HOPS is 2" in result["error"]
    assert "receive 3" in result["error"] and result["receiveCount"] == 3
    assert len(progress_markers(aws, key)) == 1
    # AND the stopped message was not made visible again: it waits for its visibility timeout (then the DLQ)
    assert receive_all(aws["sqs"], url) == []


def test_fifo_redelivery_that_handles_no_row_fails_normally_and_keeps_the_marker(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a FIFO group [1,300-row object, later record] whose first round delivered one chunk and kept a marker
    key = "events/fifo-no-progress.csv"
    url, arn, _ = fifo_group_with_a_big_object(aws, key, 1_300)
    first = poll(aws, url, arn, f.FakeLambdaContext(clock=clock_until(emulator, S3_CHUNK_ROWS)))
    assert first is not None and len(first["batchItemFailures"]) == 2
    (marker,) = progress_markers(aws, key)

    # WHEN the redelivery has no time left at all
    second = poll(aws, url, arn, f.FakeLambdaContext(clock=lambda: 0))

    # THEN both messages fail again, nothing more was sent, and they are NOT made visible early (the visibility
    # timeout, maxReceiveCount and the DLQ apply)
    assert second is not None and len(second["batchItemFailures"]) == 2
    assert emulator.counts()["events"] == S3_CHUNK_ROWS
    assert receive_all(aws["sqs"], url) == []
    # AND the result file says why and on which receive; the marker still points at the first row not handled
    result = json.loads(
        aws["s3"].get_object(Bucket=aws["bucket"], Key=f"results/{key}.result.json")["Body"].read()
    )
    assert result["status"] == "stopped"
    assert "no row could be handled" in result["error"] and "receive 2" in result["error"]
    kept = json.loads(aws["s3"].get_object(Bucket=aws["bucket"], Key=marker)["Body"].read())
    assert kept["continuation"]["line"] == S3_CHUNK_ROWS + 2
