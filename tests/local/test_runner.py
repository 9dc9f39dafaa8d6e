"""The local event-source runner behaves like Lambda's pollers for what the project relies on.

Each test creates the hand-made template's resources in moto under a stack name of its own and runs the probe
function (tests/local/functions/probe) behind the runner; assertions are on queues and destinations in moto.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from local.resources import create_resources
from local.runner import Runner
from local.servers import child_processes
from local.stack import LocalStack, read_stack
from local.template import LocalAccount, load_template

HERE = Path(__file__).parent
TIME_SCALE = 0.01
"""A 100 s visibility timeout becomes 1 s."""
_stack_numbers = itertools.count(1)

pytestmark = pytest.mark.slow


@dataclass
class LocalRun:
    stack: LocalStack
    runner: Runner
    sqs: Any
    kinesis: Any

    def url(self, logical_id: str) -> str:
        return self.stack.queues[logical_id].url

    def receive_all(self, logical_id: str) -> list[dict[str, Any]]:
        """Receive and delete every message currently visible in a queue; return the bodies."""
        bodies: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url(logical_id), MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url(logical_id), ReceiptHandle=message["ReceiptHandle"])

    def queue_depth(self, logical_id: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url(logical_id), AttributeNames=names)
        return sum(int(attributes["Attributes"][name]) for name in names)

    def put_records(self, *bodies: dict[str, Any]) -> list[str]:
        stream = self.stack.streams["Stream"].name
        records = [{"Data": json.dumps(b).encode(), "PartitionKey": "p"} for b in bodies]
        response = self.kinesis.put_records(StreamName=stream, Records=records)
        return [r["SequenceNumber"] for r in response["Records"]]


def wait_for(condition: Callable[[], Any], timeout_s: float = 30) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"condition not met within {timeout_s} s")


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template(HERE / "template.json")


@pytest.fixture
def local_run(moto_env: str, tmp_path: Path, template: dict[str, Any]) -> Iterator[LocalRun]:
    """The hand-made stack created in moto, its functions running behind the runner."""
    account = LocalAccount(f"Runner{next(_stack_numbers)}", endpoint_url=moto_env)
    stack = read_stack(template, account)
    create_resources(stack, moto_env, time_scale=TIME_SCALE)
    with child_processes(tmp_path / "logs") as children:
        # NOTE: the probe never calls Personalize; an unused loopback port stands in for the emulator.
        runner = Runner(
            stack, children, moto_env, "http://127.0.0.1:9", TIME_SCALE, functions_dir=HERE / "functions"
        )
        runner.start()
        try:
            yield LocalRun(stack, runner, boto3.client("sqs"), boto3.client("kinesis"))
        finally:
            runner.stop()


def test_sqs_deletes_handled_messages_and_a_failing_one_reaches_the_dlq_after_max_receive_count(
    local_run: LocalRun,
) -> None:
    # GIVEN three messages, the second of which the function reports as failed every time
    for body in ({"id": "a"}, {"id": "b", "fail": True}, {"id": "c"}):
        local_run.sqs.send_message(QueueUrl=local_run.url("Queue"), MessageBody=json.dumps(body))

    # WHEN the runner has polled until the failing message is in the dead-letter queue (maxReceiveCount 2)
    dead = wait_for(lambda: local_run.receive_all("DeadLetterQueue"))

    # THEN only the failing message is there, the others were handled once each and the queue is empty
    assert [body["id"] for body in dead] == ["b"]
    handled = Counter(report["id"] for report in local_run.receive_all("SinkQueue"))
    assert handled == Counter({"a": 1, "c": 1})
    assert local_run.queue_depth("Queue") == 0


def test_kinesis_partial_failure_resends_from_the_lowest_failed_record_then_reports_the_batch_on_failure(
    local_run: LocalRun,
) -> None:
    # GIVEN three records in one shard; the function always reports the second as failed
    _, second, third = local_run.put_records({"id": "r1"}, {"id": "r2", "fail": True}, {"id": "r3"})

    # WHEN the retries (MaximumRetryAttempts 1) are spent
    [invocation_record] = wait_for(lambda: local_run.receive_all("FailedBatchesQueue"))

    # THEN the on-failure queue holds the metadata of the records from the checkpoint on ...
    batch = invocation_record["KinesisBatchInfo"]
    assert (batch["startSequenceNumber"], batch["endSequenceNumber"], batch["batchSize"]) == (second, third, 2)
    assert invocation_record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert batch["streamArn"] == local_run.stack.streams["Stream"].arn
    # ... the record before the checkpoint was not sent again, and the later one was re-sent with the failed one
    handled = Counter(report["id"] for report in local_run.receive_all("SinkQueue"))
    assert handled == Counter({"r1": 1, "r3": 2})


def test_kinesis_function_error_bisects_the_batch_until_the_poison_record_is_alone(local_run: LocalRun) -> None:
    # GIVEN four records, the second of which makes the function raise
    sequence_numbers = local_run.put_records({"id": "x1"}, {"id": "x2", "raise": True}, {"id": "x3"}, {"id": "x4"})

    # WHEN the runner has bisected and retried
    [invocation_record] = wait_for(lambda: local_run.receive_all("FailedBatchesQueue"))
    handled = wait_for(lambda: {r["id"] for r in local_run.receive_all("SinkQueue")} >= {"x3", "x4"} or None)

    # THEN only the poison record went to the on-failure destination and the others were all handled
    batch = invocation_record["KinesisBatchInfo"]
    assert (batch["startSequenceNumber"], batch["endSequenceNumber"], batch["batchSize"]) == (
        sequence_numbers[1],
        sequence_numbers[1],
        1,
    )
    assert invocation_record["responseContext"]["functionError"] == "Unhandled"
    assert handled


@pytest.fixture
def s3_destination_template(template: dict[str, Any]) -> dict[str, Any]:
    mapping = template["Resources"]["ProbeKinesisMapping"]["Properties"]
    mapping["DestinationConfig"]["OnFailure"]["Destination"] = {"Fn::GetAtt": ["FailedBatchesBucket", "Arn"]}
    return template


@pytest.mark.usefixtures("s3_destination_template")
def test_kinesis_on_failure_destination_in_s3_keeps_the_payload(local_run: LocalRun) -> None:
    # GIVEN a mapping whose on-failure destination is a bucket, and a record the function always reports failed
    [sequence_number] = local_run.put_records({"id": "kept", "fail": True})
    s3 = boto3.client("s3")
    bucket = local_run.stack.buckets["FailedBatchesBucket"].name

    # WHEN the retries are spent
    listing = wait_for(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="aws/lambda/").get("Contents"))

    # THEN the object holds the invocation record with the batch itself, under Lambda's key layout
    [item] = listing
    assert item["Key"].split("/")[3] == "shardId-000000000000"
    document = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    assert document["KinesisBatchInfo"]["startSequenceNumber"] == sequence_number
    [record] = document["payload"]["Records"]
    assert json.loads(base64.b64decode(record["kinesis"]["data"])) == {"id": "kept", "fail": True}


def test_each_function_runs_with_exactly_its_template_environment_and_timeout(local_run: LocalRun) -> None:
    # GIVEN one message for each of two functions configured differently (one behind a FIFO queue)
    local_run.sqs.send_message(QueueUrl=local_run.url("Queue"), MessageBody=json.dumps({"id": "plain"}))
    local_run.sqs.send_message(
        QueueUrl=local_run.url("OrderedQueue"), MessageBody=json.dumps({"id": "ordered"}), MessageGroupId="g1"
    )

    # WHEN both have been handled
    reports: dict[str, dict[str, Any]] = {}
    wait_for(lambda: reports.update({r["id"]: r for r in local_run.receive_all("SinkQueue")}) or len(reports) == 2)

    # THEN each saw its own template variables, endpoint variables and Lambda's own, nothing of this process
    lambda_variables = {
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_EXECUTION_ENV",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
        "TZ",
        "LANG",
        "PATH",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS",
        "AWS_ENDPOINT_URL_PERSONALIZE",
    }
    for report, function in ((reports["plain"], "ProbeFunction"), (reports["ordered"], "OrderedFunction")):
        template_variables = local_run.stack.functions[function].environment
        environment = report["environment"]
        # NOTE: the interpreter itself may add LC_CTYPE when it coerces the C locale.
        assert set(environment) - {"LC_CTYPE"} == set(template_variables) | lambda_variables
        assert {k: environment[k] for k in template_variables} == dict(template_variables)
        assert report["function"] == local_run.stack.functions[function].name
    assert "POWERTOOLS_METRICS_NAMESPACE" not in reports["plain"]["environment"]  # set in this test process
    # ... each context counts down from its own template Timeout (2 s and 30 s)
    assert 0 < reports["plain"]["remainingMs"] <= 2_000
    assert 2_000 < reports["ordered"]["remainingMs"] <= 30_000
    # ... and the FIFO record carries its message group
    assert reports["ordered"]["attributes"]["MessageGroupId"] == "g1"


def test_a_function_running_past_its_timeout_fails_the_invocation_and_the_next_one_starts_cold(
    local_run: LocalRun,
) -> None:
    # GIVEN a message that keeps the function busy past its 2 s timeout
    local_run.sqs.send_message(QueueUrl=local_run.url("Queue"), MessageBody=json.dumps({"id": "slow", "sleep": 5}))

    # WHEN it has timed out on every receive
    dead = wait_for(lambda: local_run.receive_all("DeadLetterQueue"), timeout_s=60)

    # THEN it ends in the dead-letter queue, never handled, and the function still serves the next message
    assert [body["id"] for body in dead] == ["slow"]
    local_run.sqs.send_message(QueueUrl=local_run.url("Queue"), MessageBody=json.dumps({"id": "after"}))
    handled = wait_for(lambda: local_run.receive_all("SinkQueue"))
    assert [report["id"] for report in handled] == ["after"]


@pytest.fixture
def slow_init(template: dict[str, Any]) -> None:
    """The probe function spends 3 s importing: longer than its 2 s timeout."""
    template["Resources"]["ProbeFunction"]["Properties"]["Environment"]["Variables"]["INIT_SLEEP"] = "3"


def test_a_cold_start_slower_than_the_timeout_does_not_time_out_the_invocation(
    slow_init: None, local_run: LocalRun
) -> None:
    # GIVEN a function whose import takes longer than its timeout (Lambda gives init its own limit)
    # WHEN a message arrives
    local_run.sqs.send_message(QueueUrl=local_run.url("Queue"), MessageBody=json.dumps({"id": "cold"}))

    # THEN the invocation runs after init, within its own timeout, and the record is handled
    handled = wait_for(lambda: local_run.receive_all("SinkQueue"))
    assert [report["id"] for report in handled] == ["cold"]
    assert local_run.receive_all("DeadLetterQueue") == []


@pytest.fixture
def kinesis_mapping(request: pytest.FixtureRequest, template: dict[str, Any]) -> dict[str, Any]:
    """The hand-made Kinesis mapping with the test's settings (``request.param``) written into the template."""
    properties: dict[str, Any] = template["Resources"]["ProbeKinesisMapping"]["Properties"]
    properties.update(request.param)
    return properties


