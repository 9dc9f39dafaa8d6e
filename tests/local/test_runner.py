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
