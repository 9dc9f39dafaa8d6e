"""One entity's pipeline: its function and the sources that feed it (Kinesis, SQS, S3 via SQS)."""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import CfnResource, Duration, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure import nag
from infrastructure.buckets import RESULTS_PREFIX
from infrastructure.config import EntityConfig, KinesisSource, QueueSource
from infrastructure.runtime import ARCHITECTURE, RUNTIME

ENTITY_TAG = "personalize:entity"
"""Tag (and CloudFormation Metadata key) naming the entity a resource belongs to."""
ROLE_METADATA = "personalize:role"
"""Metadata key naming what a resource is within its entity's pipeline (function, stream, queue ...)."""


@jsii.implements(lambda_.IEventSourceDlq)
class FailedBatchDestination:
    """S3 on-failure destination of a Kinesis mapping, granting only what Lambda needs to write there.

    NOTE: CDK's ``S3OnFailureDestination`` grants read *and* write (GetObject*, DeleteObject*, ...); Lambda only
    needs ``s3:PutObject`` on the objects and ``s3:ListBucket`` on the bucket (Lambda developer guide,
    "Capturing discarded batches": Amazon S3 destination permissions).
    """

    def __init__(self, bucket: s3.IBucket) -> None:
        self.bucket = bucket

    def bind(self, _target: object, target_handler: lambda_.IFunction) -> lambda_.DlqDestinationConfig:
        target_handler.add_to_role_policy(
            iam.PolicyStatement(
                sid="WriteFailedBatches", actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects("*")]
            )
        )
        target_handler.add_to_role_policy(
            iam.PolicyStatement(
                sid="ListFailedBatches", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]
            )
        )
        return lambda_.DlqDestinationConfig(destination=self.bucket.bucket_arn)


