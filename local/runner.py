"""A local event-source runner: Lambda's SQS and Kinesis pollers for the mappings of a synthesized stack.

What it emulates (per ``AWS::Lambda::EventSourceMapping`` of the template):

- SQS: receive up to the batch size (gathering for up to the batching window), invoke, delete only the handled
  messages (``ReportBatchItemFailures``); failed messages come back after the visibility timeout and moto moves
  them to the DLQ after ``maxReceiveCount`` receives. FIFO queues keep moto's per-group ordering.
- Kinesis: one poller per shard, records in order; on reported failures the checkpoint moves to the lowest failed
  sequence number and the rest is re-sent; on a function error the batch is bisected when
  ``BisectBatchOnFunctionError`` is set; after ``MaximumRetryAttempts`` or ``MaximumRecordAgeInSeconds`` the
  batch's invocation record goes to the on-failure destination (SQS: metadata only; S3: with the payload) and the
  shard moves on.
- Each function runs in its own worker process (:mod:`local.worker`) with exactly the template's environment,
  plus endpoint variables and the variables Lambda's runtime sets; its context reports the time left before the
  template's ``Timeout``, after which the worker is killed and the invocation fails, as on Lambda.

Only waits are shortened by the local time scale (retry backoff here; visibility timeouts in
:mod:`local.resources`). Not emulated: concurrent invocations of one function (one worker each),
``ParallelizationFactor``, filter criteria, SNS destinations, tumbling windows, enhanced fan-out.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from local.servers import FAKE_CREDENTIALS, REPO_ROOT, ChildProcesses
from local.stack import FunctionSpec, LocalStack, MappingSpec, ScheduleSpec

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

FUNCTIONS_DIR = REPO_ROOT / "functions"
WORKER_SCRIPT = Path(__file__).resolve().parent / "worker.py"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""NOTE: Lambda's synchronous invocation payload limit; a Kinesis batch is cut before it."""
KINESIS_POLL_INTERVAL_S = 1.0
"""NOTE: Lambda polls each shard about once per second when the shard has no new records."""
KINESIS_BACKOFF_BASE_S = 1.0
KINESIS_BACKOFF_MAX_S = 60.0
"""Backoff between retries of a failed Kinesis batch (Lambda's exact schedule is undocumented; assumed
exponential from 1 s, capped at 60 s), multiplied by the local time scale."""
GRACE_S = 1.0
"""Time allowed beyond the function timeout for the response to arrive before the worker is killed."""
INIT_TIMEOUT_S = 10.0
"""Lambda's limit on the init phase (imports at cold start), which does not count towards the timeout."""


@dataclass
class Invocation:
    """One invocation's outcome: ``result`` when the handler returned, ``error`` when it raised or timed out."""

    result: Any = None
    error: str | None = None


@dataclass
class MappingStats:
    """What a mapping's poller did, for the report and for knowing when everything is drained."""

    invocations: int = 0
    function_errors: int = 0
    """Invocations that raised, timed out or answered with something other than a batch response."""
    empty_looks: int = 0
    """Looks at the source that found nothing new; drain detection waits for one after the last record sent."""
    busy: bool = False
    caught_up: bool = False


def lambda_environment(
    function: FunctionSpec, account_region: str, endpoints: Mapping[str, str], task_root: Path = FUNCTIONS_DIR
) -> dict[str, str]:
    """The environment of a function's worker: the template's variables, endpoints, and Lambda's own variables.

    Nothing is inherited from this process except ``PATH``, so differently configured functions share nothing.
    """
    env = {
        # Variables the Lambda runtime sets for every function.
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_REGION": account_region,
        "AWS_DEFAULT_REGION": account_region,
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": function.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Credentials of the execution role: the fake ones moto and the emulator accept.
        **FAKE_CREDENTIALS,
    }
    env.update(function.environment)
    env.update(endpoints)
    return env


class WorkerInitError(RuntimeError):
    """The worker's init phase (importing the handler) did not finish within Lambda's init limit."""


