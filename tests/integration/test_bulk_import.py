"""The import route end to end: S3 notification -> routing -> checks -> import job in the emulator -> tracker ->
result file, against moto (S3, SQS, IAM) and the emulator's control plane, with unmodified boto3 clients."""

from __future__ import annotations

import gzip
import importlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from emulator.config import DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle
from personalize_ingest.import_tracking import ACCESS_HINT, GONE_HINT
from tests.integration.test_handlers import emf_documents, metric
from tests.support import factories as f
from tests.support.bulk_import import (
    DEMO_INTERACTIONS_ARN,
    DEMO_ITEMS_ARN,
    SHOP_ITEMS_ARN,
    Bucket,
    bulk_emulator,
    bulk_emulator_server,
    interactions_csv,
    items_csv,
    new_bucket,
)

__all__ = ["bulk_emulator", "bulk_emulator_server"]

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class Route:
    """One test's AWS side: a granted bucket, a notifications queue, the function's environment."""

    emulator: EmulatorHandle
    bucket: Bucket
    sqs: Any
    queue_url: str
    queue_arn: str
    rejects_url: str
    monkeypatch: pytest.MonkeyPatch

    def configure(self, entity: str = "items", **overrides: str | None) -> Handler:
        values: dict[str, str | None] = {
            "PERSONALIZE_DATASET_ARN": DEMO_ITEMS_ARN if entity == "items" else None,
            "PERSONALIZE_TRACKING_ID": DEFAULT_TRACKING_ID if entity == "events" else None,
            "REJECTS_QUEUE_URL": self.rejects_url,
            "BULK_IMPORT_ENABLED": "true",
            "BULK_IMPORT_ROLE_ARN": self.bucket.role_arn,
            "BULK_IMPORT_MIN_ROWS": "50",
            "BULK_IMPORT_DATASET_ARN": DEMO_INTERACTIONS_ARN if entity == "events" else None,
            "BULK_IMPORT_WAIT_SECONDS": "0",
            "INGEST_BUCKET": self.bucket.name,
            "BULK_IMPORT_ENTITIES": "items,events",
            **overrides,
        }
        for name, value in values.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        return importlib.import_module(f"{entity}.handler").lambda_handler

    def notification(self, key: str, message_id: str | None = None, arn: str | None = None) -> dict[str, Any]:
        head = self.bucket.s3.head_object(Bucket=self.bucket.name, Key=key)
        record = f.s3_record(self.bucket.name, key, etag=head["ETag"].strip('"'))
        return f.sqs_message(f.s3_notification(record), message_id, arn=arn or self.queue_arn)

    def deliver(self, handler: Handler, *keys: str) -> dict[str, Any]:
        return dict(handler(f.sqs_event([self.notification(key) for key in keys]), f.FakeLambdaContext()))

    def track_until_done(self) -> list[dict[str, Any]]:
        """Run the import tracker until no job is in flight; return every run's answer."""
        tracker = importlib.import_module("import_tracker.handler").lambda_handler
        runs = []
        for _ in range(500):
            runs.append(tracker({"source": "aws.events"}, f.FakeLambdaContext()))
            if runs[-1]["inFlight"] == 0:
                return runs
            time.sleep(0.02)
        raise AssertionError(f"jobs still in flight after {len(runs)} tracker runs")