@pytest.mark.parametrize(
    ("kinesis_mapping", "batch_sizes"),
    [
        ({"BatchSize": 2, "MaximumBatchingWindowInSeconds": 1}, [2, 2, 2, 2, 1]),
        ({"BatchSize": 10, "MaximumBatchingWindowInSeconds": 1}, [5, 5, 5, 5, 5]),
    ],
    indirect=["kinesis_mapping"],
)
def test_kinesis_batch_size_and_batching_window_are_the_templates(
    kinesis_mapping: dict[str, Any], local_run: LocalRun, batch_sizes: list[int]
) -> None:
    # GIVEN a mapping whose BatchSize and batching window come from the template, and five records put at once
    assert local_run.stack.mappings["ProbeKinesisMapping"].batch_size == kinesis_mapping["BatchSize"]
    local_run.put_records(*({"id": f"b{n}"} for n in range(5)))

    # WHEN all five have been handled
    reports: list[dict[str, Any]] = []
    wait_for(lambda: reports.extend(local_run.receive_all("SinkQueue")) or len(reports) >= 5)

    # THEN each invocation carried as many records as the template's BatchSize allows, in order
    by_id = {report["id"]: report["batchSize"] for report in reports}
    assert [by_id[f"b{n}"] for n in range(5)] == batch_sizes


