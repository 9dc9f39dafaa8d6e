"""``personalize-ingest`` against moto (Kinesis, SQS, S3, CloudWatch) and the Personalize Events emulator.

Each command runs in-process through its entry point (``ingest_cli.main.main``) with boto3's standard endpoint
variables, except the interrupted backfill, which runs as a child process that receives a real SIGINT. Assertions
are on what the systems hold afterwards: the emulator's store, the queues, the stream, the bucket, the files.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulator.config import DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle
from ingest_cli.main import main
from ingest_cli.output import AWS_ERROR, BAD_INPUT, INTERRUPTED, NOTHING_TO_DO, OK, PROBLEMS
from tests.integration.test_handlers import REJECT_SCHEMA
from tests.support import factories as f
from tests.support.environment import drain, target_environment

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """Run ``personalize-ingest ARGS...`` in this process; return its exit code and output."""

    def run(*argv: str | Path) -> Ran:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


@dataclass
class Deployed:
    """A stack's resources in moto and its outputs file, as `make up` or `cdk deploy --outputs-file` give them."""

    outputs: Path
    name: str
    sqs: Any
    kinesis: Any
    s3: Any
    rejects_url: str
    items_queue_url: str
    items_dlq_url: str
    events_stream: str
    failed_bucket: str

    def stream_records(self) -> list[dict[str, Any]]:
        shard = self.kinesis.list_shards(StreamName=self.events_stream)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(
            StreamName=self.events_stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return self.kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]


@pytest.fixture
def deployed(moto_env: str, emulator: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    suffix = uuid.uuid4().hex[:8]
    name = f"CliTest{suffix}"
    sqs, kinesis, s3 = boto3.client("sqs"), boto3.client("kinesis"), boto3.client("s3")
    rejects_url = sqs.create_queue(QueueName=f"{name}-rejects")["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=f"{name}-items-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    items_url = sqs.create_queue(QueueName=f"{name}-items", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    stream = f"{name}-events"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1})
    bucket = f"{name.lower()}-failed-batches"
    s3.create_bucket(Bucket=bucket)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                name: {
                    "RejectsQueueUrl": rejects_url,
                    "ItemsQueueUrl": items_url,
                    "ItemsFunctionName": f"{name}-items",
                    "EventsStreamName": stream,
                    "EventsFunctionName": f"{name}-events",
                    "FailedBatchesBucketName": bucket,
                }
            }
        )
    )
    for variable in (
        "PERSONALIZE_TRACKING_ID",
        "PERSONALIZE_DATASET_ARN",
        "REJECTS_QUEUE_URL",
        "DEFAULT_EVENT_TYPE",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    return Deployed(outputs, name, sqs, kinesis, s3, rejects_url, items_url, dlq_url, stream, bucket)


def _write_csv(path: Path, header: str, rows: list[str], *, gz: bool = False) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------- validate


def test_validate_lists_each_row_the_function_would_reject_and_exits_1(
    cli: Callable[..., Ran], tmp_path: Path
) -> None:
    # GIVEN a gzip items CSV: two good rows, a misspelt entity column value problem and a forbidden property
    path = _write_csv(
        tmp_path / "items.csv.gz",
        "ITEM_ID,GENRES,USER_ID",
        ["i-1,Comedy,", "i-2,Drama,", ",Horror,", "i-4,Action,u-1"],
        gz=True,
    )

    # WHEN it is validated for items, as JSON
    ran = cli("validate", path, "--entity", "items", "--json")

    # THEN each bad row is named by its line with the function's code and reason; exit 1
    assert ran.code == PROBLEMS
    report = ran.json
    assert (report["rows"], report["valid"], report["invalid"]) == (4, 2, 2)
    lines = {p["line"]: p for p in report["problems"]}
    assert set(lines) == {4, 5}
    assert (lines[4]["code"], lines[4]["field"]) == ("missing_field", "ITEM_ID")
    assert lines[5]["code"] in {"unknown_field", "forbidden_property"}
    # AND no value of the rows is printed
    assert "u-1" not in ran.stdout


def test_validate_suggests_the_closest_field_and_exits_0_on_a_clean_file(
    cli: Callable[..., Ran], tmp_path: Path
) -> None:
    # GIVEN an events JSON Lines file with a misspelt field, and a clean one
    bad = tmp_path / "events.jsonl"
    bad.write_text(json.dumps({"sessionId": "s", "eventTyp": "click", "sentAt": 1764400000}) + "\n")
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"sessionId": "s", "eventType": "click", "itemId": "i", "sentAt": 1764400000}) + "\n"
    )

    # WHEN both are validated as text
    rejected = cli("validate", bad, "--entity", "events")
    clean = cli("validate", good, "--entity", "events")

    # THEN the problem names the line, the field and the suggestion; the clean file passes
    assert rejected.code == PROBLEMS
    assert "line 1: unknown_field:" in rejected.stdout
    assert "did you mean 'eventType'?" in rejected.stdout
    [problem] = cli("validate", bad, "--entity", "events", "--json").json["problems"]
    assert (problem["line"], problem["field"], problem["suggestion"]) == (1, "eventTyp", "eventType")
    assert clean.code == OK
    assert "1 valid, 0 would be rejected" in clean.stdout


