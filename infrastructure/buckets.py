"""S3 buckets: the ingest bucket (one prefix per entity), Kinesis' failed batches, and their access logs."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infrastructure import nag
from personalize_ingest.contract import RESULTS_PREFIX

FAILED_BATCHES_METRICS_FILTER = "AllObjects"


def _hardened_bucket(
    scope: Construct,
    construct_id: str,
    *,
    lifecycle_rules: list[s3.LifecycleRule],
    access_logs: s3.IBucket | None = None,
    access_logs_prefix: str | None = None,
    metrics: list[s3.BucketMetrics] | None = None,
    removal_policy: RemovalPolicy,
) -> s3.Bucket:
    """Private, SSE-S3, SSL-only, ACL-free bucket; kept when the stack is deleted unless ``removal_policy`` is
    DESTROY, which empties it first (CDK's auto-delete custom resource) so that CloudFormation can delete it."""
    bucket = s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy,
        auto_delete_objects=removal_policy == RemovalPolicy.DESTROY,
        lifecycle_rules=lifecycle_rules,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=access_logs_prefix,
        metrics=metrics,
    )
    return bucket


class AccessLogsBucket(Construct):
    """Target of the other buckets' server access logs."""

    def __init__(
        self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy, expiration_days: int = 365
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = _hardened_bucket(
            self,
            "Bucket",
            removal_policy=removal_policy,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs", expiration=Duration.days(expiration_days))],
        )
        # NOTE: object ownership BUCKET_OWNER_ENFORCED is what S3's logging service principal needs (CDK adds the
        # bucket policy for logging.s3.amazonaws.com when another bucket names this one as its log target).
        nag.acknowledge(
            self.bucket,
            "S1",
            "This is the server-access-log bucket itself: logging it to itself would loop, logging it elsewhere "
            "needs yet another bucket.",
        )


class IngestBucket(Construct):
    """One bucket for every entity's files: ``<entity prefix>`` in, ``results/<entity prefix>`` out."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        access_logs: s3.IBucket,
        prefixes: Sequence[str],
        processed_object_expiration_days: int,
        result_expiration_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        # NOTE: files are processed within minutes of their arrival (S3 -> SQS -> Lambda); what is left after the
        # expiration is kept only for investigation. One rule per prefix, so results keep their own schedule.
        processed = [
            s3.LifecycleRule(
                id=f"ExpireProcessed-{prefix.rstrip('/')}",
                prefix=prefix,
                expiration=Duration.days(processed_object_expiration_days),
            )
            for prefix in prefixes
        ]
        self.bucket = _hardened_bucket(
            self,
            "Bucket",
            access_logs=access_logs,
            access_logs_prefix="ingest/",
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireResults", prefix=RESULTS_PREFIX, expiration=Duration.days(result_expiration_days)
                ),
                *processed,
                s3.LifecycleRule(
                    id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
        )


class FailedBatchesBucket(Construct):
    """On-failure destination of the Kinesis event source mappings.

    NOTE: an S3 destination receives the whole invocation record (the batch's payload); an SQS or SNS one only
    metadata pointing into the stream, useless once the records expire from it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        access_logs: s3.IBucket,
        expiration_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = _hardened_bucket(
            self,
            "Bucket",
            access_logs=access_logs,
            access_logs_prefix="failed-batches/",
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireFailedBatches", expiration=Duration.days(expiration_days))
            ],
            # Request metrics let an alarm fire on the first object Lambda writes here.
            metrics=[s3.BucketMetrics(id=FAILED_BATCHES_METRICS_FILTER)],
        )
