"""The stack: composes the constructs, one per concern, and publishes what producers need as outputs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_logs as logs
from constructs import Construct

from infrastructure import nag
from infrastructure.buckets import RESULTS_PREFIX, AccessLogsBucket, FailedBatchesBucket, IngestBucket
from infrastructure.bulk_import import BulkImport
from infrastructure.bundling import function_code
from infrastructure.config import LOG_RETENTION_NAMES, IngestConfig
from infrastructure.entity_pipeline import EntityPipeline, SharedResources, pascal
from infrastructure.monitoring import Monitoring
from infrastructure.rejects_queue import RejectsQueue
from infrastructure.runtime import ARCHITECTURE, RUNTIME, powertools_layer

DEFAULT_STACK_NAME = "PersonalizeIngest"


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
        self.rejects = RejectsQueue(self, "Rejects")
        self.access_logs = AccessLogsBucket(self, "AccessLogs") if config.uses_s3 or config.uses_kinesis else None
        self.ingest_bucket = (
            IngestBucket(
                self,
                "Ingest",
                access_logs=self.access_logs.bucket,
                prefixes=[e.entity.s3_prefix for e in config.entities if e.s3 is not None],
                processed_object_expiration_days=config.processed_object_expiration_days,
                result_expiration_days=config.result_expiration_days,
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
            )
            if self.access_logs is not None and config.uses_kinesis
            else None
        )
        shared = SharedResources(
            code=function_code(RUNTIME, ARCHITECTURE),
            powertools_layer=powertools_layer(self, config.powertools_layer_version),
            rejects_queue=self.rejects.queue,
            ingest_bucket=self.ingest_bucket.bucket if self.ingest_bucket else None,
            failed_batches_bucket=self.failed_batches.bucket if self.failed_batches else None,
            log_retention=logs.RetentionDays[LOG_RETENTION_NAMES[config.log_retention_days]],
            metrics_namespace=config.metrics_namespace,
            service_name=config.service_name,
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

    def _acknowledge_cdk_internals(self) -> None:
        """Findings on what CDK itself adds: the custom resource that configures the bucket's notifications."""
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

    def _outputs(self) -> None:
        CfnOutput(self, "RejectsQueueUrl", value=self.rejects.queue.queue_url)
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
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
            if pipeline.queue is not None:
                CfnOutput(self, f"{prefix}QueueUrl", value=pipeline.queue.queue_url)
            if pipeline.notifications_queue is not None:
                CfnOutput(self, f"{prefix}S3Prefix", value=pipeline.config.entity.s3_prefix)
                if pipeline.notifications_queue is not pipeline.queue:
                    CfnOutput(self, f"{prefix}NotificationsQueueUrl", value=pipeline.notifications_queue.queue_url)
