"""A stand-in function for the runner's tests: it does what each record asks and reports what it saw.

A record (SQS body or Kinesis data) is JSON: ``{"id": ..., "fail": true}`` is reported as a batch item failure,
``{"raise": true}`` fails the whole invocation, ``{"sleep": seconds}`` sleeps first. Every record handled without
failure is sent to ``SINK_QUEUE_URL`` with the function's name, the size of its batch, the context's remaining time
and its environment. An S3 notification is reported per object as ``{"id": "s3:<key as notified>"}``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import boto3

# A slow cold start on demand (INIT_SLEEP seconds of import time), to show init does not count towards the timeout.
time.sleep(float(os.environ.get("INIT_SLEEP", "0")))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sqs = boto3.client("sqs")
    failures = []
    for record in event["Records"]:
        if "kinesis" in record:
            identifier = record["kinesis"]["sequenceNumber"]
            body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        else:
            identifier = record["messageId"]
            body = json.loads(record["body"])
        if "id" not in body:
            # An S3 notification (or the s3:TestEvent S3 sends when notifications are configured): report the
            # keys exactly as notified, still URL-encoded.
            body = {"id": " ".join(f"s3:{r['s3']['object']['key']}" for r in body.get("Records", []))}
            if body["id"] == "":
                continue
        time.sleep(body.get("sleep", 0))
        if body.get("raise"):
            raise RuntimeError(f"record {body['id']} asked to fail the invocation")
        if body.get("fail"):
            failures.append({"itemIdentifier": identifier})
            continue
        report = {
            "id": body["id"],
            "function": context.function_name,
            "batchSize": len(event["Records"]),
            "remainingMs": context.get_remaining_time_in_millis(),
            "environment": dict(os.environ),
            "attributes": record.get("attributes", {}),
        }
        sqs.send_message(QueueUrl=os.environ["SINK_QUEUE_URL"], MessageBody=json.dumps(report))
    return {"batchItemFailures": failures}