class FunctionWorker:
    """One function's worker process; invocations are serialised (one execution environment)."""

    def __init__(self, function: FunctionSpec, env: Mapping[str, str], children: ChildProcesses) -> None:
        self.function = function
        self._env = dict(env)
        self._children = children
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._responses: Any = None
        self.cold_starts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        read_fd, write_fd = os.pipe()
        argv = [
            sys.executable,
            str(WORKER_SCRIPT),
            self.function.handler,
            str(write_fd),
            str(self.function.timeout_s),
            self.function.arn,
        ]
        process = self._children.spawn(
            f"function-{self.function.entity}",
            argv,
            env=self._env,
            cwd=Path(self._env["LAMBDA_TASK_ROOT"]),
            pass_fds=[write_fd],
        )
        os.close(write_fd)
        self._responses = os.fdopen(read_fd, "r", encoding="utf-8")
        self.cold_starts += 1
        self._process = process
        ready, _, _ = select.select([self._responses], [], [], INIT_TIMEOUT_S)
        if not ready or not self._responses.readline():
            self.stop()
            raise WorkerInitError(f"init did not finish within {INIT_TIMEOUT_S:g} seconds")
        return process

    def invoke(self, event: Mapping[str, Any]) -> Invocation:
        """Invoke the handler with ``event``; kill the worker if it runs past the function's timeout."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                try:
                    self._process = self._start()
                except WorkerInitError as exc:
                    return Invocation(error=f"Runtime.InitError: {exc}")
            process = self._process
            assert process.stdin is not None
            request_id = str(uuid.uuid4())
            try:
                process.stdin.write((json.dumps({"requestId": request_id, "event": event}) + "\n").encode())
                process.stdin.flush()
            except OSError as exc:
                self.stop()
                return Invocation(error=f"worker unavailable: {exc}")
            ready, _, _ = select.select([self._responses], [], [], self.function.timeout_s + GRACE_S)
            line = self._responses.readline() if ready else ""
            if not line:
                reason = "timed out" if not ready else "worker exited"
                self.stop()
                return Invocation(error=f"Task {reason} after {self.function.timeout_s} seconds limit")
            response = json.loads(line)
            if "errorType" in response:
                return Invocation(error=f"{response['errorType']}: {response['errorMessage']}")
            return Invocation(result=response.get("result"))

    def stop(self) -> None:
        """Stop the worker process (the next invocation starts a new one: a cold start)."""
        if self._process is not None:
            self._children.stop(self._process, timeout_s=1)
        if self._responses is not None:
            self._responses.close()
        self._process, self._responses = None, None


def failed_identifiers(
    invocation: Invocation, identifiers: Sequence[str], report_failures: bool
) -> list[str] | None:
    """Identifiers Lambda treats as failed, or None when the whole batch failed.

    NOTE: with ReportBatchItemFailures, an empty or null list is full success; an empty, null or unknown
    identifier, or a malformed response, fails the whole batch.
    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html
    """
    if invocation.error is not None:
        return None
    if not report_failures:
        return []
    result = invocation.result
    if result is None:
        return []
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if not failures:
        return []
    if not isinstance(failures, list):
        return None
    known = set(identifiers)
    failed = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in known:
            return None
        failed.append(identifier)
    return failed


class Poller(threading.Thread):
    """Base of the pollers: a daemon thread with a stop flag and stats."""

    def __init__(self, mapping: MappingSpec, worker: FunctionWorker, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.mapping = mapping
        self.worker = worker
        self.stats = MappingStats()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.poll()
        except BaseException as exc:  # surfaced by Runner.check(), never silently lost
            if self.stopping.is_set():
                return  # the run is ending: its worker was stopped under an invocation
            logger.exception("poller %s stopped", self.name)
            self.error = exc

    def poll(self) -> None:
        raise NotImplementedError

    def _count(self, invocation: Invocation, failed: list[str] | None) -> None:
        self.stats.invocations += 1
        if failed is None:
            self.stats.function_errors += 1
            logger.warning("%s: batch failed: %s", self.name, invocation.error or "invalid batch response")


class SqsPoller(Poller):
    """Lambda's SQS poller for one mapping (concurrency 1)."""

    def __init__(self, mapping: MappingSpec, worker: FunctionWorker, sqs: SQSClient, queue_url: str) -> None:
        super().__init__(mapping, worker, f"sqs:{queue_url.rsplit('/', 1)[-1]}")
        self.sqs = sqs
        self.queue_url = queue_url

    def poll(self) -> None:
        while not self.stopping.is_set():
            messages = self._receive_batch()
            self.stats.caught_up = not messages
            self.stats.empty_looks += not messages
            if messages:
                self.stats.busy = True
                try:
                    self._handle(messages)
                finally:
                    self.stats.busy = False

    def _receive_batch(self) -> list[MessageTypeDef]:
        messages: list[MessageTypeDef] = []
        window_ends = time.monotonic() + self.mapping.batching_window_s
        while len(messages) < self.mapping.batch_size and not self.stopping.is_set():
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else 1,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(received)
            if not messages or time.monotonic() >= window_ends:
                break
            if not received:
                self.stopping.wait(min(0.2, max(0.0, window_ends - time.monotonic())))
        return messages

    def _handle(self, messages: list[MessageTypeDef]) -> None:
        region = self.mapping.source_arn.split(":")[3]
        event = {"Records": [sqs_record(m, self.mapping.source_arn, region) for m in messages]}
        invocation = self.worker.invoke(event)
        ids = [m["MessageId"] for m in messages]
        failed = failed_identifiers(invocation, ids, self.mapping.report_batch_item_failures)
        self._count(invocation, failed)
        if failed is None:
            return  # the whole batch comes back after the visibility timeout
        failed_ids = set(failed)
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS event record as Lambda builds it from a received message."""
    message_attributes: dict[str, Any] = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(value["BinaryValue"]).decode() if "BinaryValue" in value else None,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": message_attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class Segment:
    """Records of a shard still to be handled, with the retries spent on them."""

    records: list[dict[str, Any]]
    attempts: int = 0
    condition: str = ""


class KinesisShardPoller(Poller):
    """Lambda's poller for one shard of a Kinesis mapping."""

    def __init__(
        self,
        mapping: MappingSpec,
        worker: FunctionWorker,
        kinesis: KinesisClient,
        shard_id: str,
        destinations: OnFailureDestinations,
        time_scale: float,
    ) -> None:
        super().__init__(mapping, worker, f"kinesis:{mapping.source_arn.rsplit('/', 1)[-1]}:{shard_id}")
        self.kinesis = kinesis
        self.shard_id = shard_id
        self.destinations = destinations
        self.time_scale = time_scale
        self.mapping_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, mapping.source_arn + mapping.logical_id))
        stream_name = mapping.source_arn.rsplit("/", 1)[-1]
        self.iterator: str | None = kinesis.get_shard_iterator(
            StreamName=stream_name,
            ShardId=shard_id,
            ShardIteratorType="TRIM_HORIZON" if mapping.starting_position == "TRIM_HORIZON" else "LATEST",
        )["ShardIterator"]
        self.pending: list[dict[str, Any]] = []

    def poll(self) -> None:
        while not self.stopping.is_set():
            fetched = self._fetch()
            if not self.pending:
                self.stats.caught_up = fetched == 0
                self.stats.empty_looks += fetched == 0
                # NOTE: not below 0.2 s: a tighter loop would only load moto on a 2-core machine.
                self.stopping.wait(max(0.2, KINESIS_POLL_INTERVAL_S * self.time_scale))
                continue
            self.stats.caught_up = False
            window_ends = time.monotonic() + self.mapping.batching_window_s
            while len(self.pending) < self.mapping.batch_size and time.monotonic() < window_ends:
                if not self._fetch():
                    self.stopping.wait(min(0.2, max(0.0, window_ends - time.monotonic())))
            batch = self._take_batch()
            self.stats.busy = True
            try:
                self._process(Segment(batch))
            finally:
                self.stats.busy = False

    def _fetch(self) -> int:
        if self.iterator is None:
            return 0
        response = self.kinesis.get_records(
            ShardIterator=self.iterator, Limit=min(10_000, self.mapping.batch_size)
        )
        self.iterator = response.get("NextShardIterator")
        for record in response["Records"]:
            self.pending.append(self._event_record(record))
        return len(response["Records"])

    def _event_record(self, record: Any) -> dict[str, Any]:
        arrival = record["ApproximateArrivalTimestamp"]
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record["PartitionKey"],
                "sequenceNumber": record["SequenceNumber"],
                "data": base64.b64encode(record["Data"]).decode(),
                "approximateArrivalTimestamp": arrival.timestamp() if isinstance(arrival, datetime) else arrival,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{self.shard_id}:{record['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": f"arn:aws:iam::{self.mapping.source_arn.split(':')[4]}:role/local-execution-role",
            "awsRegion": self.mapping.source_arn.split(":")[3],
            "eventSourceARN": self.mapping.source_arn,
        }

    def _take_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        size = 0
        while self.pending and len(batch) < self.mapping.batch_size:
            record_size = len(json.dumps(self.pending[0]))
            if batch and size + record_size > MAX_PAYLOAD_BYTES:
                break
            batch.append(self.pending.pop(0))
            size += record_size
        return batch

    def _process(self, first: Segment) -> None:
        """Handle a batch until every record is delivered or at the on-failure destination."""
        work = [first]
        while work and not self.stopping.is_set():
            segment = work.pop()
            invocation = self.worker.invoke({"Records": segment.records})
            sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in segment.records]
            failed = failed_identifiers(invocation, sequence_numbers, self.mapping.report_batch_item_failures)
            self._count(invocation, failed)
            if failed == []:
                continue
            if failed is None:
                remaining = segment.records
            else:
                # NOTE: Lambda checkpoints at the lowest reported sequence number and re-sends every later record.
                lowest = min(failed, key=int)
                remaining = segment.records[sequence_numbers.index(lowest) :]
            split = invocation.error is not None and self.mapping.bisect_on_error and len(remaining) > 1
            # NOTE: assumed (unverified) that splitting a batch does not count as a retry, so a poison record is
            # isolated before MaximumRetryAttempts is spent; retries of a segment that cannot split do count.
            retry = Segment(remaining, segment.attempts + (0 if split else 1))
            exhausted = self._exhausted(retry)
            if exhausted:
                self._send_to_on_failure(retry, exhausted, invocation)
                continue
            if split:
                middle = len(remaining) // 2
                work.append(Segment(remaining[middle:], retry.attempts))
                work.append(Segment(remaining[:middle], retry.attempts))
                continue
            backoff = (
                min(KINESIS_BACKOFF_MAX_S, KINESIS_BACKOFF_BASE_S * 2 ** (segment.attempts)) * self.time_scale
            )
            self.stopping.wait(backoff)
            work.append(retry)

    def _exhausted(self, segment: Segment) -> str:
        retries = segment.attempts
        if self.mapping.max_retry_attempts >= 0 and retries > self.mapping.max_retry_attempts:
            return "RetryAttemptsExhausted"
        if self.mapping.max_record_age_s >= 0:
            oldest = segment.records[0]["kinesis"]["approximateArrivalTimestamp"]
            if time.time() - oldest > self.mapping.max_record_age_s:
                return "RecordAgeExceeded"
        return ""

    def _send_to_on_failure(self, segment: Segment, condition: str, invocation: Invocation) -> None:
        records = segment.records
        first, last = records[0]["kinesis"], records[-1]["kinesis"]
        invocation_record: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.worker.function.arn,
                "condition": condition,
                "approximateInvokeCount": segment.attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled" if invocation.error else "",
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "KinesisBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": first["sequenceNumber"],
                "endSequenceNumber": last["sequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first["approximateArrivalTimestamp"]),
                "approximateArrivalOfLastRecord": _iso(last["approximateArrivalTimestamp"]),
                "batchSize": len(records),
                "streamArn": self.mapping.source_arn,
            },
        }
        if self.mapping.on_failure_arn is None:
            logger.warning(
                "%s: %d records discarded (%s), no on-failure destination", self.name, len(records), condition
            )
            return
        self.destinations.send(
            self.mapping.on_failure_arn, invocation_record, {"Records": records}, self.mapping_uuid, self.shard_id
        )


