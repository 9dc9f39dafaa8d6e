"""The rejects queue: records Personalize would refuse, with the reason, for a person to look at."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure import nag


class RejectsQueue(Construct):
    """Encrypted queue keeping rejects for 14 days (SQS's maximum); wired to ``REJECTS_QUEUE_URL``."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal_policy,
        )
        nag.acknowledge(
            self.queue,
            "SQS3",
            "The rejects queue is itself the end of the line for invalid records: nothing consumes it "
            "automatically, so a dead-letter queue behind it would never receive anything.",
        )
