"""Send messages back to the SQS queue an object was announced on (continuations and byte ranges), and make
held FIFO messages visible again (:mod:`personalize_ingest.s3stage.progress`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

    from personalize_ingest.sources import BatchItem

MAX_BATCH_ENTRIES = 10


class NotQueued(Exception):
    """A message could not be put on the source queue (the announcing message is then reported failed)."""


def send_to_source_queue(sqs: SQSClient, item: BatchItem, bodies: Sequence[str]) -> None:
    """Put ``bodies`` on the queue ``item`` came from, ten per SendMessageBatch.

    On a FIFO queue the messages keep the item's message group (so one object is read in order) and a
    deduplication id fixed by the body, so a retried send within five minutes is dropped by SQS.

    Raises
    ------
    NotQueued
        when an entry was refused; botocore's errors when a call failed.
    """
    if item.queue_arn is None:
        raise NotQueued("the item did not come from an SQS queue")
    queue_url = url_of(sqs, item.queue_arn)
    for start in range(0, len(bodies), MAX_BATCH_ENTRIES):
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for index, body in enumerate(bodies[start : start + MAX_BATCH_ENTRIES]):
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": body}
            if item.group_id is not None:
                entry["MessageGroupId"] = item.group_id
                entry["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()
            entries.append(entry)
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise NotQueued(f"SQS refused {len(failed)} message(s): {failed[0].get('Code')}")


def url_of(sqs: SQSClient, queue_arn: str) -> str:
    """The URL of the queue ``queue_arn`` names (GetQueueUrl); raises :class:`NotQueued` for an unreadable ARN."""
    arn_parts = queue_arn.split(":")
    if len(arn_parts) < 6:
        raise NotQueued(f"the queue ARN {queue_arn!r} cannot be read")
    return sqs.get_queue_url(QueueName=arn_parts[5], QueueOwnerAWSAccountId=arn_parts[4])["QueueUrl"]


def make_visible(sqs: SQSClient, queue_arn: str, receipt_handles: Sequence[str]) -> int:
    """Make the received messages ``receipt_handles`` of ``queue_arn`` visible again now (visibility 0), ten per
    ChangeMessageVisibilityBatch; return how many SQS refused (they come back after their visibility timeout)."""
    queue_url = url_of(sqs, queue_arn)
    refused = 0
    for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for index, handle in enumerate(receipt_handles[start : start + MAX_BATCH_ENTRIES])
        ]
        response = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        refused += len(response.get("Failed", []))
    return refused