@pytest.mark.parametrize(
    "kinesis_mapping", [{"MaximumRetryAttempts": 0}, {"MaximumRetryAttempts": 3}], indirect=True
)
def test_kinesis_retries_are_the_templates_maximum_retry_attempts(
    kinesis_mapping: dict[str, Any], local_run: LocalRun
) -> None:
    # GIVEN a record the function always reports failed, followed by one it handles
    local_run.put_records({"id": "f1", "fail": True}, {"id": "f2"})

    # WHEN the retries are spent
    [invocation_record] = wait_for(lambda: local_run.receive_all("FailedBatchesQueue"))

    # THEN the batch was sent once plus once per retry the template allows, then reported as exhausted
    retries = kinesis_mapping["MaximumRetryAttempts"]
    handled = Counter(report["id"] for report in local_run.receive_all("SinkQueue"))
    assert handled == Counter({"f2": 1 + retries})
    assert invocation_record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert invocation_record["KinesisBatchInfo"]["batchSize"] == 2


@pytest.mark.parametrize(
    "kinesis_mapping", [{"BisectBatchOnFunctionError": False, "MaximumRetryAttempts": 0}], indirect=True
)
def test_kinesis_without_bisect_sends_the_whole_failed_batch_to_the_on_failure_destination(
    kinesis_mapping: dict[str, Any], local_run: LocalRun
) -> None:
    # GIVEN four records, the second of which makes the function raise, and bisect off in the template
    sequence_numbers = local_run.put_records({"id": "y1"}, {"id": "y2", "raise": True}, {"id": "y3"}, {"id": "y4"})

    # WHEN the only attempt has failed
    [invocation_record] = wait_for(lambda: local_run.receive_all("FailedBatchesQueue"))

    # THEN the whole batch, not just the poison record, is at the on-failure destination
    batch = invocation_record["KinesisBatchInfo"]
    assert (batch["startSequenceNumber"], batch["endSequenceNumber"], batch["batchSize"]) == (
        sequence_numbers[0],
        sequence_numbers[-1],
        4,
    )


