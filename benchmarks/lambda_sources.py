"""Lambda's Kinesis and SQS event-source semantics, in process, for the soak.

What each source does with a batch response (``ReportBatchItemFailures`` on), as Lambda documents it:

- **Kinesis** (one poller per shard, records in order): on reported failures the checkpoint moves to the lowest
  reported sequence number and the batch is retried from there; an error, a malformed response or a timeout
  retries the whole batch. After ``retry_attempts`` retries the rest of the batch goes to the on-failure
  destination (counted here as *given up*) and the shard moves on.
- **SQS standard**: every reported message comes back after its visibility timeout (at the end of the queue
  here: standard queues do not keep order); after ``max_receive_count`` receives it goes to the DLQ.
- **SQS FIFO**: a batch takes messages in group order, and a reported message goes back to the head of its group,
  so the group's later messages wait behind it.

The response is read by :func:`local.runner.failed_identifiers`, the same reading the local demo runner uses. The
context reports the time left of a real clock; an invocation that overruns its timeout is treated as Lambda
treats it, as a function error, whatever it returned.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.runner import Invocation, failed_identifiers

Handler = Callable[[dict[str, Any], Any], Any]


class ClockContext:
    """The part of Lambda's context the function reads, with the time left of a real clock."""

    function_name = "personalize-ingest-soak"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:personalize-ingest-soak"
    memory_limit_in_mb = 1024
    aws_request_id = "soak"
    log_group_name = "/aws/lambda/personalize-ingest-soak"
    log_stream_name = "soak"

    def __init__(self, timeout_s: float) -> None:
        self._ends = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))


def invoke(handler: Handler, records: list[dict[str, Any]], timeout_s: float) -> Invocation:
    """Run the handler on ``records`` as Lambda would, a timeout included."""
    started = time.monotonic()
    try:
        result = handler({"Records": records}, ClockContext(timeout_s))
    except Exception as exc:  # the function raised: Lambda retries the whole batch
        return Invocation(error=f"{type(exc).__name__}: {exc}")
    if time.monotonic() - started > timeout_s:
        return Invocation(error="Task timed out")
    return Invocation(result=result)


@dataclass
class ShardRun:
    """What one shard's poller did."""

    invocations: int = 0
    given_up: list[dict[str, Any]] = field(default_factory=list)
    """Records sent to the on-failure destination after the retries ran out."""
    progress: list[list[int]] = field(default_factory=list)
    """Per batch that needed retries: records checkpointed by each invocation of it (cumulative)."""


def run_kinesis_shard(
    handler: Handler,
    records: list[dict[str, Any]],
    *,
    batch_size: int = 100,
    retry_attempts: int = 5,
    timeout_s: float = 60.0,
    backoff_s: float = 0.05,
) -> ShardRun:
    """Feed one shard's ``records`` (Kinesis event records, in order) through ``handler`` until all are past."""
    run = ShardRun()
    position = 0
    while position < len(records):
        batch = records[position : position + batch_size]
        retries = 0
        done = 0
        checkpoints: list[int] = []
        while True:
            pending = batch[done:]
            invocation = invoke(handler, pending, timeout_s)
            run.invocations += 1
            sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in pending]
            failed = failed_identifiers(invocation, sequence_numbers, True)
            if failed == []:
                done = len(batch)
                checkpoints.append(done)
                break
            if failed is not None:
                # NOTE: the checkpoint moves to the lowest reported sequence number; everything after it is
                # sent again.
                done += min(sequence_numbers.index(s) for s in failed)
            checkpoints.append(done)
            retries += 1
            if retries > retry_attempts:
                run.given_up.extend(batch[done:])
                break
            time.sleep(backoff_s * 2 ** min(retries, 5))
        if len(checkpoints) > 1:
            run.progress.append(checkpoints)
        position += len(batch)
    return run


@dataclass
class _Message:
    record: dict[str, Any]
    receives: int = 0

    @property
    def group(self) -> str | None:
        return self.record.get("attributes", {}).get("MessageGroupId")


@dataclass
class QueueRun:
    """What one queue's pollers did."""

    invocations: int = 0
    dead_lettered: list[dict[str, Any]] = field(default_factory=list)


class _Queue:
    """Messages waiting, by group on FIFO (a group with a batch in flight gives no more until it returns)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._ready = threading.Condition()
        self.groups: dict[str | None, deque[_Message]] = {}
        for record in records:
            message = _Message(record)
            self.groups.setdefault(message.group, deque()).append(message)
        self.fifo = None not in self.groups
        self.in_flight: set[str | None] = set()
        self.batches_in_flight = 0

    def take(self, batch_size: int) -> list[_Message] | None:
        """The next batch, or None once nothing is waiting or in flight (wait while only in-flight groups are)."""
        with self._ready:
            while True:
                batch: list[_Message] = []
                for group, members in self.groups.items():
                    if self.fifo and group in self.in_flight:
                        continue
                    while members and len(batch) < batch_size:
                        batch.append(members.popleft())
                        if self.fifo:
                            self.in_flight.add(group)
                    if len(batch) >= batch_size:
                        break
                if batch:
                    self.batches_in_flight += 1
                    return batch
                if self.batches_in_flight == 0:
                    return None
                self._ready.wait()

    def settle(self, batch: list[_Message], failed: set[str], max_receive_count: int, run: QueueRun) -> None:
        with self._ready:
            back: dict[str | None, list[_Message]] = {}
            for message in batch:
                if message.record["messageId"] not in failed:
                    continue
                if message.receives >= max_receive_count:
                    run.dead_lettered.append(message.record)
                else:
                    back.setdefault(message.group, []).append(message)
            for group, messages in back.items():
                if self.fifo:
                    # NOTE: a failed message keeps its place at the head of its group, before the later ones.
                    self.groups[group].extendleft(reversed(messages))
                else:
                    # NOTE: a standard queue redelivers after the visibility timeout, behind what is waiting.
                    self.groups[group].extend(messages)
            for message in batch:
                self.in_flight.discard(message.group)
            self.batches_in_flight -= 1
            self._ready.notify_all()


def run_sqs_queue(
    handler: Handler,
    records: list[dict[str, Any]],
    *,
    batch_size: int = 10,
    max_receive_count: int = 5,
    timeout_s: float = 60.0,
    pollers: int = 4,
) -> QueueRun:
    """Feed SQS event records through ``handler`` from ``pollers`` concurrent pollers (Lambda scales SQS out):
    a standard queue, or FIFO when they carry a group id."""
    queue = _Queue(records)
    run = QueueRun()
    lock = threading.Lock()

    def poll() -> None:
        while (batch := queue.take(batch_size)) is not None:
            for message in batch:
                message.receives += 1
                message.record["attributes"]["ApproximateReceiveCount"] = str(message.receives)
            ids = [m.record["messageId"] for m in batch]
            invocation = invoke(handler, [m.record for m in batch], timeout_s)
            failed = failed_identifiers(invocation, ids, True)
            with lock:
                run.invocations += 1
            queue.settle(batch, set(ids) if failed is None else set(failed), max_receive_count, run)

    threads = [threading.Thread(target=poll, name=f"sqs-poller-{n}") for n in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return run
