"""Big and bad S3 files: fan-out by byte ranges, bounded memory, and bad input that ends clearly, never in a loop.

Functions run in-process against moto (S3, SQS) and the emulator over loopback; the test hands the messages the
function puts on its queue back to it, as Lambda's event source mapping would.
"""

from __future__ import annotations

import gzip
import importlib
import json
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from emulator.config import DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle
from personalize_ingest.s3objects import MAX_LINE_BYTES
from personalize_ingest.s3stage import S3_CHUNK_MAX_BYTES
from tests.support import factories as f
from tests.support.environment import drain
from tests.support.moto import moto_process
from tests.support.s3files import interactions_csv, queue, receive_all, result_file, take_all


@pytest.fixture
def aws(moto_env: str, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return buckets_and_queues(monkeypatch)


@pytest.fixture
def aws_apart(emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Like ``aws``, with moto in a process of its own: this process's memory holds only the function's data."""
    with moto_process() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        yield buckets_and_queues(monkeypatch)


def buckets_and_queues(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = f"ingest-{suffix}"
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("PERSONALIZE_TRACKING_ID", DEFAULT_TRACKING_ID)
    monkeypatch.setenv("PERSONALIZE_DATASET_ARN", DEFAULT_DATASET_ARNS["ITEMS"])
    rejects = sqs.create_queue(QueueName=f"rejects-{suffix}")["QueueUrl"]
    monkeypatch.setenv("REJECTS_QUEUE_URL", rejects)
    url, arn = queue(sqs, f"ingest-{suffix}")
    return {"s3": s3, "sqs": sqs, "bucket": bucket, "url": url, "arn": arn, "rejects": rejects}


def handler(entity: str = "events") -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    return importlib.import_module(f"{entity}.handler").lambda_handler


def announce(aws: dict[str, Any], key: str, body: bytes) -> dict[str, Any]:
    """Put the object and return the SQS event of its S3 notification."""
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=body)
    notification = f.s3_notification(f.s3_record(aws["bucket"], key, etag=put["ETag"].strip('"'), size=len(body)))
    return f.sqs_event([f.sqs_message(notification, "notice", arn=aws["arn"])])


def test_a_large_plain_object_is_fanned_out_into_ranges_that_deliver_every_row_once_and_one_complete_result(
    aws: dict[str, Any], emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN fan-out from 20 KB in at most 4 ranges, and a 3,000-row events CSV (~100 KB)
    monkeypatch.setenv("S3_FANOUT_MIN_BYTES", "20000")
    monkeypatch.setenv("S3_FANOUT_RANGE_BYTES", "1024")
    monkeypatch.setenv("S3_FANOUT_MAX_RANGES", "4")
    rows = 3_000
    key = "events/huge.csv"
    event = announce(aws, key, interactions_csv(rows))

    # WHEN the notification is handled
    assert handler()(event, f.FakeLambdaContext()) == {"batchItemFailures": []}

    # THEN nothing was sent yet: four range messages wait on the source queue and the result says so
    assert emulator.calls() == []
    ranges = take_all(aws["sqs"], aws["url"])
    assert len(ranges) == 4
    assert result_file(aws["s3"], aws["bucket"], key)["status"] == "in_progress"
    bodies = [json.loads(m["Body"])["continuation"] for m in ranges]
    assert sorted(b["range"]["index"] for b in bodies) == [0, 1, 2, 3]

    # WHEN the ranges are handled by concurrent-looking invocations, the last range first, one of them with a
    # deadline that comes after 200 events (it continues within its range)
    ordered = sorted(ranges, key=lambda m: -json.loads(m["Body"])["continuation"]["range"]["index"])
    for position, message in enumerate(ordered):
        if position == 1:
            base = emulator.counts().get("events", 0)
            context = f.FakeLambdaContext(
                clock=lambda base=base: 600_000 if emulator.counts().get("events", 0) - base < 200 else 0
            )
        else:
            context = f.FakeLambdaContext()
        assert handler()(f.lambda_sqs_event([message], aws["arn"]), context) == {"batchItemFailures": []}
        if position < 3:
            assert result_file(aws["s3"], aws["bucket"], key)["status"] == "in_progress"
    (continuation,) = take_all(aws["sqs"], aws["url"])
    assert json.loads(continuation["Body"])["continuation"]["range"]["index"] == 2
    handler()(f.lambda_sqs_event([continuation], aws["arn"]), f.FakeLambdaContext())

    # THEN every row arrived once, and the result file adds the four ranges up
    stored = emulator.records("events")
    assert sorted(int(r["element"]["itemId"][2:]) for r in stored) == list(range(rows))
    assert not any(r["duplicate"] for r in stored)
    result = result_file(aws["s3"], aws["bucket"], key)
    assert (result["status"], result["ranges"], result["delivered"], result["rejected"], result["failed"]) == (
        "complete",
        4,
        rows,
        0,
        0,
    )
    assert result["lastLine"] == rows + 1


def test_a_gzip_object_above_the_fan_out_size_is_read_in_one_line_of_continuations(
    aws: dict[str, Any], emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN fan-out from 1 KB and a gzip CSV
    monkeypatch.setenv("S3_FANOUT_MIN_BYTES", "1024")
    event = announce(aws, "events/big.csv.gz", gzip.compress(interactions_csv(1_000)))

    # WHEN handled / THEN it is read at once, with no range message
    assert handler()(event, f.FakeLambdaContext()) == {"batchItemFailures": []}
    assert emulator.counts()["events"] == 1_000
    assert receive_all(aws["sqs"], aws["url"]) == []


def test_an_object_announced_on_a_fifo_queue_is_never_fanned_out(
    aws: dict[str, Any], emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN fan-out from 1 KB, and a plain object announced by EventBridge through a FIFO queue
    monkeypatch.setenv("S3_FANOUT_MIN_BYTES", "1024")
    url, arn = queue(aws["sqs"], f"fifo-{uuid.uuid4().hex[:8]}.fifo", fifo=True)
    put = aws["s3"].put_object(Bucket=aws["bucket"], Key="events/ordered.csv", Body=interactions_csv(800))
    announcement = f.eventbridge_object_created(aws["bucket"], "events/ordered.csv", etag=put["ETag"].strip('"'))
    event = f.sqs_event([f.sqs_message(announcement, "notice", arn=arn, group_id="files")])

    # WHEN handled / THEN this invocation reads it whole, no range message is queued
    assert handler()(event, f.FakeLambdaContext()) == {"batchItemFailures": []}
    assert sorted(int(r["element"]["itemId"][2:]) for r in emulator.records("events")) == list(range(800))
    assert receive_all(aws["sqs"], url) == []
    assert result_file(aws["s3"], aws["bucket"], "events/ordered.csv")["status"] == "complete"


def test_an_object_replaced_between_two_reads_ends_in_a_reject_and_a_changed_result_not_a_loop(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN an object read up to the deadline, then replaced before its continuation runs
    key = "events/replaced.csv"
    event = announce(aws, key, interactions_csv(1_500))
    context = f.FakeLambdaContext(clock=lambda: 600_000 if emulator.counts().get("events", 0) < 500 else 0)
    handler()(event, context)
    (continuation,) = take_all(aws["sqs"], aws["url"])
    aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=interactions_csv(10))

    # WHEN the continuation is handled
    response = handler()(f.lambda_sqs_event([continuation], aws["arn"]), f.FakeLambdaContext())

    # THEN the message is acknowledged, no continuation follows, one reject names the line reading stopped at, and
    # the result file says the object changed
    assert response == {"batchItemFailures": []}
    assert receive_all(aws["sqs"], aws["url"]) == []
    (reject,) = [json.loads(body) for body in drain(aws["sqs"], aws["rejects"])]
    assert reject["code"] == "object_changed" and reject["source"]["line"] == 502
    result = result_file(aws["s3"], aws["bucket"], key)
    assert result["status"] == "changed" and "changed or was deleted" in result["error"]
    assert result["delivered"] == 500


def test_a_truncated_gzip_object_delivers_its_rows_and_sets_the_rest_aside_with_the_line(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a gzip CSV cut in the middle
    data = gzip.compress(interactions_csv(5_000))
    event = announce(aws, "events/cut.csv.gz", data[: len(data) // 2])

    # WHEN handled
    assert handler()(event, f.FakeLambdaContext()) == {"batchItemFailures": []}

    # THEN the readable rows arrived and one reject names where the body stopped being readable
    delivered = emulator.counts()["events"]
    assert 0 < delivered < 5_000
    (reject,) = [json.loads(body) for body in drain(aws["sqs"], aws["rejects"])]
    assert reject["code"] == "invalid_gzip" and reject["source"]["line"] == delivered + 2
    result = result_file(aws["s3"], aws["bucket"], "events/cut.csv.gz")
    assert (result["status"], result["delivered"], result["rejected"]) == ("complete", delivered, 1)
    assert result["rejectCodes"] == {"invalid_gzip": 1}


def test_a_header_of_another_entity_refuses_the_object_with_one_reject(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a users file dropped where items are read
    event = announce(aws, "items/users.csv", b"USER_ID,AGE\n" + b"".join(b"u-%d,30\n" % n for n in range(500)))

    # WHEN the items function handles it
    assert handler("items")(event, f.FakeLambdaContext()) == {"batchItemFailures": []}

    # THEN no row is sent, one reject names the missing column, and the result file says why
    assert emulator.calls() == []
    (reject,) = [json.loads(body) for body in drain(aws["sqs"], aws["rejects"])]
    assert reject["code"] == "invalid_csv" and "no ITEM_ID column" in reject["reason"]
    result = result_file(aws["s3"], aws["bucket"], "items/users.csv")
    assert result["status"] == "unreadable" and "another entity" in result["error"]


def test_wide_rejected_rows_are_set_aside_as_they_come_and_memory_stays_far_below_the_object(
    aws_apart: dict[str, Any], emulator: EmulatorHandle
) -> None:
    aws = aws_apart
    # GIVEN 150 item rows of 80 KB whose properties are too long (12 MB of rows that are all rejected)
    wide = "x" * 80_000
    body = b"ITEM_ID,DESCRIPTION\n" + b"".join(f"i-{n},{wide}\n".encode() for n in range(150))
    event = announce(aws, "items/wide.csv", body)

    # WHEN handled while Python's allocations are traced
    tracemalloc.start()
    try:
        assert handler("items")(event, f.FakeLambdaContext()) == {"batchItemFailures": []}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN every row reached the rejects queue, and the peak held about one chunk's bytes (S3_CHUNK_MAX_BYTES), not
    # the object (the old reader held every rejected row of a 5,000-row chunk: the whole object here)
    assert peak < 2 * S3_CHUNK_MAX_BYTES < len(body)
    assert len(drain(aws["sqs"], aws["rejects"])) == 150
    result = result_file(aws["s3"], aws["bucket"], "items/wide.csv")
    assert (result["status"], result["rejected"], len(result["rejects"])) == ("complete", 150, 10)


def test_a_file_of_undecodable_lines_is_rejected_line_by_line_with_memory_bounded(
    aws_apart: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN a cp1252 items file of 300 lines that are not UTF-8, each 8 KB (2.4 MB)
    aws = aws_apart
    body = b"ITEM_ID,TITLE\n" + b"".join(b"i-%d,caf\xe9 %s\n" % (n, b"y" * 8_000) for n in range(300))
    event = announce(aws, "items/latin.csv", body)

    # WHEN handled while allocations are traced
    tracemalloc.start()
    try:
        assert handler("items")(event, f.FakeLambdaContext()) == {"batchItemFailures": []}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN each line was set aside with its reason, and the peak stayed below the object's size
    assert peak < len(body)
    result = result_file(aws["s3"], aws["bucket"], "items/latin.csv")
    assert (result["rejected"], result["rejectCodes"]) == (300, {"invalid_encoding": 300})
    assert result["rejects"][0]["reason"] == "line 2 is not UTF-8 (byte 7 of the line)"
    assert emulator.calls() == []


def test_a_row_longer_than_the_byte_cap_is_one_reject_and_its_neighbours_are_delivered(
    aws: dict[str, Any], emulator: EmulatorHandle
) -> None:
    # GIVEN JSON Lines items whose second line is longer than MAX_LINE_BYTES
    huge = json.dumps({"itemId": "i-huge", "properties": {"x": "y" * (MAX_LINE_BYTES + 10)}}).encode()
    body = b'{"itemId": "i-1"}\n' + huge + b'\n{"itemId": "i-3"}\n'
    event = announce(aws, "items/long.jsonl", body)

    # WHEN handled
    assert handler("items")(event, f.FakeLambdaContext()) == {"batchItemFailures": []}

    # THEN the two short rows were sent, the long one set aside by its line without its bytes, and the result
    # file counts it
    assert sorted(e["element"]["itemId"] for e in emulator.records("items")) == ["i-1", "i-3"]
    (reject,) = [json.loads(b) for b in drain(aws["sqs"], aws["rejects"])]
    assert (reject["code"], reject["source"]["line"]) == ("too_long", 2)
    result = result_file(aws["s3"], aws["bucket"], "items/long.jsonl")
    assert (result["status"], result["delivered"], result["rejectCodes"]) == ("complete", 2, {"too_long": 1})