def test_validate_reads_an_s3_object_as_the_function_does(cli: Callable[..., Ran], deployed: Deployed) -> None:
    # GIVEN an items CSV in S3 with one row of the wrong column count
    deployed.s3.put_object(Bucket=deployed.failed_bucket, Key="items/x.csv", Body=b"ITEM_ID,GENRES\ni-1,A\ni-2\n")

    # WHEN validated from s3://
    ran = cli("validate", f"s3://{deployed.failed_bucket}/items/x.csv", "--entity", "items", "--json")

    # THEN line 3 is named as invalid CSV
    assert ran.code == PROBLEMS
    assert [(p["line"], p["code"]) for p in ran.json["problems"]] == [(3, "invalid_csv")]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ("validate", "samples/items.csv", "--entity", "item"),
            BAD_INPUT,
            "unknown entity 'item': expected one of",
        ),
        (("validate", "no/such/file.csv", "--entity", "items"), BAD_INPUT, "no/such/file.csv cannot be read"),
        (("backfill", "samples/items.csv", "--entity", "items"), AWS_ERROR, "PERSONALIZE_DATASET_ARN is not set"),
    ],
)
def test_bad_input_is_named_with_a_non_zero_exit(
    cli: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], code: int, message: str
) -> None:
    # GIVEN the repository as working directory and no function target set
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv("PERSONALIZE_DATASET_ARN", raising=False)

    # WHEN the command runs
    ran = cli(*argv)

    # THEN it says what is wrong on stderr, in one line, and exits with the code for it
    assert ran.code == code
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_header_that_names_no_columns_is_bad_input(cli: Callable[..., Ran], tmp_path: Path) -> None:
    # GIVEN a CSV whose header repeats a column
    path = _write_csv(tmp_path / "items.csv", "ITEM_ID,ITEM_ID", ["a,b"])

    # WHEN validated THEN exit 2 naming the header problem
    ran = cli("validate", path, "--entity", "items")
    assert ran.code == BAD_INPUT
    assert "repeats column(s) ITEM_ID" in ran.stderr


# ------------------------------------------------------------------------------------------------- backfill


def test_backfill_delivers_valid_rows_writes_rejects_and_reports(
    cli: Callable[..., Ran], emulator: EmulatorHandle, deployed: Deployed, tmp_path: Path
) -> None:
    # GIVEN an interactions file of 25 valid rows and 2 invalid ones
    rows = [f"u-{n % 3},i-{n},click,{1764400000 + n}" for n in range(25)]
    rows[7] = "u-1,i-7,click,not-a-time"
    rows.append(",i-99,click,1764400000")
    path = _write_csv(tmp_path / "events.csv", "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP", rows)

    # WHEN it is backfilled to the emulator's tracker
    ran = cli("backfill", path, "--entity", "events", "--target", DEFAULT_TRACKING_ID, "--json")

    # THEN the valid rows are stored once each, the invalid ones are in the rejects file with their reasons
    assert ran.code == PROBLEMS  # some rows were rejected
    report = ran.json
    assert report["complete"] is True
    assert report["counts"]["delivered"] == 24
    assert report["counts"]["rejected"] == 2
    stored = emulator.records("events")
    assert len(stored) == 24
    assert not any(row["duplicate"] for row in stored)
    rejects = [json.loads(line) for line in Path(report["rejectsFile"]).read_text().splitlines()]
    assert [r["source"]["line"] for r in rejects] == [9, 27]
    import jsonschema

    for reject in rejects:
        jsonschema.validate(reject, REJECT_SCHEMA)

    # AND running it again does nothing: the checkpoint says it is complete
    again = cli("backfill", path, "--entity", "events", "--target", DEFAULT_TRACKING_ID)
    assert again.code == NOTHING_TO_DO
    assert len(emulator.records("events")) == 24


