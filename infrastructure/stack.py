"""The stack: composes the constructs, one per concern, and publishes what producers need as outputs."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, CfnRule, CfnRuleAssertion, Fn, RemovalPolicy, Stack, Token
from aws_cdk import aws_logs as logs
from constructs import Construct

from infrastructure import nag
from infrastructure.buckets import AccessLogsBucket, FailedBatchesBucket, IngestBucket
from infrastructure.bulk_import import BulkImport
from infrastructure.bundling import function_code
from infrastructure.config import IngestConfig
from infrastructure.config_fields import LOG_RETENTION_NAMES
from infrastructure.entity_pipeline import EntityPipeline, pascal
from infrastructure.ingest_function import SharedResources
from infrastructure.monitoring import Monitoring
from infrastructure.rejects_queue import RejectsQueue
from infrastructure.runtime import ARCHITECTURE, RUNTIME
from personalize_ingest.contract import RESULTS_PREFIX

DEFAULT_STACK_NAME = "PersonalizeIngest"
REGION_RULE = "TargetsInDeployRegion"
"""Logical id of the CloudFormation rule refusing targets of another region."""
FIFO_DEDUPLICATION_NOTE = (
    "FIFO queue: set MessageGroupId (ordering is per group). With content-based deduplication a body identical "
    "to one sent in the last 5 minutes is dropped unless you set your own MessageDeduplicationId."
)


class RegionError(ValueError):
    """A target lives in another region than the one the stack deploys to (known at synth)."""


class PersonalizeIngestStack(Stack):
    """Kinesis / SQS / S3 -> Lambda -> Amazon Personalize, for the configured entities only.

    Attributes
    ----------
    pipelines
        One :class:`EntityPipeline` per configured entity, keyed by entity name.
    rejects, access_logs, ingest_bucket, failed_batches, monitoring
        The shared constructs (``ingest_bucket`` only with an S3 source, ``failed_batches`` only with Kinesis).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: IngestConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # NOTE: server access logs are delivered through a bucket policy, not ACLs (the log bucket enforces
        # bucket-owner object ownership, which disables ACLs). Set here so the stack does not depend on cdk.json.
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self.config = config
        removal_policy = RemovalPolicy[config.removal_policy]
        self._check_regions()
        self.rejects = RejectsQueue(self, "Rejects", removal_policy=removal_policy)
        self.access_logs = (
            AccessLogsBucket(self, "AccessLogs", removal_policy=removal_policy)
            if config.uses_s3 or config.uses_kinesis
            else None
        )
        self.ingest_bucket = (
            IngestBucket(
                self,
                "Ingest",
                access_logs=self.access_logs.bucket,
                prefixes=[e.entity.s3_prefix for e in config.entities if e.s3 is not None],
                processed_object_expiration_days=config.processed_object_expiration_days,
                result_expiration_days=config.result_expiration_days,
                removal_policy=removal_policy,
            )
            if self.access_logs is not None and config.uses_s3
            else None
        )
        self.failed_batches = (
            FailedBatchesBucket(
                self,
                "FailedBatches",
                access_logs=self.access_logs.bucket,
                expiration_days=config.failed_batch_expiration_days,
                removal_policy=removal_policy,
            )
            if self.access_logs is not None and config.uses_kinesis
            else None
        )
        shared = SharedResources(
            code=function_code(RUNTIME, ARCHITECTURE),
            rejects_queue=self.rejects.queue,
            ingest_bucket=self.ingest_bucket.bucket if self.ingest_bucket else None,
            failed_batches_bucket=self.failed_batches.bucket if self.failed_batches else None,
            log_retention=logs.RetentionDays[LOG_RETENTION_NAMES[config.log_retention_days]],
            metrics_namespace=config.metrics_namespace,
            service_name=config.service_name,
            removal_policy=removal_policy,
        )
        self.pipelines = {
            entity.entity.name: EntityPipeline(
                self, f"{pascal(entity.entity.name)}Pipeline", config=entity, shared=shared
            )
            for entity in config.entities
        }
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            pipelines=list(self.pipelines.values()),
            rejects_queue=self.rejects.queue,
            failed_batches_bucket=shared.failed_batches_bucket,
            metrics_namespace=config.metrics_namespace,
            iterator_age_alarm_s=config.iterator_age_alarm_s,
            alarm_email=config.alarm_email,
            alarm_topic_arn=config.alarm_topic_arn,
        )
        bulk = [p for p in self.pipelines.values() if p.config.bulk_import is not None]
        self.bulk_import = (
            BulkImport(
                self,
                "BulkImport",
                pipelines=bulk,
                bucket=shared.ingest_bucket,
                shared=shared,
                monitoring=self.monitoring,
            )
            if bulk and shared.ingest_bucket is not None
            else None
        )
        self._acknowledge_cdk_internals()
        self._outputs()

    def _check_regions(self) -> None:
        """Refuse targets of another region: at synth when the stack's region is known, else at deploy.

        NOTE: a dataset ARN carries its region, and every call to a dataset of another region fails (the
        functions call Personalize in their own region). A tracking id carries none: a tracker of another region
        cannot be detected before the first call fails (docs/deploy.md, "Regions"). The rule runs before
        CloudFormation creates or changes anything, so a wrong region fails the deploy instead of every call.
        """
        targets = {f"entities.{name}.datasetArn": region for name, region in self.config.dataset_regions.items()}
        # A schema is read with DescribeSchema in the function's region: one of another region is never found.
        targets |= {f"entities.{name}.schemaArn": region for name, region in self.config.schema_regions.items()}
        if self.config.alarm_topic_region is not None:
            # CloudWatch alarms can notify only a topic of their own region.
            targets["alarmTopicArn"] = self.config.alarm_topic_region
        if not targets:
            return
        if not Token.is_unresolved(self.region):
            wrong = {key: region for key, region in targets.items() if region != self.region}
            if wrong:
                listed = ", ".join(f"personalize.{key} is in {region}" for key, region in wrong.items())
                raise RegionError(f"the stack deploys to {self.region} but {listed}")
        CfnRule(
            self,
            REGION_RULE,
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_equals(Aws.REGION, region),
                    assert_description=f"personalize.{key} is in {region}: deploy the stack to {region} "
                    f"(or configure a target of this region)",
                )
                for key, region in sorted(targets.items())
            ],
        )

    def _acknowledge_cdk_internals(self) -> None:
        """Findings on what CDK itself adds: the custom resources that configure the bucket's notifications and,
        with removalPolicy DESTROY, empty buckets before deleting them."""
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                nag.acknowledge(
                    child,
                    "IAM4",
                    "CDK's own BucketNotificationsHandler (it sets the ingest bucket's notification configuration "
                    "at deploy time) uses AWSLambdaBasicExecutionRole for its logs; CDK offers no way to replace "
                    "it.",
                    finding="Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                )
            if child.node.id.startswith("Custom::S3AutoDeleteObjects"):
                nag.acknowledge(
                    child,
                    "IAM4",
                    "CDK's own auto-delete provider (removalPolicy DESTROY, for development: it empties the "
                    "buckets when the stack is deleted) uses AWSLambdaBasicExecutionRole; CDK offers no way to "
                    "replace it.",
                )

    def _outputs(self) -> None:
        CfnOutput(self, "RejectsQueueUrl", value=self.rejects.queue.queue_url)
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="Every alarm notifies this SNS topic: subscribe your pager, chat or e-mail to it.",
        )
        if self.ingest_bucket is not None:
            CfnOutput(self, "IngestBucketName", value=self.ingest_bucket.bucket.bucket_name)
            CfnOutput(self, "ResultsPrefix", value=RESULTS_PREFIX)
        if self.bulk_import is not None:
            CfnOutput(self, "BulkImportRoleArn", value=self.bulk_import.service_role.role_arn)
        if self.failed_batches is not None:
            CfnOutput(self, "FailedBatchesBucketName", value=self.failed_batches.bucket.bucket_name)
        for name, pipeline in self.pipelines.items():
            prefix = pascal(name)
            CfnOutput(self, f"{prefix}FunctionName", value=pipeline.function.function_name)
            if pipeline.stream is not None:
                CfnOutput(self, f"{prefix}StreamName", value=pipeline.stream.stream_name)
                CfnOutput(self, f"{prefix}StreamArn", value=pipeline.stream.stream_arn)
            if pipeline.queue is not None:
                sqs = pipeline.config.sqs
                fifo = sqs is not None and sqs.fifo
                CfnOutput(
                    self,
                    f"{prefix}QueueUrl",
                    value=pipeline.queue.queue_url,
                    description=FIFO_DEDUPLICATION_NOTE if fifo else "Standard queue (at-least-once delivery).",
                )
                if fifo and sqs is not None:
                    CfnOutput(
                        self,
                        f"{prefix}QueueDeduplication",
                        value="content-based" if sqs.content_based_deduplication else "producer-id",
                        description="content-based: identical bodies within 5 minutes are delivered once unless "
                        "MessageDeduplicationId is set; producer-id: every message must carry "
                        "MessageDeduplicationId.",
                    )
            if pipeline.dead_letter_queue is not None:
                CfnOutput(self, f"{prefix}DeadLetterQueueUrl", value=pipeline.dead_letter_queue.queue_url)
            if pipeline.notifications_queue is not None:
                CfnOutput(self, f"{prefix}S3Prefix", value=pipeline.config.entity.s3_prefix)
                if pipeline.notifications_queue is not pipeline.queue:
                    CfnOutput(self, f"{prefix}NotificationsQueueUrl", value=pipeline.notifications_queue.queue_url)
                    if pipeline.notifications_dead_letter_queue is not None:
                        CfnOutput(
                            self,
                            f"{prefix}NotificationsDeadLetterQueueUrl",
                            value=pipeline.notifications_dead_letter_queue.queue_url,
                        )