@pytest.fixture
def route(bulk_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Route:
    sqs = boto3.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    queue_url = sqs.create_queue(QueueName=f"notifications-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rejects_url = sqs.create_queue(QueueName=f"rejects-{suffix}")["QueueUrl"]
    return Route(bulk_emulator, new_bucket(), sqs, queue_url, queue_arn, rejects_url, monkeypatch)


def operations(emulator: EmulatorHandle, name: str) -> list[dict[str, Any]]:
    return emulator.calls(name)


# ------------------------------------------------------------------------------------------------ routing


def test_file_at_the_threshold_is_imported_and_tracked_to_active(
    route: Route, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an items file of 60 rows, above the 50-row threshold
    handler = route.configure()
    route.bucket.put("items/catalogue.csv", items_csv(60))
    # WHEN its notification is handled
    response = route.deliver(handler, "items/catalogue.csv")
    # THEN no PutItems call: one import job was started and the result file says so
    assert response == {"batchItemFailures": []}
    assert operations(route.emulator, "PutItems") == []
    (create,) = operations(route.emulator, "CreateDatasetImportJob")
    assert create["status"] == 200
    importing = route.bucket.result("items/catalogue.csv")
    assert importing["route"] == "import" and importing["status"] == "importing"
    assert importing["estimatedRows"] == 60 and importing["sampledRows"] == 60
    job = boto3.client("personalize").describe_dataset_import_job(datasetImportJobArn=importing["jobArn"])
    assert job["datasetImportJob"]["importMode"] == "INCREMENTAL"
    assert job["datasetImportJob"]["roleArn"] == route.bucket.role_arn
    assert job["datasetImportJob"]["dataSource"]["dataLocation"] == route.bucket.location("items/catalogue.csv")
    # WHEN the tracker follows the job to its end
    route.track_until_done()
    # THEN the result file is final, the rows are in the dataset, one success metric was published
    result = route.bucket.result("items/catalogue.csv")
    assert (result["status"], result["jobStatus"], result["rows"]) == ("imported", "ACTIVE", 60)
    assert result["jobArn"] == importing["jobArn"] and result["failureReason"] is None
    assert result["timings"]["jobSeconds"] >= 0 and result["timings"]["submittedAt"] > 0
    stored = route.emulator.records("items", target=DEMO_ITEMS_ARN)
    assert len(stored) == 60 and stored[0]["request"] == {"datasetImportJobArn": importing["jobArn"]}
    documents = emf_documents(capsys.readouterr().out)
    assert sum(metric(d, "BulkImportsSucceeded") for d in documents if "BulkImportsSucceeded" in d) == 1
    assert sum(metric(d, "BulkImportsStarted") for d in documents if "BulkImportsStarted" in d) == 1
    # AND a second tracker run finds nothing left to do
    assert route.track_until_done()[0] == {"inFlight": 0, "imported": 0, "failed": 0, "errors": []}


def test_file_below_the_threshold_and_json_lines_are_streamed(route: Route) -> None:
    handler = route.configure()
    route.bucket.put("items/few.csv", items_csv(10))
    lines = [json.dumps({"itemId": f"j-{n}"}) for n in range(80)]
    route.bucket.put("items/many.jsonl", ("\n".join(lines) + "\n").encode())
    route.bucket.put("items/many.csv.gz", gzip.compress(items_csv(80)))
    assert route.deliver(handler, "items/few.csv", "items/many.jsonl", "items/many.csv.gz") == {
        "batchItemFailures": []
    }
    assert operations(route.emulator, "CreateDatasetImportJob") == []
    assert sum(e["elements"] for e in operations(route.emulator, "PutItems")) == 10 + 80 + 80
    assert route.bucket.result("items/few.csv")["status"] == "complete"


def test_producers_force_either_path_with_a_sub_prefix(route: Route) -> None:
    handler = route.configure()
    route.bucket.put("items/import/small.csv", items_csv(3))
    route.bucket.put("items/stream/large.csv", items_csv(200))
    route.deliver(handler, "items/import/small.csv", "items/stream/large.csv")
    assert route.bucket.result("items/import/small.csv")["status"] == "importing"
    assert route.bucket.result("items/stream/large.csv")["status"] == "complete"
    assert len(operations(route.emulator, "CreateDatasetImportJob")) == 1
    assert sum(e["elements"] for e in operations(route.emulator, "PutItems")) == 200


def test_route_off_streams_everything(route: Route) -> None:
    handler = route.configure(BULK_IMPORT_ENABLED="false")
    route.bucket.put("items/catalogue.csv", items_csv(60))
    route.deliver(handler, "items/catalogue.csv")
    assert operations(route.emulator, "CreateDatasetImportJob") == []
    assert len(route.emulator.records("items")) == 60


def test_interactions_need_a_thousand_rows_for_the_import_route(route: Route) -> None:
    handler = route.configure("events")
    route.bucket.put("events/day.csv", interactions_csv(999))
    route.bucket.put("events/import/year.csv", interactions_csv(1200))
    # An interactions dataset does not need EVENT_TYPE (PutEvents does): such a file is imported too.
    untyped = b"\n".join(
        line.rsplit(b",", 2)[0] + b"," + line.rsplit(b",", 1)[1] for line in interactions_csv(1000).splitlines()
    )
    route.bucket.put("events/untyped.csv", untyped + b"\n")
    route.deliver(handler, "events/day.csv", "events/import/year.csv", "events/untyped.csv")
    assert route.bucket.result("events/day.csv")["status"] == "complete"
    assert route.bucket.result("events/import/year.csv")["status"] == "importing"
    assert route.bucket.result("events/untyped.csv")["status"] == "importing"
    route.track_until_done()
    assert route.bucket.result("events/import/year.csv")["rows"] == 1200
    assert route.bucket.result("events/untyped.csv")["rows"] == 1000
    assert len(route.emulator.records("events", target=DEFAULT_TRACKING_ID)) == 999 + 1200 + 1000


# ------------------------------------------------------------------------------------------------ the job


def test_redelivered_notification_carries_on_with_the_first_job(route: Route) -> None:
    handler = route.configure()
    route.bucket.put("items/catalogue.csv", items_csv(60))
    message = route.notification("items/catalogue.csv", "m-1")
    first = handler(f.sqs_event([message]), f.FakeLambdaContext())
    again = handler(f.sqs_event([message]), f.FakeLambdaContext())
    assert first == again == {"batchItemFailures": []}
    answers = [c["errorCode"] for c in operations(route.emulator, "CreateDatasetImportJob")]
    assert answers == [None, "ResourceAlreadyExistsException"]
    assert len(route.emulator.import_jobs()["jobs"]) == 1
    jobs = route.emulator.import_jobs()["jobs"]
    assert route.bucket.result("items/catalogue.csv")["jobArn"] == jobs[0]["datasetImportJobArn"]
    route.track_until_done()
    assert len(route.emulator.records("items")) == 60
    # AND a notification redelivered after the job ended leaves the final result file as it is
    final = route.bucket.result("items/catalogue.csv")
    assert handler(f.sqs_event([message]), f.FakeLambdaContext()) == {"batchItemFailures": []}
    assert route.bucket.result("items/catalogue.csv") == final
    assert route.track_until_done()[0]["imported"] == 0


def test_five_running_jobs_make_the_file_wait_and_retry_later(route: Route) -> None:
    # GIVEN five import jobs pending in the region
    handler = route.configure()
    route.emulator.set_import_jobs(pending_seconds=600)
    route.bucket.put("items/other.csv", items_csv(2))
    personalize = boto3.client("personalize")
    for n in range(5):
        personalize.create_dataset_import_job(
            jobName=f"other-{n}",
            datasetArn=DEMO_ITEMS_ARN,
            dataSource={"dataLocation": route.bucket.location("items/other.csv")},
            roleArn=route.bucket.role_arn,
        )
    route.bucket.put("items/catalogue.csv", items_csv(60))
    # WHEN a large file arrives
    response = route.deliver(handler, "items/catalogue.csv")
    # THEN the message is acknowledged, the result file says why the file waits, its notification is queued again
    assert response == {"batchItemFailures": []}
    waiting = route.bucket.result("items/catalogue.csv")
    assert waiting["status"] == "waiting" and "5 import jobs" in waiting["reason"]
    messages = route.sqs.receive_message(QueueUrl=route.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    # WHEN the jobs end and the queued notification comes back
    route.emulator.set_import_jobs(pending_seconds=0, in_progress_seconds=0)
    retried = handler(f.lambda_sqs_event(messages, route.queue_arn), f.FakeLambdaContext())
    # THEN the job starts and the file is imported
    assert retried == {"batchItemFailures": []}
    assert route.bucket.result("items/catalogue.csv")["status"] == "importing"
    route.track_until_done()
    assert route.bucket.result("items/catalogue.csv")["status"] == "imported"


def test_on_a_fifo_queue_a_waiting_file_fails_its_message_for_retry(route: Route) -> None:
    handler = route.configure()
    route.emulator.set_import_jobs(pending_seconds=600, max_unfinished_jobs=0)
    route.bucket.put("items/catalogue.csv", items_csv(60))
    fifo_arn = f.queue_arn("producers.fifo")
    message = route.notification("items/catalogue.csv", "m-fifo", arn=fifo_arn)
    message["attributes"]["MessageGroupId"] = "g"
    response = handler(f.sqs_event([message]), f.FakeLambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-fifo"}]}
    assert route.bucket.result("items/catalogue.csv")["status"] == "waiting"


# ------------------------------------------------------------------------------------------------ checks


@pytest.mark.parametrize(
    ("key", "body", "line", "code"),
    [
        ("items/camel.csv", items_csv(60, header="itemId,GENRES,PRICE"), 1, "not_bulk_layout"),
        ("items/noid.csv", items_csv(60, header="ID,GENRES,PRICE"), 1, "missing_column"),
        ("items/unknown.csv", items_csv(60, header="ITEM_ID,GENRES,COLOUR"), 1, "unknown_column"),
        ("items/import/empty.csv", b"", 1, "empty_file"),
        ("items/import/header-only.csv", b"ITEM_ID,GENRES,PRICE\n", 2, "empty_file"),
        ("items/badrow.csv", items_csv(60) + b",Comedy,1\n" + items_csv(5, start=100)[21:], 62, "missing_field"),
        # checked against the dataset's schema as the streaming path checks rows: PRICE is a float
        ("items/badprice.csv", items_csv(60) + b"item-x,Comedy,cheap\n", 62, "invalid_type"),
    ],
)
def test_files_that_fail_the_checks_are_refused_with_line_numbers(
    route: Route, key: str, body: bytes, line: int, code: str
) -> None:
    # GIVEN the shop dataset, whose schema has ITEM_ID, GENRES and PRICE
    handler = route.configure(PERSONALIZE_DATASET_ARN=SHOP_ITEMS_ARN)
    route.bucket.put(key, body)
    assert route.deliver(handler, key) == {"batchItemFailures": []}
    result = route.bucket.result(key)
    assert result["status"] == "refused"
    assert (result["problems"][0]["line"], result["problems"][0]["code"]) == (line, code)
    assert operations(route.emulator, "CreateDatasetImportJob") == []
    assert operations(route.emulator, "PutItems") == []


def test_misconfigured_route_fails_the_message_and_sets_nothing_aside(route: Route) -> None:
    handler = route.configure(BULK_IMPORT_ROLE_ARN=None)
    route.bucket.put("items/catalogue.csv", items_csv(60))
    response = route.deliver(handler, "items/catalogue.csv")
    assert len(response["batchItemFailures"]) == 1
    assert route.sqs.receive_message(QueueUrl=route.rejects_url).get("Messages", []) == []
    handler = route.configure(BULK_IMPORT_DATASET_ARN=DEMO_ITEMS_ARN.replace("demo", "missing"))
    assert len(route.deliver(handler, "items/catalogue.csv")["batchItemFailures"]) == 1
    assert route.emulator.records("items") == []


# ------------------------------------------------------------------------------------------------ failed jobs


def test_missing_grants_end_in_a_failed_result_that_says_what_to_fix(
    route: Route, capsys: pytest.CaptureFixture[str]
) -> None:
    route.bucket = new_bucket(grant=False)
    handler = route.configure()
    route.bucket.put("items/catalogue.csv", items_csv(60))
    route.deliver(handler, "items/catalogue.csv")
    route.track_until_done()
    result = route.bucket.result("items/catalogue.csv")
    assert (result["status"], result["jobStatus"]) == ("import_failed", "CREATE FAILED")
    assert result["failureReason"].startswith("Insufficient privileges for accessing data in Amazon S3")
    assert result["hint"] == ACCESS_HINT
    documents = emf_documents(capsys.readouterr().out)
    assert sum(metric(d, "BulkImportsFailed") for d in documents if "BulkImportsFailed" in d) == 1


def test_object_deleted_before_the_job_reads_it(route: Route) -> None:
    handler = route.configure()
    route.emulator.set_import_jobs(pending_seconds=600)
    route.bucket.put("items/catalogue.csv", items_csv(60))
    route.deliver(handler, "items/catalogue.csv")
    route.bucket.s3.delete_object(Bucket=route.bucket.name, Key="items/catalogue.csv")
    route.emulator.set_import_jobs(pending_seconds=0)
    route.track_until_done()
    result = route.bucket.result("items/catalogue.csv")
    assert result["status"] == "import_failed" and "No input data found" in result["failureReason"]
    assert result["hint"] == GONE_HINT


def test_object_replaced_before_the_job_reads_it_is_imported_as_it_is_then(route: Route) -> None:
    from personalize_ingest.import_tracking import ROWS_OF_GONE_OBJECT

    handler = route.configure()
    route.emulator.set_import_jobs(pending_seconds=600)
    route.bucket.put("items/catalogue.csv", items_csv(60))
    route.deliver(handler, "items/catalogue.csv")
    route.bucket.put("items/catalogue.csv", items_csv(55, start=1000))
    route.emulator.set_import_jobs(pending_seconds=0)
    route.track_until_done()
    result = route.bucket.result("items/catalogue.csv")
    assert (result["status"], result["rows"], result["rowsNote"]) == ("imported", None, ROWS_OF_GONE_OBJECT)
    assert {r["element"]["itemId"] for r in route.emulator.records("items")} == {
        f"item-{n}" for n in range(1000, 1055)
    }


def test_object_deleted_before_its_notification_is_handled_is_skipped(route: Route) -> None:
    handler = route.configure()
    route.bucket.put("items/catalogue.csv", items_csv(60))
    message = route.notification("items/catalogue.csv")
    route.bucket.s3.delete_object(Bucket=route.bucket.name, Key="items/catalogue.csv")
    assert handler(f.sqs_event([message]), f.FakeLambdaContext()) == {"batchItemFailures": []}
    assert operations(route.emulator, "CreateDatasetImportJob") == []


def test_a_file_too_large_to_count_in_one_run_is_finished_with_its_estimate(route: Route) -> None:
    # GIVEN an imported file whose job has ended
    from personalize_ingest.entities import ITEMS
    from personalize_ingest.import_tracking import ROWS_NOT_COUNTED, track

    handler = route.configure()
    route.bucket.put("items/catalogue.csv", items_csv(60))
    route.deliver(handler, "items/catalogue.csv")
    personalize = boto3.client("personalize")
    job_arn = route.bucket.result("items/catalogue.csv")["jobArn"]
    while personalize.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]["status"] != (
        "ACTIVE"
    ):
        time.sleep(0.02)
    # WHEN the tracker's time runs out while it counts the rows
    clock = iter([100.0])
    run = track(route.bucket.s3, personalize, route.bucket.name, [ITEMS], time_left_s=lambda: next(clock, 0.0))
    # THEN the job is finished all the same, with the estimate instead of a count
    assert run.imported == 1
    result = route.bucket.result("items/catalogue.csv")
    assert (result["status"], result["rows"], result["rowsNote"]) == ("imported", None, ROWS_NOT_COUNTED)
    assert result["estimatedRows"] == 60