def test_backfill_stops_at_a_failing_chunk_and_resumes_there(
    cli: Callable[..., Ran],
    emulator: EmulatorHandle,
    deployed: Deployed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN 30 items and an emulator that refuses every call as throttled after the first two calls
    path = _write_csv(tmp_path / "items.csv", "ITEM_ID,GENRES", [f"i-{n},Comedy" for n in range(30)])
    emulator.set_quota("PutItems", 0.0001)

    # WHEN backfilled in chunks of 10 with one attempt per call
    with monkeypatch.context() as patched:
        patched.setenv("MAX_ATTEMPTS", "1")
        first = cli(
            "backfill",
            path,
            "--entity",
            "items",
            "--target",
            DEFAULT_DATASET_ARNS["ITEMS"],
            "--chunk-rows",
            "10",
            "--json",
        )

    # THEN it stops with exit 1 at the first chunk that failed, and says where
    assert first.code == PROBLEMS
    stopped = first.json
    assert stopped["complete"] is False
    assert stopped["failure"]
    stored_before = {e["itemId"] for e in emulator.elements("items")}
    assert stopped["nextLine"] == 2 + len(stored_before)

    # WHEN the quota is lifted and the same command runs again
    emulator.reset(records=False)
    second = cli(
        "backfill",
        path,
        "--entity",
        "items",
        "--target",
        DEFAULT_DATASET_ARNS["ITEMS"],
        "--chunk-rows",
        "10",
        "--json",
    )

    # THEN it resumes at that line and every item is stored
    assert second.code == OK
    assert second.json["resumedAtLine"] == stopped["nextLine"]
    assert {e["itemId"] for e in emulator.elements("items")} == {f"i-{n}" for n in range(30)}


def test_an_interrupted_backfill_resumes_from_its_checkpoint(
    emulator: EmulatorHandle, deployed: Deployed, tmp_path: Path, moto_url: str
) -> None:
    # GIVEN 400 events and a rate limit that makes the run last a while (10 calls/s of up to 10 events)
    rows = [f"u-{n // 4},i-{n},click,{1764400000 + n}" for n in range(400)]
    path = _write_csv(tmp_path / "events.csv", "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP", rows)
    checkpoint = tmp_path / "run.checkpoint.json"
    command = [
        sys.executable,
        "-m",
        "ingest_cli",
        "backfill",
        str(path),
        "--entity",
        "events",
        "--target",
        DEFAULT_TRACKING_ID,
        "--calls-per-second",
        "10",
        "--chunk-rows",
        "40",
        "--checkpoint",
        str(checkpoint),
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    # WHEN the run is interrupted (SIGINT, as Ctrl-C) once the checkpoint shows progress
    child = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        while child.poll() is None and not (
            checkpoint.exists() and json.loads(checkpoint.read_text())["next_line"] > 2
        ):
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == INTERRUPTED, stderr
    assert "the same command resumes there" in stderr
    saved = json.loads(checkpoint.read_text())
    assert 2 < saved["next_line"] <= 401
    assert saved["complete"] is False

    # WHEN the same command runs again (without the slow rate)
    resumed = subprocess.run(
        [c for c in command if c not in ("--calls-per-second", "10")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # THEN it starts at the checkpoint's line and every event is stored; re-sent rows are duplicates by eventId
    assert resumed.returncode == OK, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["resumedAtLine"] == saved["next_line"]
    assert report["rowsThisRun"] == 402 - saved["next_line"]
    stored = emulator.records("events")
    assert {row["element"]["itemId"] for row in stored if not row["duplicate"]} == {f"i-{n}" for n in range(400)}
    assert len({row["element"]["eventId"] for row in stored}) == 400


# ------------------------------------------------------------------------------------------------- replay


def _reject_through_the_function(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, entity: str, records: list[dict[str, Any]]
) -> None:
    """Hand ``records`` to the entity's real handler, whose rejects go to the stack's rejects queue."""
    for name, value in {**target_environment(entity), "REJECTS_QUEUE_URL": deployed.rejects_url}.items():
        monkeypatch.setenv(name, value)
    import importlib

    handler = importlib.import_module(f"{entity}.handler").lambda_handler
    event = f.sqs_event([f.sqs_message(record, f"m-{n}") for n, record in enumerate(records)])
    assert handler(event, f.FakeLambdaContext()) == {"batchItemFailures": []}


def test_replay_fixes_rejected_records_and_sends_the_valid_ones_to_the_stream(
    cli: Callable[..., Ran], deployed: Deployed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN three events rejected by the function for a misspelt field (one without an item) and an item reject
    events = [
        {"sessionId": "s-1", "eventTyp": "click", "itemId": "i-1", "sentAt": 1764400000},
        {"sessionId": "s-2", "eventTyp": "click", "itemId": "i-2", "sentAt": 1764400001},
        {"sessionId": "s-3", "eventTyp": "click", "sentAt": 1764400002, "userId": ""},
    ]
    _reject_through_the_function(deployed, monkeypatch, "events", events)
    _reject_through_the_function(deployed, monkeypatch, "items", [{"itemId": "i-1", "titel": "x"}])
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps({"rename": {"eventTyp": "eventType"}, "drop": ["userId"]}))

    # WHEN replayed with the fix, first as a dry run, then for real
    dry = cli("replay", "--entity", "events", "--fix", fix, "--outputs", deployed.outputs, "--dry-run", "--json")
    ran = cli("replay", "--entity", "events", "--fix", fix, "--outputs", deployed.outputs, "--json")

    # THEN the dry run sent nothing; the real run put the three fixed events on the stream
    assert dry.json["outcomes"] == {"would_send": 3, "other_entity": 1}
    assert ran.code == OK
    assert ran.json["outcomes"] == {"sent": 3, "other_entity": 1}
    on_stream = sorted((json.loads(r["Data"]) for r in deployed.stream_records()), key=lambda e: e["sessionId"])
    assert [e["sessionId"] for e in on_stream] == ["s-1", "s-2", "s-3"]
    assert all("eventType" in e and "eventTyp" not in e for e in on_stream)
    # AND only the replayed messages left the rejects queue: the item's reject is still there
    left = [json.loads(body) for body in drain(deployed.sqs, deployed.rejects_url)]
    assert [m["entity"] for m in left] == ["items"]


def test_replay_leaves_records_that_stay_invalid_or_whose_fix_raises(
    cli: Callable[..., Ran], deployed: Deployed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN two rejected items: one a callable fix can repair, one on which it raises, and one it cannot repair
    _reject_through_the_function(
        deployed,
        monkeypatch,
        "items",
        [
            {"itemId": "i-1", "properties": {"userId": "u"}},
            {"itemId": "i-2", "properties": {"userId": "boom"}},
            {"itemId": "", "properties": {"genre": "x"}},
        ],
    )
    module = tmp_path / "repair.py"
    module.write_text(
        "def fix(record, reject):\n"
        "    if record['properties'].get('userId') == 'boom':\n"
        "        raise ValueError('cannot repair this one')\n"
        "    record['properties'].pop('userId', None)\n"
        "    record['properties'].setdefault('genre', 'unknown')\n"
        "    return record\n"
    )

    # WHEN replayed to the items queue with the callable
    ran = cli(
        "replay",
        "--entity",
        "items",
        "--fix",
        f"{module}:fix",
        "--to",
        "queue",
        "--outputs",
        deployed.outputs,
        "--json",
    )

    # THEN exit 2 names the fix's error; the repaired item is on the items queue, the other two stay rejected
    assert ran.code == BAD_INPUT
    assert "cannot repair this one" in ran.stderr
    assert ran.json["outcomes"] == {"sent": 1, "fix_raised": 1, "still_invalid": 1}
    sent = [json.loads(body) for body in drain(deployed.sqs, deployed.items_queue_url)]
    assert sent == [{"itemId": "i-1", "properties": {"genre": "unknown"}}]
    left = sorted(json.loads(body)["record"]["itemId"] for body in drain(deployed.sqs, deployed.rejects_url))
    assert left == ["", "i-2"]


def test_replay_of_an_empty_queue_says_so_and_exits_3(cli: Callable[..., Ran], deployed: Deployed) -> None:
    # GIVEN an empty rejects queue WHEN items are replayed THEN it says so, exit 3
    ran = cli("replay", "--entity", "items", "--outputs", deployed.outputs)
    assert ran.code == NOTHING_TO_DO
    assert "nothing to replay: no reject of items" in ran.stdout


def test_replay_to_an_entity_the_stack_does_not_feed_is_refused(
    cli: Callable[..., Ran], deployed: Deployed
) -> None:
    # GIVEN a stack without a users stream or queue WHEN users are replayed THEN it says so before reading anything
    ran = cli("replay", "--entity", "users", "--outputs", deployed.outputs)
    assert ran.code == BAD_INPUT
    assert "the stack has no SQS queue for users" in ran.stderr


def test_replay_refuses_a_fix_it_cannot_load(cli: Callable[..., Ran], deployed: Deployed) -> None:
    ran = cli("replay", "--entity", "items", "--fix", "no_such_module_here:fix", "--outputs", deployed.outputs)
    assert ran.code == BAD_INPUT
    assert "module no_such_module_here cannot be imported" in ran.stderr


def test_replay_reads_a_rejects_file_from_backfill(
    cli: Callable[..., Ran], emulator: EmulatorHandle, deployed: Deployed, tmp_path: Path
) -> None:
    # GIVEN a backfill whose rejects file holds one item with a misspelt column
    path = _write_csv(tmp_path / "items.csv", "ITEM_ID,GENRES", ["i-1,A", ",B"])
    cli("backfill", path, "--entity", "items", "--target", DEFAULT_DATASET_ARNS["ITEMS"])
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps({"set": {"ITEM_ID": "i-2"}}))

    # WHEN the rejects file is replayed with a fix into the items queue
    ran = cli(
        "replay",
        "--entity",
        "items",
        "--from-file",
        "items.csv.items.rejects.jsonl",
        "--fix",
        fix,
        "--outputs",
        deployed.outputs,
        "--json",
    )

    # THEN the fixed row is on the queue
    assert ran.code == OK, ran.stderr
    assert [json.loads(b) for b in drain(deployed.sqs, deployed.items_queue_url)] == [
        {"ITEM_ID": "i-2", "GENRES": "B"}
    ]


# ------------------------------------------------------------------------------------------------- redrive


def test_redrive_moves_dlq_messages_back_to_their_queue(cli: Callable[..., Ran], deployed: Deployed) -> None:
    # GIVEN three messages in the items DLQ
    for n in range(3):
        deployed.sqs.send_message(QueueUrl=deployed.items_dlq_url, MessageBody=json.dumps({"itemId": f"i-{n}"}))

    # WHEN redriven (dry run first)
    dry = cli("redrive", "--entity", "items", "--outputs", deployed.outputs, "--dry-run", "--json")
    ran = cli("redrive", "--entity", "items", "--outputs", deployed.outputs, "--json")

    # THEN the dry run moved nothing, the real one moved all three and emptied the DLQ
    assert dry.json["entities"][0]["queues"][0]["found"] == 3
    assert ran.code == OK
    assert ran.json["entities"][0]["queues"][0]["moved"] == 3
    moved = sorted(json.loads(b)["itemId"] for b in drain(deployed.sqs, deployed.items_queue_url))
    assert moved == ["i-0", "i-1", "i-2"]
    assert drain(deployed.sqs, deployed.items_dlq_url) == []

    # AND a second run has nothing to do
    assert cli("redrive", "--entity", "items", "--outputs", deployed.outputs).code == NOTHING_TO_DO


def _failed_batch(
    deployed: Deployed, start: str, end: str, size: int, payload: list[dict[str, Any]] | None
) -> str:
    shard = deployed.kinesis.list_shards(StreamName=deployed.events_stream)["Shards"][0]["ShardId"]
    arn = deployed.kinesis.describe_stream_summary(StreamName=deployed.events_stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    record: dict[str, Any] = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "batchSize": size,
            "streamArn": arn,
        },
    }
    if payload is not None:
        record["payload"] = {"Records": payload}
    key = f"aws/lambda/{uuid.uuid4()}/{shard}/2026/12/01/2026-12-01T10.00.00-{uuid.uuid4()}"
    deployed.s3.put_object(Bucket=deployed.failed_bucket, Key=key, Body=json.dumps(record).encode())
    return key


def test_redrive_refeeds_a_failed_kinesis_batch_read_back_from_the_stream(
    cli: Callable[..., Ran], deployed: Deployed
) -> None:
    # GIVEN three records on the stream, of which the last two failed as one batch
    sequence = [
        deployed.kinesis.put_record(
            StreamName=deployed.events_stream, Data=json.dumps({"n": n}).encode(), PartitionKey=f"s-{n}"
        )["SequenceNumber"]
        for n in range(3)
    ]
    key = _failed_batch(deployed, sequence[1], sequence[2], 2, payload=None)

    # WHEN redriven
    ran = cli("redrive", "--entity", "events", "--outputs", deployed.outputs, "--json")

    # THEN the two records were put on the stream again, and the batch object is gone
    assert ran.code == OK, ran.stdout
    (batch,) = ran.json["entities"][0]["batches"]
    assert (batch["status"], batch["detail"]) == ("redriven", "2 records read back from the stream")
    data = [json.loads(r["Data"])["n"] for r in deployed.stream_records()]
    assert data == [0, 1, 2, 1, 2]
    assert "Contents" not in deployed.s3.list_objects_v2(Bucket=deployed.failed_bucket, Prefix=key)


def test_redrive_says_when_the_stream_no_longer_holds_a_batch(cli: Callable[..., Ran], deployed: Deployed) -> None:
    # GIVEN a failed batch whose sequence numbers the stream does not hold, and no payload in the object
    deployed.kinesis.put_record(StreamName=deployed.events_stream, Data=b"{}", PartitionKey="p")
    key = _failed_batch(deployed, "1" * 56, "1" * 55 + "2", 2, payload=None)

    # WHEN redriven
    ran = cli("redrive", "--entity", "events", "--outputs", deployed.outputs, "--json")

    # THEN it says the records are no longer retained, keeps the object and exits 1
    assert ran.code == PROBLEMS
    (batch,) = ran.json["entities"][0]["batches"]
    assert batch["status"] == "not retained"
    assert "no longer retained" in batch["detail"]
    assert deployed.s3.list_objects_v2(Bucket=deployed.failed_bucket, Prefix=key)["KeyCount"] == 1


# ------------------------------------------------------------------------------------------------- status


def test_status_shows_depths_rejects_last_hour_counts_and_alarms(
    cli: Callable[..., Ran], deployed: Deployed
) -> None:
    # GIVEN two messages waiting on the items queue, one in its DLQ, one reject, the functions' metrics of the
    # last hour in CloudWatch and one of the stack's alarms in ALARM
    for body in ("a", "b"):
        deployed.sqs.send_message(QueueUrl=deployed.items_queue_url, MessageBody=body)
    deployed.sqs.send_message(QueueUrl=deployed.items_dlq_url, MessageBody="c")
    deployed.sqs.send_message(QueueUrl=deployed.rejects_url, MessageBody="{}")
    cloudwatch = boto3.client("cloudwatch")
    for metric, value in (("RecordsDelivered", 40), ("RecordsRejected", 2), ("RecordsFailed", 1)):
        cloudwatch.put_metric_data(
            Namespace="PersonalizeIngest",
            MetricData=[
                {"MetricName": metric, "Dimensions": [{"Name": "entity", "Value": "items"}], "Value": value}
            ],
        )
    alarm = f"{deployed.name}-MonitoringItemsErrorsAlarm"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test")

    # WHEN status runs
    ran = cli("status", "--outputs", deployed.outputs, "--json")
    text = cli("status", "--outputs", deployed.outputs)

    # THEN it reports each figure, and exit 1 because the DLQ holds a message, a record failed and an alarm rings
    assert ran.code == PROBLEMS
    status = ran.json
    items = next(e for e in status["entities"] if e["entity"] == "items")
    assert items["queues"][0]["visible"] == 2
    assert items["queues"][0]["dlqMessages"] == 1
    assert items["lastHour"] == {"delivered": 40, "rejected": 2, "failed": 1}
    assert status["rejectsWaiting"]["visible"] == 1
    assert [a["name"] for a in status["alarmsInAlarm"]] == [alarm]
    assert len(status["attention"]) == 3
    assert "redrive --entity items" in text.stdout


def test_status_without_a_stack_says_how_to_name_one(
    cli: Callable[..., Ran], moto_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERSONALIZE_INGEST_OUTPUTS", raising=False)
    monkeypatch.delenv("PERSONALIZE_INGEST_STACK", raising=False)
    ran = cli("status")
    assert ran.code == AWS_ERROR
    assert "--outputs FILE" in ran.stderr and "--stack NAME" in ran.stderr


def test_every_command_has_help(cli: Callable[..., Ran]) -> None:
    for command in ("validate", "replay", "redrive", "backfill", "status"):
        with pytest.raises(SystemExit) as exited:
            cli(command, "--help")
        assert exited.value.code == 0


def test_redrive_keeps_the_message_group_of_fifo_messages(cli: Callable[..., Ran], deployed: Deployed) -> None:
    # GIVEN a FIFO source queue of action interactions whose FIFO DLQ holds two messages of two sessions
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq_url = deployed.sqs.create_queue(QueueName=f"{deployed.name}-ai-dlq.fifo", Attributes=fifo)["QueueUrl"]
    dlq_arn = deployed.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    source_url = deployed.sqs.create_queue(
        QueueName=f"{deployed.name}-ai.fifo", Attributes={**fifo, "RedrivePolicy": redrive}
    )["QueueUrl"]
    for session in ("s-1", "s-2"):
        deployed.sqs.send_message(
            QueueUrl=dlq_url,
            MessageBody=json.dumps({"sessionId": session}),
            MessageGroupId=session,
            MessageDeduplicationId=f"d-{session}",
        )
    outputs = json.loads(deployed.outputs.read_text())
    outputs[deployed.name]["ActionInteractionsQueueUrl"] = source_url
    deployed.outputs.write_text(json.dumps(outputs))

    # WHEN redriven
    ran = cli("redrive", "--entity", "action_interactions", "--outputs", deployed.outputs, "--json")

    # THEN both are back on the source queue in their own message groups
    assert ran.code == OK, ran.stdout
    messages = deployed.sqs.receive_message(
        QueueUrl=source_url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"]
    )["Messages"]
    groups = {json.loads(m["Body"])["sessionId"]: m["Attributes"]["MessageGroupId"] for m in messages}
    assert groups == {"s-1": "s-1", "s-2": "s-2"}


def test_replay_limit_caps_the_messages_looked_at_and_leaves_the_rest(
    cli: Callable[..., Ran], deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three rejected items, valid as they are once the forbidden property is gone
    _reject_through_the_function(
        deployed, monkeypatch, "items", [{"itemId": f"i-{n}", "properties": {"userId": "u"}} for n in range(3)]
    )

    # WHEN two are replayed with --limit 2, fixed by a callable that drops the property
    fix = deployed.outputs.parent / "drop_user.py"
    fix.write_text("def fix(record, reject):\n    record['properties'].pop('userId')\n    return record\n")
    ran = cli(
        "replay",
        "--entity",
        "items",
        "--fix",
        f"{fix}:fix",
        "--to",
        "queue",
        "--limit",
        "2",
        "--outputs",
        deployed.outputs,
        "--json",
    )

    # THEN two were sent and deleted, the third is still in the rejects queue
    assert ran.code == OK
    assert (ran.json["lookedAt"], ran.json["outcomes"]) == (2, {"sent": 2})
    assert len(drain(deployed.sqs, deployed.items_queue_url)) == 2
    assert len(drain(deployed.sqs, deployed.rejects_url)) == 1