class ScheduledInvoker(threading.Thread):
    """EventBridge's rate schedule for one function (the import tracker), at the local time scale.

    Counts as idle (an "empty look") when the function answered that nothing is in flight, so the demo's drain
    waits for the import jobs to end.
    """

    def __init__(self, schedule: ScheduleSpec, worker: FunctionWorker, time_scale: float) -> None:
        super().__init__(name=f"schedule:{schedule.logical_id}", daemon=True)
        self.schedule = schedule
        self.worker = worker
        self.period_s = max(0.2, schedule.period_s * time_scale)
        self.stats = MappingStats()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        while not self.stopping.wait(self.period_s):
            self.stats.busy = True
            try:
                invocation = self.worker.invoke(
                    {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
                )
            finally:
                self.stats.busy = False
            self.stats.invocations += 1
            result = invocation.result if isinstance(invocation.result, dict) else {}
            if invocation.error is not None:
                self.stats.function_errors += 1
                logger.warning("%s: invocation failed: %s", self.name, invocation.error)
            idle = invocation.error is None and not result.get("inFlight")
            self.stats.caught_up = idle
            self.stats.empty_looks += idle


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OnFailureDestinations:
    """Sends invocation records to an SQS queue (metadata) or an S3 bucket (with the payload)."""

    def __init__(self, stack: LocalStack, endpoint_url: str) -> None:
        self.stack = stack
        region = stack.account.region
        self.sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self._lock = threading.Lock()

    def send(
        self, arn: str, record: dict[str, Any], payload: dict[str, Any], mapping_uuid: str, shard: str
    ) -> None:
        queue = self.stack.queue_by_arn(arn)
        bucket = self.stack.bucket_by_arn(arn)
        with self._lock:
            if queue is not None:
                self.sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps(record))
            elif bucket is not None:
                # NOTE: key layout of Lambda's S3 on-failure destination:
                # aws/lambda/<ESM UUID>/<shard ID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>
                now = datetime.now(UTC)
                key = f"aws/lambda/{mapping_uuid}/{shard}/{now:%Y/%m/%d}/{now:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}"
                self.s3.put_object(Bucket=bucket.name, Key=key, Body=json.dumps({**record, "payload": payload}))
            else:
                logger.error("on-failure destination %s is not emulated (only SQS queues and S3 buckets)", arn)