@dataclass(frozen=True, slots=True)
class SharedResources:
    """What the stack builds once and every pipeline uses."""

    code: lambda_.Code
    powertools_layer: lambda_.ILayerVersion
    rejects_queue: sqs.IQueue
    ingest_bucket: s3.IBucket | None
    failed_batches_bucket: s3.IBucket | None
    log_retention: logs.RetentionDays
    metrics_namespace: str
    service_name: str


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
        entity = config.entity
        self.stream: kinesis.Stream | None = None
        self.queue: sqs.Queue | None = None
        self.dead_letter_queue: sqs.Queue | None = None
        self.notifications_queue: sqs.Queue | None = None
        self.notifications_dead_letter_queue: sqs.Queue | None = None

        self.log_group = logs.LogGroup(self, "LogGroup", retention=shared.log_retention)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the {entity.name} ingest function",
        )
        # NOTE: a role of our own instead of AWSLambdaBasicExecutionRole: logs go to this log group only.
        self.log_group.grant_write(self.role)
        self.function = self._function(shared)
        self._grant_personalize()
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="SendRejects", actions=["sqs:SendMessage"], resources=[shared.rejects_queue.queue_arn]
            )
        )

        if config.kinesis is not None:
            assert shared.failed_batches_bucket is not None
            self._kinesis(config.kinesis, shared.failed_batches_bucket)
        if config.sqs is not None:
            self.queue, self.dead_letter_queue = self._queue("Queue", config.sqs)
        if config.s3 is not None:
            assert shared.ingest_bucket is not None
            self._s3(config.s3, shared.ingest_bucket)
        self._acknowledge(shared)
        self._label()

    # -- function -----------------------------------------------------------------------------------------------

    def _function(self, shared: SharedResources) -> lambda_.Function:
        entity, settings = self.config.entity, self.config.function
        environment = {
            entity.target_variable: self.config.target,
            "REJECTS_QUEUE_URL": shared.rejects_queue.queue_url,
            "MAX_CONCURRENT_CALLS": str(settings.max_concurrent_calls),
            "MAX_ATTEMPTS": str(settings.max_attempts),
            "CALLS_PER_SECOND": f"{settings.calls_per_second:g}",
            "DEADLINE_MARGIN_MS": str(settings.deadline_margin_ms),
            "POWERTOOLS_METRICS_NAMESPACE": shared.metrics_namespace,
            "POWERTOOLS_SERVICE_NAME": shared.service_name,
        }
        if settings.default_event_type is not None:
            environment["DEFAULT_EVENT_TYPE"] = settings.default_event_type
        return lambda_.Function(
            self,
            "Function",
            description=f"{entity.name}: Kinesis / SQS / S3 -> Amazon Personalize {entity.operation}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=shared.code,
            handler=f"{entity.name}.handler.lambda_handler",
            layers=[shared.powertools_layer],
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_s),
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment=environment,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE,
        )

    def _grant_personalize(self) -> None:
        entity = self.config.entity
        action = f"personalize:{entity.operation}"
        # PutItems / PutUsers / PutActions name their dataset in the request: scoped to the configured ARN.
        # NOTE: PutEvents and PutActionInteractions carry a tracking id, not an ARN; the IAM documentation's
        # examples grant them on "*" and scoping them to an event-tracker ARN is reported to be denied, so "*" is
        # as narrow as the service allows. The tracking id in the environment selects the tracker.
        resources = [self.config.target] if entity.dataset_type is not None else ["*"]
        self.role.add_to_policy(iam.PolicyStatement(sid="PutToPersonalize", actions=[action], resources=resources))

    # -- sources ------------------------------------------------------------------------------------------------

    def _kinesis(self, source: KinesisSource, failed_batches: s3.IBucket) -> None:
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_mode=kinesis.StreamMode.ON_DEMAND if source.on_demand else kinesis.StreamMode.PROVISIONED,
            shard_count=source.shard_count,
            encryption=kinesis.StreamEncryption.MANAGED,
            retention_period=Duration.hours(source.retention_hours),
        )
        self.function.add_event_source(
            event_sources.KinesisEventSource(
                self.stream,
                starting_position=lambda_.StartingPosition[source.starting_position],
                batch_size=source.batch_size,
                max_batching_window=Duration.seconds(source.max_batching_window_s),
                parallelization_factor=source.parallelization_factor,
                report_batch_item_failures=True,
                bisect_batch_on_error=True,
                retry_attempts=source.retry_attempts,
                max_record_age=Duration.seconds(source.max_record_age_s),
                on_failure=FailedBatchDestination(failed_batches),
            )
        )

    def _queue(self, construct_id: str, source: QueueSource) -> tuple[sqs.Queue, sqs.Queue]:
        """A queue with its DLQ, consumed by the function, which may also send to it (continuations)."""
        # NOTE: Lambda's guidance: visibility timeout >= 6 x function timeout + batching window, so a message is
        # not redelivered while an invocation that holds it can still be retried by the poller.
        visibility = 6 * self.config.function.timeout_s + source.max_batching_window_s
        # FIFO: content-based deduplication so producers need not set a deduplication id (a group id they must).
        fifo = True if source.fifo else None
        dead_letter_queue = sqs.Queue(
            self,
            f"{construct_id}DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            fifo=fifo,
            content_based_deduplication=fifo,
        )
        # NOTE: SQS-managed SSE, not the aws/sqs KMS key: S3 cannot deliver notifications to a queue encrypted
        # with an AWS-managed key, and this queue may be the one S3 notifies.
        queue = sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(visibility),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=source.max_receive_count, queue=dead_letter_queue
            ),
            fifo=fifo,
            content_based_deduplication=fifo,
        )
        self.function.add_event_source(
            event_sources.SqsEventSource(
                queue,
                batch_size=source.batch_size,
                max_batching_window=Duration.seconds(source.max_batching_window_s) if not source.fifo else None,
                max_concurrency=source.max_concurrency,
                report_batch_item_failures=True,
            )
        )
        # Continuations: the function re-enqueues the rest of a large S3 file on the queue the message came
        # from, whose URL it finds with GetQueueUrl (pipeline.py). Only these two actions: CDK's
        # grant_send_messages would add GetQueueAttributes, which the runtime never calls.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid=f"SendContinuationsTo{construct_id}",
                actions=["sqs:SendMessage", "sqs:GetQueueUrl"],
                resources=[queue.queue_arn],
            )
        )
        return queue, dead_letter_queue

    def _s3(self, source: QueueSource, bucket: s3.IBucket) -> None:
        prefix = self.config.entity.s3_prefix
        if self.queue is not None and not (self.config.sqs is not None and self.config.sqs.fifo):
            # The producers' standard queue also takes the notifications; its mapping's settings apply.
            self.notifications_queue, self.notifications_dead_letter_queue = self.queue, self.dead_letter_queue
        else:
            # NOTE: S3 cannot notify a FIFO queue, so an entity with a FIFO queue gets a standard one for S3.
            self.notifications_queue, self.notifications_dead_letter_queue = self._queue(
                "NotificationsQueue", source
            )
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(self.notifications_queue),
            s3.NotificationKeyFilter(prefix=prefix),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadEntityPrefix",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{prefix}*")],
            )
        )
        # NOTE: the runtime calls GetObject only (no HeadObject, no listing), but S3 answers a GetObject for a
        # missing key with 404 NoSuchKey only to callers holding s3:ListBucket on the bucket, and with 403
        # AccessDenied otherwise (GetObject API reference, "Permissions"). The runtime skips an object deleted
        # since its notification on NoSuchKey (s3objects.ObjectGone); on AccessDenied it would retry the message
        # until the DLQ. ListBucket reveals key names, never contents. A condition on s3:prefix is not used: a
        # GetObject request carries no prefix, so S3's existence check could not match it.
        self.role.add_to_policy(
            iam.PolicyStatement(sid="TellMissingObjects", actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteEntityResults",
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{RESULTS_PREFIX}{prefix}*")],
            )
        )

    # -- checks and labels --------------------------------------------------------------------------------------

    def _acknowledge(self, shared: SharedResources) -> None:
        entity = self.config.entity
        star_reason = "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions."
        if entity.dataset_type is None:
            star_reason += (
                f" {entity.operation} takes a tracking id, not an ARN: Resource '*' is the documented policy "
                "(reason next to the statement)."
            )
        nag.acknowledge(self.role, "IAM5", star_reason, finding="Resource::*")
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
