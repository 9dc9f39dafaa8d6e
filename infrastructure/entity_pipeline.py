"""One entity's pipeline: its function (:class:`IngestFunction`) and the feeds of its configured sources."""

from __future__ import annotations

from typing import TypeVar

from aws_cdk import CfnResource, Tags
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure import nag
from infrastructure.config import EntityConfig
from infrastructure.feeds import KinesisFeed, S3Feed, SqsFeed
from infrastructure.ingest_function import IngestFunction, SharedResources, schemas_in_account_of
from personalize_ingest.contract import PROGRESS_FOLDER, RESULTS_PREFIX

_T = TypeVar("_T")

ENTITY_TAG = "personalize:entity"
"""Tag (and CloudFormation Metadata key) naming the entity a resource belongs to."""
ROLE_METADATA = "personalize:role"
"""Metadata key naming what a resource is within its entity's pipeline (function, stream, queue ...)."""


def pascal(name: str) -> str:
    """``action_interactions`` -> ``ActionInteractions`` (construct ids, output names)."""
    return "".join(part.capitalize() for part in name.split("_"))


class EntityPipeline(Construct):
    """Function + sources of one entity, least privilege.

    Attributes
    ----------
    function, role, log_group
        The entity's Lambda function, its execution role and its log group.
    stream
        The Kinesis stream, when the entity has a ``kinesis`` source.
    queue, dead_letter_queue
        The producers' SQS queue (standard or FIFO) and its DLQ, when the entity has an ``sqs`` source.
    notifications_queue, notifications_dead_letter_queue
        The standard queue S3 notifies for the entity's prefix (the producers' queue itself unless that one is
        FIFO, which S3 cannot notify), when the entity has an ``s3`` source.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EntityConfig, shared: SharedResources
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        ingest = IngestFunction(self, "Ingest", config=config, shared=shared)
        self.function, self.role, self.log_group = ingest.function, ingest.role, ingest.log_group
        timeout_s = config.function.timeout_s

        kinesis = (
            KinesisFeed(
                self,
                "Kinesis",
                source=config.kinesis,
                function=self.function,
                failed_batches=_required(shared.failed_batches_bucket),
                removal_policy=shared.removal_policy,
            )
            if config.kinesis is not None
            else None
        )
        self.stream = kinesis.stream if kinesis else None
        queue = (
            SqsFeed(
                self,
                "Sqs",
                source=config.sqs,
                function=self.function,
                timeout_s=timeout_s,
                content_based_deduplication=config.sqs.content_based_deduplication,
                removal_policy=shared.removal_policy,
            )
            if config.sqs is not None
            else None
        )
        self.queue: sqs.Queue | None = queue.queue if queue else None
        self.dead_letter_queue: sqs.Queue | None = queue.dead_letter_queue if queue else None
        files = (
            S3Feed(
                self,
                "S3",
                source=config.s3,
                prefix=config.entity.s3_prefix,
                bucket=_required(shared.ingest_bucket),
                function=self.function,
                timeout_s=timeout_s,
                shared_queue=None if config.s3_has_own_queue else queue,
                removal_policy=shared.removal_policy,
                fifo_announcements=config.sqs is not None and config.sqs.fifo,
            )
            if config.s3 is not None
            else None
        )
        self.notifications_queue: sqs.Queue | None = files.queue if files else None
        self.notifications_dead_letter_queue: sqs.Queue | None = files.dead_letter_queue if files else None
        self._acknowledge(shared)
        self._label()

    # -- checks and labels --

    def _acknowledge(self, shared: SharedResources) -> None:
        entity = self.config.entity
        star_reason = "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions."
        if entity.dataset_type is None:
            star_reason += (
                f" {entity.operation} takes a tracking id, not an ARN: Resource '*' is the documented policy "
                "(reason next to the statement)."
            )
        nag.acknowledge(self.role, "IAM5", star_reason, finding="Resource::*")
        if self.config.schema_from_dataset:
            nag.acknowledge(
                self.role,
                "IAM5",
                "DescribeSchema of the target dataset's schema, whose name only DescribeDataset tells at run "
                "time: scoped to the schemas of the dataset's own account and region, read-only.",
                finding=f"Resource::{schemas_in_account_of(self.config.target)}",
            )
        if shared.ingest_bucket is not None and self.config.s3 is not None:
            bucket_arn = nag.arn_reference(shared.ingest_bucket)
            prefix = entity.s3_prefix
            nag.acknowledge(
                self.role,
                "IAM5",
                f"Reads only objects under its own prefix {prefix}, whose names producers choose.",
                finding=f"Resource::{bucket_arn}/{prefix}*",
            )
            nag.acknowledge(
                self.role,
                "IAM5",
                f"Writes only the results of its own files, under {RESULTS_PREFIX}{prefix}.",
                finding=f"Resource::{bucket_arn}/{RESULTS_PREFIX}{prefix}*",
            )
            if self.config.sqs is not None and self.config.sqs.fifo:
                nag.acknowledge(
                    self.role,
                    "IAM5",
                    "Deletes only the progress markers of its own files announced on its FIFO queue, "
                    f"under {RESULTS_PREFIX}{prefix}<key>{PROGRESS_FOLDER}.",
                    finding=f"Resource::{bucket_arn}/{RESULTS_PREFIX}{prefix}*{PROGRESS_FOLDER}*",
                )
        if shared.failed_batches_bucket is not None and self.config.kinesis is not None:
            nag.acknowledge(
                self.role,
                "IAM5",
                "Lambda's Kinesis on-failure destination writes objects it names itself "
                "(aws/lambda/<mapping id>/<shard>/...) into the failed-batches bucket: PutObject on its objects "
                "only.",
                finding=f"Resource::{nag.arn_reference(shared.failed_batches_bucket)}/*",
            )

    def _label(self) -> None:
        """Tag every taggable resource and mark every CloudFormation resource with its entity and role."""
        name = self.config.entity.name
        Tags.of(self).add(ENTITY_TAG, name)
        roles: dict[Construct | None, str] = {
            self.function: "function",
            self.role: "role",
            self.log_group: "log-group",
            self.stream: "stream",
            self.queue: "queue",
            self.dead_letter_queue: "dead-letter-queue",
        }
        if self.notifications_queue is not self.queue:
            roles[self.notifications_queue] = "notifications-queue"
            roles[self.notifications_dead_letter_queue] = "notifications-dead-letter-queue"
        for construct in self.node.find_all():
            if isinstance(construct, CfnResource):
                construct.add_metadata(ENTITY_TAG, name)
        for labelled, role in roles.items():
            if labelled is not None and isinstance(labelled.node.default_child, CfnResource):
                labelled.node.default_child.add_metadata(ROLE_METADATA, role)
        for mapping in self.node.find_all():
            if isinstance(mapping, lambda_.CfnEventSourceMapping):
                mapping.add_metadata(ROLE_METADATA, "event-source-mapping")


def _required(value: _T | None) -> _T:
    assert value is not None, "the stack builds the shared bucket whenever a pipeline has the source"
    return value