@dataclass
class Runner:
    """All pollers and workers of a stack; start with :meth:`start`, stop with :meth:`stop`."""

    stack: LocalStack
    children: ChildProcesses
    moto_url: str
    emulator_url: str
    time_scale: float
    functions_dir: Path = FUNCTIONS_DIR
    """The code asset's root: handler strings are resolved in it, as on Lambda."""
    workers: dict[str, FunctionWorker] = field(default_factory=dict)
    pollers: list[Poller | ScheduledInvoker] = field(default_factory=list)

    def start(self) -> None:
        """Create one worker per function and one poller per SQS mapping / Kinesis shard, then start polling."""
        region = self.stack.account.region
        endpoints = {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": self.emulator_url,
            "AWS_ENDPOINT_URL_PERSONALIZE": self.emulator_url,
        }
        scheduled = {schedule.function for schedule in self.stack.schedules.values()}
        for logical_id, function in self.stack.functions.items():
            if self.stack.mappings_of(logical_id) or logical_id in scheduled:
                env = lambda_environment(function, region, endpoints, self.functions_dir)
                self.workers[logical_id] = FunctionWorker(function, env, self.children)
        sqs = boto3.client("sqs", endpoint_url=self.moto_url, region_name=region)
        kinesis = boto3.client("kinesis", endpoint_url=self.moto_url, region_name=region)
        destinations = OnFailureDestinations(self.stack, self.moto_url)
        for mapping in self.stack.mappings.values():
            if not mapping.enabled:
                continue
            worker = self.workers[mapping.function]
            if mapping.kind == "sqs":
                queue = self.stack.queue_by_arn(mapping.source_arn)
                if queue is None:
                    raise ValueError(f"{mapping.logical_id} reads {mapping.source_arn}, not a queue of the stack")
                self.pollers.append(SqsPoller(mapping, worker, sqs, queue.url))
            else:
                stream_name = mapping.source_arn.rsplit("/", 1)[-1]
                shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
                for shard in shards:
                    self.pollers.append(
                        KinesisShardPoller(
                            mapping, worker, kinesis, shard["ShardId"], destinations, self.time_scale
                        )
                    )
        for schedule in self.stack.schedules.values():
            self.pollers.append(ScheduledInvoker(schedule, self.workers[schedule.function], self.time_scale))
        for poller in self.pollers:
            poller.start()

    def check(self) -> None:
        """Raise the first error that stopped a poller."""
        for poller in self.pollers:
            if poller.error is not None:
                raise RuntimeError(f"poller {poller.name} stopped") from poller.error

    def marker(self) -> list[int]:
        """Each poller's count of empty looks so far; pass it to :meth:`idle_since`."""
        return [p.stats.empty_looks for p in self.pollers]

    def idle_since(self, marker: list[int]) -> bool:
        """True when every poller has looked at its source since ``marker``, found nothing and is not invoking."""
        return all(
            p.stats.empty_looks > seen and p.stats.caught_up and not p.stats.busy
            for p, seen in zip(self.pollers, marker, strict=True)
        )

    def invocations(self) -> dict[str, tuple[int, int]]:
        """Per function entity: invocations made and how many of them failed as a whole."""
        counts: dict[str, tuple[int, int]] = {}
        for poller in self.pollers:
            entity = poller.worker.function.entity
            made, failed = counts.get(entity, (0, 0))
            counts[entity] = (made + poller.stats.invocations, failed + poller.stats.function_errors)
        return counts

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stopping.set()
        for poller in self.pollers:
            poller.join(timeout=10)
        for worker in self.workers.values():
            worker.stop()