@pytest.fixture
def without_batch_item_failures(template: dict[str, Any]) -> None:
    del template["Resources"]["ProbeQueueMapping"]["Properties"]["FunctionResponseTypes"]


@pytest.mark.usefixtures("without_batch_item_failures")
def test_sqs_without_report_batch_item_failures_deletes_the_whole_batch_of_a_successful_invocation(
    local_run: LocalRun,
) -> None:
    # GIVEN a mapping without ReportBatchItemFailures, and a message the function reports as failed
    assert not local_run.stack.mappings["ProbeQueueMapping"].report_batch_item_failures
    for body in ({"id": "a"}, {"id": "b", "fail": True}):
        local_run.sqs.send_message(QueueUrl=local_run.url("Queue"), MessageBody=json.dumps(body))

    # WHEN the source queue is empty again
    wait_for(lambda: local_run.queue_depth("Queue") == 0)

    # THEN the item failure was ignored (as Lambda ignores the response): nothing came back or reached the DLQ
    assert local_run.receive_all("DeadLetterQueue") == []
    assert [report["id"] for report in local_run.receive_all("SinkQueue")] == ["a"]


def test_s3_notifications_wired_by_the_template_reach_the_queue_with_url_encoded_keys(local_run: LocalRun) -> None:
    # GIVEN the template's notification of the ingest bucket (prefix probe/) and keys S3 must URL-encode
    s3 = boto3.client("s3")
    bucket = local_run.stack.buckets["IngestBucket"].name
    keys = ["probe/two words+plus é.json", "other/not notified.json"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")

    # WHEN the function behind the notified queue has handled the notification
    [report] = wait_for(lambda: local_run.receive_all("SinkQueue"))

    # THEN only the object under the prefix was notified, its key URL-encoded as S3 does (space as +)
    notified_key = report["id"].removeprefix("s3:")
    assert notified_key != keys[0]
    assert unquote_plus(notified_key) == keys[0]


@pytest.mark.parametrize(
    "kinesis_mapping", [{"MaximumRetryAttempts": -1, "MaximumRecordAgeInSeconds": 1}], indirect=True
)
def test_kinesis_retries_without_limit_end_when_the_batch_is_older_than_the_templates_record_age(
    kinesis_mapping: dict[str, Any], local_run: LocalRun
) -> None:
    # GIVEN unlimited retries, a record age of 1 s (below AWS's minimum; the runner takes the template's value as
    # it is) and a record the function always reports failed
    [sequence_number] = local_run.put_records({"id": "old", "fail": True})

    # WHEN the record has grown older than the limit while being retried
    [invocation_record] = wait_for(lambda: local_run.receive_all("FailedBatchesQueue"))

    # THEN it is at the on-failure destination for its age, after more than one attempt
    assert invocation_record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert invocation_record["requestContext"]["approximateInvokeCount"] > 1
    assert invocation_record["KinesisBatchInfo"]["startSequenceNumber"] == sequence_number


@pytest.fixture
def queue_mapping(request: pytest.FixtureRequest, template: dict[str, Any]) -> dict[str, Any]:
    """The hand-made SQS mapping with the test's settings (``request.param``) written into the template."""
    properties: dict[str, Any] = template["Resources"]["ProbeQueueMapping"]["Properties"]
    properties.update(request.param)
    return properties


@pytest.mark.parametrize(
    ("queue_mapping", "batch_sizes"),
    [
        ({"BatchSize": 1, "MaximumBatchingWindowInSeconds": 1}, [1, 1, 1]),
        ({"BatchSize": 10, "MaximumBatchingWindowInSeconds": 1}, [3, 3, 3]),
    ],
    indirect=["queue_mapping"],
)
def test_sqs_batch_size_and_batching_window_are_the_templates(
    queue_mapping: dict[str, Any], local_run: LocalRun, batch_sizes: list[int]
) -> None:
    # GIVEN an SQS mapping whose BatchSize and batching window come from the template, and three messages
    assert local_run.stack.mappings["ProbeQueueMapping"].batch_size == queue_mapping["BatchSize"]
    # NOTE: S3 sent an s3:TestEvent to this queue when the notification was configured; it must not share a batch.
    wait_for(lambda: local_run.queue_depth("Queue") == 0)
    local_run.sqs.send_message_batch(
        QueueUrl=local_run.url("Queue"),
        Entries=[{"Id": str(n), "MessageBody": json.dumps({"id": f"m{n}"})} for n in range(3)],
    )

    # WHEN all three have been handled
    reports: list[dict[str, Any]] = []
    wait_for(lambda: reports.extend(local_run.receive_all("SinkQueue")) or len(reports) >= 3)

    # THEN each invocation carried as many messages as the template's BatchSize allows
    assert sorted(report["batchSize"] for report in reports) == batch_sizes
