"""Files, queues and result files for the tests of the S3 path (moto S3/SQS on loopback)."""

from __future__ import annotations

import json
from typing import Any

USERS = 40
"""Users of the generated interaction files, interleaved: more than LANES_PER_WORKER x MAX_CONCURRENT_CALLS (32 by
default), so every chunk closes at S3_CHUNK_ROWS rows."""


def interactions_csv(rows: int, users: int = USERS) -> bytes:
    """A bulk-layout events CSV: ``u-<n % users>,i-<n>,click,<timestamp>`` for n in 0..rows-1."""
    lines = ["USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP"]
    lines += [f"u-{n % users},i-{n},click,{1764400000 + n}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def queue(sqs: Any, name: str, fifo: bool = False) -> tuple[str, str]:
    """Create a queue; return its URL and ARN."""
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Up to ten messages with their attributes (not deleted)."""
    response = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageSystemAttributeNames=["All"]
    )
    return response.get("Messages", [])


def take_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Receive and delete every message of a queue (with their attributes, as Lambda hands them over)."""
    taken: list[dict[str, Any]] = []
    while batch := receive_all(sqs, url):
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        taken.extend(batch)
    return taken


def result_file(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    """The result file the function wrote for ``key``."""
    return json.loads(s3.get_object(Bucket=bucket, Key=f"results/{key}.result.json")["Body"].read())
