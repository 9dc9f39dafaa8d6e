"""Create the stack's streams, queues and bucket (with its notifications) in moto, as the template describes them.

Resources are created directly with boto3 rather than through moto's CloudFormation: moto would try to run the
functions of event-source mappings (it needs Docker for that) and skips CDK's notification custom resource.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

from local.stack import LocalStack, QueueSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def scaled_seconds(seconds: float, time_scale: float, *, minimum: int = 1) -> int:
    """``seconds`` shortened by the local time scale, whole seconds, never below ``minimum``."""
    return max(minimum, round(seconds * time_scale))


def create_resources(stack: LocalStack, endpoint_url: str, *, time_scale: float) -> None:
    """Create every stream, queue and bucket of ``stack`` in the moto server at ``endpoint_url``.

    Queue visibility timeouts are multiplied by ``time_scale`` (the only setting changed locally), so a failed
    message comes back in seconds instead of minutes; redrive policies keep the template's maxReceiveCount.
    """
    region = stack.account.region
    kinesis = boto3.client("kinesis", endpoint_url=endpoint_url, region_name=region)
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    for stream in stack.streams.values():
        kinesis.create_stream(StreamName=stream.name, ShardCount=stream.shard_count)
        kinesis.get_waiter("stream_exists").wait(StreamName=stream.name, WaiterConfig={"Delay": 1})

    # Dead-letter queues first: a redrive policy names an existing queue.
    ordered = sorted(stack.queues.values(), key=lambda q: q.dead_letter_arn is not None)
    for queue in ordered:
        _create_queue(sqs, queue, time_scale)

    for bucket in stack.buckets.values():
        s3.create_bucket(Bucket=bucket.name)
        if bucket.versioned:
            s3.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})
        if bucket.notifications:
            configurations: list[Any] = [
                {
                    "QueueArn": n.queue_arn,
                    "Events": list(n.events),
                    "Filter": {"Key": {"FilterRules": _filter_rules(n.prefix, n.suffix)}},
                }
                for n in bucket.notifications
            ]
            s3.put_bucket_notification_configuration(
                Bucket=bucket.name, NotificationConfiguration={"QueueConfigurations": configurations}
            )

    # The import route: Personalize's service role in moto's IAM and the bucket policy that admits Personalize,
    # which the emulator's import jobs check before they read (moto itself enforces neither).
    iam = boto3.client("iam", endpoint_url=endpoint_url, region_name=region)
    for role in stack.service_roles.values():
        iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust_policy))
        for name, document in role.policies.items():
            iam.put_role_policy(RoleName=role.name, PolicyName=name, PolicyDocument=json.dumps(document))
    for bucket_name, document in stack.bucket_policies.items():
        s3.put_bucket_policy(Bucket=bucket_name, Policy=json.dumps(document))


def _create_queue(sqs: SQSClient, queue: QueueSpec, time_scale: float) -> None:
    attributes: Any = {"VisibilityTimeout": str(scaled_seconds(queue.visibility_timeout_s, time_scale))}
    if queue.fifo:
        attributes["FifoQueue"] = "true"
        attributes["ContentBasedDeduplication"] = str(queue.content_based_deduplication).lower()
    if queue.dead_letter_arn is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": queue.dead_letter_arn, "maxReceiveCount": queue.max_receive_count}
        )
    url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
    if url != queue.url:
        raise RuntimeError(
            f"moto named queue {queue.logical_id} {url}, the template resolver expected {queue.url}"
        )


def _filter_rules(prefix: str, suffix: str) -> list[Any]:
    rules = []
    if prefix:
        rules.append({"Name": "prefix", "Value": prefix})
    if suffix:
        rules.append({"Name": "suffix", "Value": suffix})
    return rules
