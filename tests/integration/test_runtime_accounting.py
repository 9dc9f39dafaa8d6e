"""Issue 2, requirement by requirement, through the handlers: nothing dropped, nothing set aside by mistake.

Each test drives a real handler against moto (SQS, S3) and the Personalize Events emulator and asserts on what the
emulator stored, the rejects queue, result files, the batch response, EMF metrics and log records. Fixtures and
helpers come from ``test_handlers``.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from emulator.testing import EmulatorHandle
from personalize_ingest.entities import EVENTS
from personalize_ingest.pipeline import make_handler
from personalize_ingest.s3stage import S3_CHUNK_ROWS
from tests.integration.test_handlers import INVALID, VALID, Stack, build_stack, emf_documents, metric
from tests.support import factories as f

NOT_FAILED: dict[str, list[Any]] = {"batchItemFailures": []}


@pytest.fixture
def stack(moto_env: str, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Stack:
    return build_stack(emulator, monkeypatch)


def event_record(item_id: str) -> dict[str, Any]:
    return VALID["events"] | {"itemId": item_id}


def etag_of(put: dict[str, Any]) -> str:
    return str(put["ETag"]).strip('"')


def assert_redelivery_is_a_duplicate(stored: list[dict[str, Any]], per_round: int, rounds: int = 2) -> None:
    """The first round stored ``per_round`` distinct eventIds; every later round repeated exactly those."""
    assert len(stored) == per_round * rounds
    first = [row["element"]["eventId"] for row in stored[:per_round]]
    assert len(set(first)) == per_round
    assert not any(row["duplicate"] for row in stored[:per_round])
    for start in range(per_round, per_round * rounds, per_round):
        later = stored[start : start + per_round]
        assert sorted(row["element"]["eventId"] for row in later) == sorted(first)
        assert all(row["duplicate"] for row in later)


# --------------------------------------------------------------------------------------------- eventId


def test_kinesis_redelivery_repeats_every_event_id_plain_array_and_kpl(stack: Stack) -> None:
    # GIVEN a Kinesis batch: a plain record, a JSON array of two, and a KPL aggregate of a record and an array
    handler = stack.configure("events")
    aggregate = f.kpl_aggregate([event_record("i-4"), [event_record("i-5"), event_record("i-6")]])
    event = f.kinesis_event([event_record("i-1"), [event_record("i-2"), event_record("i-3")]])
    event["Records"].append(f.kinesis_record(aggregate, f.sequence_number(3)))

    # WHEN Lambda delivers the same batch twice (a retry after a partial failure)
    for _ in range(2):
        assert handler(event, f.FakeLambdaContext()) == NOT_FAILED

    # THEN the second delivery carries the same six eventIds, so Personalize ignores it
    assert_redelivery_is_a_duplicate(stack.emulator.records("events"), per_round=6)


@pytest.mark.parametrize("entity", ["events", "action_interactions"])
def test_sqs_redelivery_repeats_every_event_id_plain_array_and_sns(stack: Stack, entity: str) -> None:
    # GIVEN an SQS batch: a record, an array of two records, and a record inside an SNS envelope
    handler = stack.configure(entity)
    valid = VALID[entity]
    event = f.sqs_event(
        [
            f.sqs_message(valid, "m-plain"),
            f.sqs_message([valid, valid], "m-array"),
            f.sqs_message(f.sns_envelope(valid), "m-sns"),
        ]
    )

    # WHEN the same messages are received twice
    for _ in range(2):
        assert handler(event, f.FakeLambdaContext()) == NOT_FAILED

    # THEN the eventIds name queue, message and index: identical records still get four distinct ids, and the
    # second round repeats them
    assert_redelivery_is_a_duplicate(stack.emulator.records(entity), per_round=4)


def test_s3_rows_get_one_event_id_whichever_way_the_object_is_announced(stack: Stack) -> None:
    # GIVEN an interactions file and its four possible announcements: a direct S3 invocation, an S3 notification in
    # SQS, the same through SNS, and an EventBridge "Object Created" event in SQS
    handler = stack.configure("events")
    key = "events/announced four times.csv"
    etag = etag_of(
        stack.put(key, b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu-1,i-1,click,1764400000\nu-2,i-2,view,\n")
    )
    notification = f.s3_notification(f.s3_record(stack.bucket, key, etag=etag))
    events = [
        notification,
        f.sqs_event([f.sqs_message(notification, "via-sqs")]),
        f.sqs_event([f.sqs_message(f.sns_envelope(notification), "via-sns")]),
        f.sqs_event(
            [f.sqs_message(f.eventbridge_object_created(stack.bucket, key, etag=etag), "via-eventbridge")]
        ),
    ]

    # WHEN each announcement is handled
    for event in events:
        assert handler(event, f.FakeLambdaContext()) == NOT_FAILED

    # THEN every row carries the same eventId each time (bucket, key, ETag and line; never the message)
    assert_redelivery_is_a_duplicate(stack.emulator.records("events"), per_round=2, rounds=4)


# --------------------------------------------------------------------------------------------- odd inputs


def odd_sqs_batch(stack: Stack) -> dict[str, Any]:
    missing = f.s3_notification(f.s3_record(stack.bucket, "events/deleted-before-read.csv"))
    return f.sqs_event(
        [
            f.sqs_message("", "m-empty"),
            f.sqs_message("[]", "m-empty-array"),
            f.sqs_message(json.dumps([event_record("i-1"), 5, "text"]), "m-mixed-array"),
            f.sqs_message(missing, "m-missing-object"),
            f.sqs_message(event_record("i-2"), "m-valid"),
        ]
    )


def test_odd_sqs_bodies_each_end_delivered_or_rejected(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN an empty body, an empty array, an array holding non-objects, a notification of an object deleted
    # before it was read, and a valid record
    handler = stack.configure("events")
    caplog.set_level(logging.INFO)

    # WHEN handled
    response = handler(odd_sqs_batch(stack), f.FakeLambdaContext())

    # THEN every record is delivered or in the rejects queue, naming its message and place
    assert response == NOT_FAILED
    assert sorted(e["itemId"] for e in stack.emulator.elements("events")) == ["i-1", "i-2"]
    rejects = sorted(stack.rejects(), key=lambda r: (r["source"]["messageId"], r["source"].get("index", -1)))
    assert [(r["source"]["messageId"], r["source"].get("index"), r["code"], r["record"]) for r in rejects] == [
        ("m-empty", None, "invalid_json", ""),
        ("m-mixed-array", 1, "not_an_object", 5),
        ("m-mixed-array", 2, "not_an_object", "text"),
    ]
    # AND what carried no record is acknowledged with a log line saying why, not passed over in silence
    logged = [vars(record) for record in caplog.records if record.levelno >= logging.INFO]
    assert any(r.get("item") == "m-empty-array" and "empty JSON array" in r.get("why", "") for r in logged)
    assert any(
        r.get("key") == "events/deleted-before-read.csv" and r["levelno"] == logging.WARNING for r in logged
    )


def test_odd_sqs_bodies_fail_instead_of_vanishing_when_rejects_cannot_be_set_aside(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the same odd batch and no rejects queue
    handler = stack.configure("events", REJECTS_QUEUE_URL=None)
    capsys.readouterr()

    # WHEN handled
    response = handler(odd_sqs_batch(stack), f.FakeLambdaContext())

    # THEN each message holding a record that could not be delivered or set aside is reported
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-empty"}, {"itemIdentifier": "m-mixed-array"}]}
    (emf,) = emf_documents(capsys.readouterr().out)
    assert {name: metric(emf, name) for name in ("RecordsReceived", "RecordsDelivered", "RecordsFailed")} == {
        "RecordsReceived": 5,
        "RecordsDelivered": 2,
        "RecordsFailed": 3,
    }
    assert metric(emf, "RecordsRejected") == 0


def test_odd_kinesis_records_are_rejected_one_by_one(stack: Stack) -> None:
    # GIVEN data that is not base64, a corrupt KPL aggregate, an empty payload and a valid record
    handler = stack.configure("events")
    corrupt = bytearray(f.kpl_aggregate([event_record("i-8"), event_record("i-9")]))
    corrupt[-1] ^= 0xFF  # the MD5 digest at the end no longer matches
    event = f.kinesis_event([b"{}", bytes(corrupt), b"", event_record("i-1")])
    event["Records"][0]["kinesis"]["data"] = "%%% not base64 %%%"

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the valid record is delivered and each bad one is in the rejects queue under its sequence number
    assert response == NOT_FAILED
    assert [e["itemId"] for e in stack.emulator.elements("events")] == ["i-1"]
    codes = {r["source"]["sequenceNumber"]: r["code"] for r in stack.rejects()}
    assert codes == {
        f.sequence_number(1): "invalid_base64",
        f.sequence_number(2): "invalid_aggregate",
        f.sequence_number(3): "invalid_json",
    }


def test_a_truncated_gzip_file_delivers_its_rows_and_rejects_the_unreadable_rest(stack: Stack) -> None:
    # GIVEN a gzip CSV of 1,200 users cut short (longer than one chunk, so rows of a chunk precede the cut)
    handler = stack.configure("users", CALLS_PER_SECOND="0")
    stack.emulator.set_quota("PutUsers", 0)  # no quota: the test is about the cut, not about pace
    whole = gzip.compress(("USER_ID,TIER\n" + "".join(f"u-{n},gold\n" for n in range(1_200))).encode())
    key = "users/cut short.csv.gz"
    etag = etag_of(stack.put(key, whole[: len(whole) * 3 // 4]))
    event = f.sqs_event([f.sqs_message(f.s3_notification(f.s3_record(stack.bucket, key, etag=etag)), "m-file")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN every row before the cut is delivered, and the cut is one reject naming its line: retrying the same
    # object version could never do better, so the message is acknowledged
    assert response == NOT_FAILED
    delivered = sorted(int(e["userId"][2:]) for e in stack.emulator.elements("users"))
    assert delivered == list(range(len(delivered))) and len(delivered) > S3_CHUNK_ROWS
    (reject,) = stack.rejects()
    assert (reject["code"], reject["source"]["line"]) == ("invalid_gzip", len(delivered) + 2)
    result = stack.result(key)
    assert (result["delivered"], result["rejected"], result["failed"]) == (len(delivered), 1, 0)


def test_an_object_that_cannot_be_read_reports_its_message_and_rejects_nothing(stack: Stack) -> None:
    # GIVEN a notification naming first an object the function cannot read (here: in a bucket that does not
    # exist), then a readable one, and a valid record in another message
    handler = stack.configure("items")
    etag = etag_of(stack.put("items/b.csv", b"ITEM_ID\ni-from-file\n"))
    unreadable = f.s3_notification(
        f.s3_record(f"no-such-bucket-{stack.bucket}", "items/a.csv"),
        f.s3_record(stack.bucket, "items/b.csv", etag=etag),
    )
    event = f.sqs_event([f.sqs_message(unreadable, "m-unreadable"), f.sqs_message(VALID["items"], "m-valid")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN only the notification is retried: neither acknowledged nor set aside, and its second object is left
    # for the retry (which reads both again) instead of being sent twice
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-unreadable"}]}
    assert [e["itemId"] for e in stack.emulator.elements("items")] == ["i-1"]
    assert stack.rejects() == []


def test_a_csv_header_that_cannot_name_its_columns_is_one_reject_and_an_unreadable_result(stack: Stack) -> None:
    # GIVEN a CSV whose header repeats a column
    handler = stack.configure("items")
    key = "items/bad-header.csv"
    etag = etag_of(stack.put(key, b"ITEM_ID,GENRES,GENRES\ni-1,a,b\n"))
    event = f.sqs_event([f.sqs_message(f.s3_notification(f.s3_record(stack.bucket, key, etag=etag)), "m-file")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN nothing is sent, the file is one reject for line 1, and the result file says why
    assert response == NOT_FAILED
    assert stack.emulator.calls() == []
    (reject,) = stack.rejects()
    assert (reject["code"], reject["source"]["line"], reject["source"]["key"]) == ("invalid_csv", 1, key)
    assert "GENRES" in reject["reason"]
    result = stack.result(key)
    assert (result["status"], result["rejected"]) == ("unreadable", 1)
    assert "repeats" in result["error"]


def test_a_continuation_that_cannot_be_sent_reports_the_message(stack: Stack) -> None:
    # GIVEN a 700-row file announced by a message whose queue no longer exists, and time for one chunk only
    handler = stack.configure("events")
    key = "events/big.csv"
    # NOTE: 40 users interleaved, more than the 32 lanes a chunk waits for, so the first chunk closes at 500 rows.
    rows = "".join(f"u-{n % 40},i-{n},click,{1764400000 + n}\n" for n in range(700))
    etag = etag_of(stack.put(key, f"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n{rows}".encode()))
    notification = f.s3_notification(f.s3_record(stack.bucket, key, etag=etag))
    event = f.sqs_event([f.sqs_message(notification, "m-file", arn=f.queue_arn(f"deleted-{stack.bucket}"))])
    emulator = stack.emulator

    def remaining_ms() -> int:
        return 600_000 if emulator.counts().get("events", 0) < S3_CHUNK_ROWS else 0

    # WHEN handled
    response = handler(event, f.FakeLambdaContext(clock=remaining_ms))

    # THEN the message is not acknowledged (it will read the object again), and the result says incomplete
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-file"}]}
    assert emulator.counts()["events"] == S3_CHUNK_ROWS
    result = stack.result(key)
    assert (result["status"], result["delivered"]) == ("incomplete", S3_CHUNK_ROWS)
    assert "nextLine" not in result


# --------------------------------------------------------------------------------------------- misconfiguration


@pytest.mark.parametrize(
    ("entity", "variable", "wrong_target"),
    [
        ("action_interactions", "PERSONALIZE_TRACKING_ID", "11111111-2222-3333-4444-555555555555"),
        ("items", "PERSONALIZE_DATASET_ARN", "arn:aws:personalize:us-east-1:123456789012:dataset/missing/ITEMS"),
        ("users", "PERSONALIZE_DATASET_ARN", "arn:aws:personalize:us-east-1:123456789012:dataset/missing/USERS"),
        ("actions", "PERSONALIZE_DATASET_ARN", "arn:aws:personalize:us-east-1:123456789012:dataset/gone/ACTIONS"),
    ],
)
def test_a_target_that_does_not_exist_fails_good_records_and_never_rejects_them(
    stack: Stack, entity: str, variable: str, wrong_target: str
) -> None:
    # GIVEN a function pointed at a tracker or dataset that does not exist, and 12 valid records and 1 invalid one
    handler = stack.configure(entity, **{variable: wrong_target})
    id_member = {"items": "itemId", "users": "userId", "actions": "actionId"}.get(entity, "actionId")
    messages = [f.sqs_message(VALID[entity] | {id_member: f"id-{n}"}, f"m-{n:02d}") for n in range(12)]
    event = f.sqs_event([*messages, f.sqs_message(INVALID[entity], "m-invalid")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN every valid record is reported for retry; only the record invalid on its own is in the rejects queue
    assert response == {"batchItemFailures": [{"itemIdentifier": f"m-{n:02d}"} for n in range(12)]}
    assert [r["source"]["messageId"] for r in stack.rejects()] == ["m-invalid"]
    assert stack.emulator.records(entity) == []


def test_an_s3_file_for_a_missing_dataset_is_incomplete_and_nothing_is_rejected(stack: Stack) -> None:
    # GIVEN an items file announced through SQS, and a dataset ARN naming no dataset
    handler = stack.configure(
        "items", PERSONALIZE_DATASET_ARN="arn:aws:personalize:us-east-1:123456789012:dataset/missing/ITEMS"
    )
    key = "items/catalog.csv"
    rows = "".join(f"i-{n},Comedy\n" for n in range(30))
    etag = etag_of(stack.put(key, f"ITEM_ID,GENRES\n{rows}".encode()))
    event = f.sqs_event([f.sqs_message(f.s3_notification(f.s3_record(stack.bucket, key, etag=etag)), "m-file")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the message is retried, no row is set aside, and the result file says so
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-file"}]}
    assert stack.rejects() == []
    result = stack.result(key)
    assert (result["status"], result["delivered"], result["rejected"], result["failed"]) == (
        "incomplete",
        0,
        0,
        30,
    )


# --------------------------------------------------------------------------------------------- upserts


def test_across_chunks_of_a_file_the_latest_version_of_an_item_is_applied_last(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an items file longer than one chunk: "i-dup" on line 2 and again in the second chunk, and "i-twice"
    # twice in the first chunk (no rate limit on either side: the test is about order, not pace)
    handler = stack.configure("items", CALLS_PER_SECOND="0")
    stack.emulator.set_quota("PutItems", 0)
    rows = [f"i-{n},{n}" for n in range(S3_CHUNK_ROWS + 100)]
    rows[0] = "i-dup,old"
    rows[S3_CHUNK_ROWS + 50] = "i-dup,new"
    rows[1], rows[2] = "i-twice,old", "i-twice,new"
    key = "items/two-chunks.csv"
    etag = etag_of(stack.put(key, ("ITEM_ID,VERSION\n" + "\n".join(rows) + "\n").encode()))
    capsys.readouterr()

    # WHEN the file is handled
    event = f.sqs_event([f.sqs_message(f.s3_notification(f.s3_record(stack.bucket, key, etag=etag)))])
    assert handler(event, f.FakeLambdaContext()) == NOT_FAILED

    # THEN inside a chunk only the latest version was sent; across chunks the first chunk's calls had all ended
    # before the second chunk's began, so the later version reached Personalize last
    stored = stack.emulator.records("items")
    versions: dict[str, list[str]] = {}
    for row in stored:
        versions.setdefault(row["element"]["itemId"], []).append(
            json.loads(row["element"]["properties"])["version"]
        )
    assert versions["i-twice"] == ["new"]
    assert versions["i-dup"] == ["old", "new"]
    positions = {row["element"]["itemId"]: index for index, row in enumerate(stored)}
    first_chunk_ids = {f"i-{n}" for n in range(3, S3_CHUNK_ROWS)}
    assert max(positions[item_id] for item_id in first_chunk_ids) < positions["i-dup"]
    # AND every row counts as delivered, the superseded one included
    result = stack.result(key)
    assert (result["delivered"], result["superseded"], result["failed"]) == (S3_CHUNK_ROWS + 100, 1, 0)
    (emf,) = emf_documents(capsys.readouterr().out)
    assert (metric(emf, "RecordsReceived"), metric(emf, "RecordsDelivered")) == (S3_CHUNK_ROWS + 100,) * 2


def test_when_the_latest_version_fails_the_older_ones_are_reported_too(stack: Stack) -> None:
    # GIVEN two versions of one item in two messages, for a dataset that does not exist
    handler = stack.configure(
        "items", PERSONALIZE_DATASET_ARN="arn:aws:personalize:us-east-1:123456789012:dataset/missing/ITEMS"
    )
    older, newer = {"itemId": "i-1", "properties": {"v": 1}}, {"itemId": "i-1", "properties": {"v": 2}}
    event = f.sqs_event([f.sqs_message(older, "m-older"), f.sqs_message(newer, "m-newer")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN neither message is acknowledged: the older version was not applied by anything
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-older"}, {"itemIdentifier": "m-newer"}]}
    assert stack.rejects() == []


# --------------------------------------------------------------------------------------------- deadline


def test_after_the_margin_records_are_failed_unsent_but_rejects_still_reach_the_queue(stack: Stack) -> None:
    # GIVEN less time left than the margin, a valid record and an invalid one
    handler = stack.configure("users")
    event = f.sqs_event([f.sqs_message(VALID["users"], "m-valid"), f.sqs_message(INVALID["users"], "m-invalid")])

    # WHEN handled
    response = handler(event, f.FakeLambdaContext(remaining_ms=3_000))

    # THEN the valid record is reported without a call; the invalid one is set aside (timeouts fit the time left)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-valid"}]}
    assert stack.emulator.calls() == []
    assert [r["source"]["messageId"] for r in stack.rejects()] == ["m-invalid"]


# --------------------------------------------------------------------------------------------- metrics, logs


def test_metrics_are_the_seven_names_in_the_namespace_with_the_entity_dimension_only(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a service that throttles about half of all answers (fixed seed) and 25 events of one session
    handler = stack.configure("events", MAX_ATTEMPTS="10")
    stack.emulator.set_faults(throttle_rate=0.5, seed=1)
    event = f.kinesis_event([event_record(f"i-{n}") for n in range(25)])
    capsys.readouterr()

    # WHEN handled
    assert handler(event, f.FakeLambdaContext()) == NOT_FAILED

    # THEN one EMF document carries exactly the seven metrics, in the configured namespace, by entity alone
    (emf,) = emf_documents(capsys.readouterr().out)
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "PersonalizeIngestTests"
    assert directive["Dimensions"] == [["entity"]]
    assert sorted(m["Name"] for m in directive["Metrics"]) == sorted(
        [
            "RecordsReceived",
            "RecordsDelivered",
            "RecordsRejected",
            "RecordsFailed",
            "ApiCalls",
            "ThrottledCalls",
            "Retries",
        ]
    )
    assert emf["entity"] == "events"
    # AND the call counts are what the emulator answered
    calls = stack.emulator.calls("PutEvents")
    throttled = [call for call in calls if call["errorCode"] == "ThrottlingException"]
    assert throttled
    assert metric(emf, "ApiCalls") == len(calls)
    assert metric(emf, "ThrottledCalls") == len(throttled)
    assert metric(emf, "Retries") == len(calls) - 3
    assert (metric(emf, "RecordsReceived"), metric(emf, "RecordsDelivered")) == (25, 25)


def test_no_id_or_property_value_is_logged_above_debug_even_with_event_logging_switched_on(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN event logging switched on in the environment (POWERTOOLS_LOGGER_LOG_EVENT), no rejects queue, and a
    # batch touching many paths with recognisable ids and property values: a valid record, an invalid one, an
    # unknown field, a FIFO group stopped after a failure, and an S3 file with a bad row
    stack.configure("events", REJECTS_QUEUE_URL=None)
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    handler: Callable[..., dict[str, Any]] = make_handler(EVENTS)
    key = "events/secret.csv"
    etag = etag_of(
        stack.put(
            key,
            b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP,MOOD\nsecret-user-1,secret-item-1,click,,secret-value-1\n"
            b"secret-user-2,secret-item-2,,soon,secret-value-2\n",
        )
    )
    fifo = f.queue_arn("ingest.fifo")
    valid = event_record("secret-item-3") | {"userId": "secret-user-3", "properties": {"mood": "secret-value-3"}}
    invalid = INVALID["events"] | {"userId": "secret-user-4", "properties": {"mood": "secret-value-4"}}
    unknown = valid | {"secret-field": "secret-value-5"}
    notification = f.s3_notification(f.s3_record(stack.bucket, key, etag=etag))
    event = f.sqs_event(
        [
            f.sqs_message(valid, "m-1", arn=fifo, group_id="g-1"),
            f.sqs_message(invalid, "m-2", arn=fifo, group_id="g-2"),
            f.sqs_message(unknown, "m-3", arn=fifo, group_id="g-2"),
            f.sqs_message(notification, "m-4", arn=fifo, group_id="g-3"),
        ]
    )
    caplog.set_level(logging.INFO)

    # WHEN handled
    response = handler(event, f.FakeLambdaContext())

    # THEN the failures are reported and logged by their message ids ...
    assert response == {
        "batchItemFailures": [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-3"}, {"itemIdentifier": "m-4"}]
    }
    logged = [record for record in caplog.records if record.levelno >= logging.INFO]
    text = json.dumps([vars(record) | {"message": record.getMessage()} for record in logged], default=str)
    assert "m-2" in text and "events/secret.csv" in text
    # ... and no user id, item id, property value or unknown field name appears at INFO or above
    assert "secret-" not in text


def test_a_fifo_rejects_queue_receives_rejects_grouped_by_entity_and_deduplicated(stack: Stack) -> None:
    # GIVEN a FIFO rejects queue (no content-based deduplication) and an invalid record
    url, _ = stack.new_queue(f"rejects-{stack.bucket}.fifo", fifo=True)
    handler = stack.configure("actions", REJECTS_QUEUE_URL=url)
    event = f.sqs_event([f.sqs_message(INVALID["actions"], "m-invalid")])

    # WHEN the same message is handled twice (a redelivery)
    for _ in range(2):
        assert handler(event, f.FakeLambdaContext()) == NOT_FAILED

    # THEN one reject message is in the queue, in the entity's group
    messages = stack.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
    )["Messages"]
    assert len(messages) == 1
    assert messages[0]["Attributes"]["MessageGroupId"] == "actions"
    assert json.loads(messages[0]["Body"])["source"]["messageId"] == "m-invalid"
