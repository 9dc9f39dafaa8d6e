"""What feeds a function, one construct per source type: a Kinesis stream, an SQS queue, S3 files via a queue.

Each builds its resources, attaches its event source mapping to the function and grants the function's role only
what that source needs.
"""

from __future__ import annotations

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.config_sources import KinesisSource, QueueSettings
from personalize_ingest.contract import PROGRESS_FOLDER, RESULTS_PREFIX


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


class KinesisFeed(Construct):
    """An encrypted stream and a hardened mapping: item failures, bisection, bounded retries and record age, and
    failed batches kept whole in S3.

    Attributes
    ----------
    stream
        The Kinesis data stream producers write to.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: KinesisSource,
        function: lambda_.Function,
        failed_batches: s3.IBucket,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_mode=kinesis.StreamMode.ON_DEMAND if source.on_demand else kinesis.StreamMode.PROVISIONED,
            shard_count=None if source.on_demand else source.shard_count,
            encryption=kinesis.StreamEncryption.MANAGED,
            retention_period=Duration.hours(source.retention_hours),
            removal_policy=removal_policy,
        )
        function.add_event_source(
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


class SqsFeed(Construct):
    """A queue (standard or FIFO) with its DLQ, consumed by the function, which may also send to it
    (continuations of large S3 files).

    Attributes
    ----------
    queue, dead_letter_queue
        The queue and the DLQ it redrives to after ``maxReceiveCount`` receives.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: QueueSettings,
        function: lambda_.Function,
        timeout_s: int,
        content_based_deduplication: bool,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # NOTE: Lambda's guidance: visibility timeout >= 6 x function timeout + batching window, so a message is
        # not redelivered while an invocation that holds it can still be retried by the poller.
        visibility = 6 * timeout_s + source.max_batching_window_s
        # FIFO: a group id producers must set; with content-based deduplication a body identical to one sent in
        # the last 5 minutes is dropped unless the producer sets its own MessageDeduplicationId (docs/deploy.md).
        fifo = True if source.fifo else None
        deduplication = content_based_deduplication if source.fifo else None
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            fifo=fifo,
            content_based_deduplication=deduplication,
            removal_policy=removal_policy,
        )
        # NOTE: SQS-managed SSE, not the aws/sqs KMS key: S3 cannot deliver notifications to a queue encrypted
        # with an AWS-managed key, and this queue may be the one S3 notifies.
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(visibility),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=source.max_receive_count, queue=self.dead_letter_queue
            ),
            fifo=fifo,
            content_based_deduplication=deduplication,
            removal_policy=removal_policy,
        )
        function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=source.batch_size,
                max_batching_window=Duration.seconds(source.max_batching_window_s) if not source.fifo else None,
                max_concurrency=source.max_concurrency,
                report_batch_item_failures=True,
            )
        )
        # NOTE: on a FIFO queue the function sends nothing: a large S3 file resumes from a progress marker when
        # its announcement is redelivered (s3stage/progress.py), and makes held messages visible again with
        # ChangeMessageVisibility(Batch) after GetQueueUrl, both already granted to consume the queue by the
        # event source above (CDK's grantConsumeMessages).
        if source.fifo:
            return
        # Continuations: the function re-enqueues the rest of a large S3 file on the queue the message came
        # from, whose URL it finds with GetQueueUrl (pipeline.py). Only these two actions: CDK's
        # grant_send_messages would add GetQueueAttributes, which the runtime never calls.
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid=f"SendContinuationsTo{construct_id}Queue",
                actions=["sqs:SendMessage", "sqs:GetQueueUrl"],
                resources=[self.queue.queue_arn],
            )
        )


class S3Feed(Construct):
    """The entity's prefix of the ingest bucket notifying a standard queue, and the function's S3 grants.

    Attributes
    ----------
    queue, dead_letter_queue
        The queue S3 notifies and its DLQ: ``shared_queue`` when given (the producers' standard queue), else a
        queue of its own (an :class:`SqsFeed`), because S3 cannot notify a FIFO queue.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: QueueSettings,
        prefix: str,
        bucket: s3.IBucket,
        function: lambda_.Function,
        timeout_s: int,
        shared_queue: SqsFeed | None,
        removal_policy: RemovalPolicy,
        fifo_announcements: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        feed = shared_queue or SqsFeed(
            self,
            "Notifications",
            source=source,
            function=function,
            timeout_s=timeout_s,
            content_based_deduplication=False,
            removal_policy=removal_policy,
        )
        self.queue, self.dead_letter_queue = feed.queue, feed.dead_letter_queue
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED, s3n.SqsDestination(self.queue), s3.NotificationKeyFilter(prefix=prefix)
        )
        function.add_to_role_policy(
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
        function.add_to_role_policy(
            iam.PolicyStatement(sid="TellMissingObjects", actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
        # NOTE: GetObject on the results prefix too: the ranges of a fanned-out object each write a part file
        # there, and whoever finishes last reads the parts back to write the summary (results.py).
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="WriteEntityResults",
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{RESULTS_PREFIX}{prefix}*")],
            )
        )
        if fifo_announcements:
            # NOTE: objects announced on a FIFO queue keep their progress in a marker (s3stage/progress.py),
            # deleted once the object is finished: DeleteObject on the markers only, never on results or inputs.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="DeleteProgressMarkers",
                    actions=["s3:DeleteObject"],
                    resources=[bucket.arn_for_objects(f"{RESULTS_PREFIX}{prefix}*{PROGRESS_FOLDER}*")],
                )
            )
