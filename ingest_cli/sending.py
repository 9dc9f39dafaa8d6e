"""Reading and writing the pipeline's queues and streams: receive, send back, delete only what was sent.

Sends report per record whether it arrived (SQS ``Failed`` entries, Kinesis per-record ``ErrorCode``), so a caller
deletes a source message only once its copy is in the destination.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import boto3

from ingest_cli.runtime import InputError
from ingest_cli.stack import StackOutputs

SQS_BATCH = 10
"""SendMessageBatch, DeleteMessageBatch and ReceiveMessage take at most ten entries."""
KINESIS_BATCH = 500
"""PutRecords takes at most 500 records (and 5 MiB) per call."""
KINESIS_BATCH_BYTES = 4 * 1024 * 1024


class Queue:
    """One SQS queue, by URL."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self.fifo = url.endswith(".fifo")
        self.client: Any = client or boto3.client("sqs")

    def depth(self) -> dict[str, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return {"visible": int(attributes.get(names[0], 0)), "inFlight": int(attributes.get(names[1], 0))}

    def dead_letter_url(self) -> str | None:
        """URL of the queue's DLQ (from its redrive policy), or None."""
        attributes = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
        policy = attributes.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return None
        arn = json.loads(policy)["deadLetterTargetArn"]
        _, _, _, _, account, name = arn.split(":", 5)
        return str(self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])

    def receive_all(self, limit: int | None, visibility_s: int) -> Iterator[tuple[str, str]]:
        """(body, receipt handle) of the visible messages, hidden for ``visibility_s`` once received, until the
        queue answers empty or ``limit`` messages were taken."""
        for body, receipt, _ in self.receive_messages(limit, visibility_s):
            yield body, receipt

    def receive_messages(self, limit: int | None, visibility_s: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
        taken = 0
        while limit is None or taken < limit:
            wanted = SQS_BATCH if limit is None else min(SQS_BATCH, limit - taken)
            messages = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=wanted,
                VisibilityTimeout=visibility_s,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
                AttributeNames=["MessageGroupId", "MessageDeduplicationId"],
            ).get("Messages", [])
            if not messages:
                return
            for message in messages:
                taken += 1
                yield message["Body"], message["ReceiptHandle"], message

    def send(self, bodies: Sequence[tuple[str, dict[str, Any]]]) -> dict[int, str]:
        """Send ``(body, extra SendMessageBatch entry fields)``; return {index: why} for those not sent."""
        failures: dict[int, str] = {}
        for start in range(0, len(bodies), SQS_BATCH):
            chunk = bodies[start : start + SQS_BATCH]
            entries: list[Any] = []
            for offset, (body, extra) in enumerate(chunk):
                entry: dict[str, Any] = {"Id": str(offset), "MessageBody": body, **extra}
                if self.fifo:
                    entry.setdefault("MessageGroupId", "replay")
                    entry.setdefault("MessageDeduplicationId", hashlib.sha256(body.encode()).hexdigest())
                entries.append(entry)
            response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            for failure in response.get("Failed", []):
                failures[start + int(failure["Id"])] = f"{failure.get('Code')}: {failure.get('Message', '')}"
        return failures

    def delete(self, receipts: Sequence[str]) -> None:
        for start in range(0, len(receipts), SQS_BATCH):
            entries: Any = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts[start : start + 10])]
            self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def release(self, receipts: Sequence[str]) -> None:
        """Make received messages visible again at once (they were not handled)."""
        for start in range(0, len(receipts), SQS_BATCH):
            entries: Any = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(receipts[start : start + SQS_BATCH])
            ]
            self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)


class Destination:
    """Where replayed records go: the entity's Kinesis stream or SQS queue."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name

    def describe(self) -> str:
        return f"{self.kind} {self.name}"

    def send(self, records: Sequence[tuple[Any, str]]) -> dict[int, str]:
        """Send ``(record value, partition key)`` as JSON; return {index: why} for those not sent."""
        bodies = [json.dumps(value, ensure_ascii=False, separators=(",", ":")) for value, _ in records]
        if self.kind == "queue":
            queue = Queue(self.name)
            # NOTE: on a FIFO queue the partition key (the record's session or id) is the message group, so the
            # replayed records of one session keep their order, as on a stream.
            extras = [{"MessageGroupId": key} if queue.fifo else {} for _, key in records]
            return queue.send(list(zip(bodies, extras, strict=True)))
        return put_records(
            boto3.client("kinesis"),
            self.name,
            [(b.encode(), key) for b, (_, key) in zip(bodies, records, strict=True)],
        )


def put_records(kinesis: Any, stream: str, records: Sequence[tuple[bytes, str]]) -> dict[int, str]:
    """PutRecords ``(data, partition key)`` in order, in calls of at most 500; return {index: why} not put."""
    failures: dict[int, str] = {}
    start = 0
    while start < len(records):
        end, size = start, 0
        while (
            end < len(records)
            and end - start < KINESIS_BATCH
            and size + len(records[end][0]) <= KINESIS_BATCH_BYTES
        ):
            size += len(records[end][0]) + len(records[end][1])
            end += 1
        end = max(end, start + 1)
        entries: Any = [{"Data": data, "PartitionKey": key} for data, key in records[start:end]]
        response = kinesis.put_records(StreamName=stream, Records=entries)
        for offset, result in enumerate(response["Records"]):
            if result.get("ErrorCode"):
                failures[start + offset] = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"
        start = end
    return failures


def destination_for(outputs: StackOutputs, entity: str, to: str | None) -> Destination:
    """The entity's stream (``--to stream`` or by default when the stack has one) or queue."""
    stream = outputs.entity(entity, "StreamName")
    queue = outputs.entity(entity, "QueueUrl")
    if to == "stream" or (to is None and stream):
        if not stream:
            raise InputError(f"the stack has no Kinesis stream for {entity} (try --to queue)")
        return Destination("stream", stream)
    if not queue:
        raise InputError(f"the stack has no SQS queue for {entity}" + (" (try --to stream)" if stream else ""))
    return Destination("queue", queue)
