"""The import route's infrastructure: the service role Personalize assumes, the bucket policy for Personalize,
the ingest functions' control-plane permissions and settings, the scheduled import tracker and its alarm.

NOTE: AWS documents two grants for a dataset import job
(https://docs.aws.amazon.com/personalize/latest/dg/granting-personalize-s3-access.html): a role trusted by
``personalize.amazonaws.com`` with read access, and a bucket policy for the ``personalize.amazonaws.com`` principal
(infrastructure/personalize_access.py holds both documents). Both are scoped to exactly the ingest prefixes of
the entities whose route is on. The ingest bucket uses SSE-S3, which needs no key grant; a bucket encrypted with a
customer key gets the role and the Personalize principal admitted to decrypt with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infrastructure import nag
from infrastructure.entity_pipeline import EntityPipeline
from infrastructure.ingest_function import SharedResources
from infrastructure.monitoring import Monitoring
from infrastructure.personalize_access import PERSONALIZE_PRINCIPAL, read_statements, role_policy
from infrastructure.runtime import ARCHITECTURE, RUNTIME
from personalize_ingest import contract
from personalize_ingest.bulk_import import (
    BULK_IMPORTS_FAILED,
    BULK_IMPORTS_REFUSED,
    BULK_IMPORTS_STARTED,
    BULK_IMPORTS_SUCCEEDED,
    BULK_IMPORTS_WAITING,
    MARKERS_DIRECTORY,
)
from personalize_ingest.contract import RESULTS_PREFIX
from personalize_ingest.import_jobs import JOB_NAME_PREFIX

TRACKER_SCHEDULE = Duration.minutes(1)
"""How often the tracker polls the jobs in flight (a job takes many minutes; a minute of latency is nothing)."""
TRACKER_TIMEOUT = Duration.minutes(5)
OUTCOME_METRICS = (
    BULK_IMPORTS_STARTED,
    BULK_IMPORTS_REFUSED,
    BULK_IMPORTS_WAITING,
    BULK_IMPORTS_SUCCEEDED,
    BULK_IMPORTS_FAILED,
)


class BulkImport(Construct):
    """Everything the import route adds for ``pipelines`` (the entities whose ``bulkImport`` is on).

    Attributes
    ----------
    service_role
        The role Personalize assumes to read the ingest prefixes.
    tracker, tracker_role, schedule
        The scheduled import tracker, its execution role and its EventBridge rule.
    alarms
        ``<entity>/FailedImports`` -> the alarm on the entity's failed import jobs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: Sequence[EntityPipeline],
        bucket: s3.IBucket,
        shared: SharedResources,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        self.pipelines = [p for p in pipelines if p.config.bulk_import is not None]
        prefixes = [p.config.entity.s3_prefix for p in self.pipelines]
        self.service_role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal(PERSONALIZE_PRINCIPAL),
            description="Assumed by Amazon Personalize to read import files under the ingest prefixes",
            inline_policies={
                "ReadIngestPrefixes": iam.PolicyDocument.from_json(role_policy(bucket.bucket_arn, prefixes))
            },
        )
        for statement in read_statements(bucket.bucket_arn, prefixes, principal=True):
            bucket.add_to_resource_policy(iam.PolicyStatement.from_json(statement))
        if bucket.encryption_key is not None:
            # NOTE: with SSE-KMS, Personalize reads through the key: the role and the service principal both need
            # kms:Decrypt on it (developer guide, "Granting Amazon Personalize access to Amazon S3 resources").
            bucket.encryption_key.grant_decrypt(self.service_role)
            bucket.encryption_key.grant_decrypt(iam.ServicePrincipal(PERSONALIZE_PRINCIPAL))
        for pipeline in self.pipelines:
            self._enable_route(pipeline)
        self.tracker_role, self.tracker = self._tracker(bucket, shared)
        self.schedule = events.Rule(
            self,
            "TrackerSchedule",
            description="Runs the import tracker: follows dataset import jobs to their end",
            schedule=events.Schedule.rate(TRACKER_SCHEDULE),
            targets=[targets.LambdaFunction(self.tracker, retry_attempts=0)],
        )
        self.alarms = {f"{p.config.entity.name}/FailedImports": self._alarm(p, monitoring) for p in self.pipelines}
        monitoring.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="import route: files by outcome",
                left=[
                    monitoring.entity_metric(p.config.entity.name, name).with_(
                        label=f"{p.config.entity.name} {name}"
                    )
                    for p in self.pipelines
                    for name in OUTCOME_METRICS
                ],
                width=24,
            )
        )
        self._acknowledge(bucket)

    # -- the ingest functions -----------------------------------------------------------------------------------

    def _enable_route(self, pipeline: EntityPipeline) -> None:
        config = pipeline.config.bulk_import
        assert config is not None
        entity = pipeline.config.entity
        settings = {
            contract.BULK_IMPORT_ENABLED: "true",
            contract.BULK_IMPORT_DATASET_ARN: config.dataset_arn,
            contract.BULK_IMPORT_ROLE_ARN: self.service_role.role_arn,
            contract.BULK_IMPORT_MIN_ROWS: str(config.min_rows),
            contract.BULK_IMPORT_SAMPLE_ROWS: str(config.sample_rows),
            contract.BULK_IMPORT_WAIT_SECONDS: str(config.wait_seconds),
        }
        if config.min_bytes is not None:
            settings[contract.BULK_IMPORT_MIN_BYTES] = str(config.min_bytes)
        for name, value in settings.items():
            pipeline.function.add_environment(name, value)
        arn_prefix = config.dataset_arn.split(":dataset/")[0]
        own_jobs = import_job_arns(config.dataset_arn, entity.name)
        pipeline.role.add_to_policy(
            iam.PolicyStatement(
                sid="StartImportJobs",
                actions=["personalize:CreateDatasetImportJob", "personalize:DescribeDataset"],
                resources=[config.dataset_arn, own_jobs],
            )
        )
        # NOTE: the schema's ARN is known only at run time (DescribeDataset names it); schemas hold no data.
        pipeline.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDatasetSchema",
                actions=["personalize:DescribeSchema"],
                resources=[f"{arn_prefix}:schema/*"],
            )
        )
        # NOTE: List* actions of Personalize have no resource-level permissions; the list finds the job a
        # redelivered notification already started.
        pipeline.role.add_to_policy(
            iam.PolicyStatement(
                sid="FindImportJobs", actions=["personalize:ListDatasetImportJobs"], resources=["*"]
            )
        )
        pipeline.role.add_to_policy(
            iam.PolicyStatement(
                sid="PassImportRole",
                actions=["iam:PassRole"],
                resources=[self.service_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": PERSONALIZE_PRINCIPAL}},
            )
        )
        nag.acknowledge(
            pipeline.role,
            "IAM5",
            "Starts only import jobs named for its own entity (ingest-<entity>-<digest of bucket/key/version>).",
            finding=f"Resource::{own_jobs}",
        )
        nag.acknowledge(
            pipeline.role,
            "IAM5",
            "Reads the dataset's schema, whose ARN DescribeDataset names at run time; schemas hold no data.",
            finding=f"Resource::{arn_prefix}:schema/*",
        )

    # -- the tracker --------------------------------------------------------------------------------------------

    def _tracker(self, bucket: s3.IBucket, shared: SharedResources) -> tuple[iam.Role, lambda_.Function]:
        log_group = logs.LogGroup(
            self, "TrackerLogGroup", retention=shared.log_retention, removal_policy=shared.removal_policy
        )
        role = iam.Role(
            self,
            "TrackerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Execution role of the import tracker",
        )
        log_group.grant_write(role)
        markers = [f"{RESULTS_PREFIX}{p.config.entity.s3_prefix}{MARKERS_DIRECTORY}" for p in self.pipelines]
        results = [f"{RESULTS_PREFIX}{p.config.entity.s3_prefix}" for p in self.pipelines]
        ingest = [p.config.entity.s3_prefix for p in self.pipelines]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListMarkers",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in markers]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ConsumeMarkers",
                actions=["s3:GetObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in markers],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteResults",
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in results],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="CountImportedRows",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in ingest],
            )
        )
        job_arns = self._tracked_job_arns()
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeImportJobs", actions=["personalize:DescribeDatasetImportJob"], resources=job_arns
            )
        )
        function = lambda_.Function(
            self,
            "Tracker",
            description="Follows dataset import jobs to ACTIVE or CREATE FAILED and writes their result files",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=shared.code,
            handler="import_tracker.handler.lambda_handler",
            memory_size=512,
            timeout=TRACKER_TIMEOUT,
            # NOTE: one run at a time: two runs would both finish the same job and publish its metric twice.
            reserved_concurrent_executions=1,
            environment={
                contract.TRACKER_BUCKET: bucket.bucket_name,
                contract.TRACKER_ENTITIES: ",".join(p.config.entity.name for p in self.pipelines),
                contract.METRICS_NAMESPACE: shared.metrics_namespace,
                contract.SERVICE_NAME: shared.service_name,
            },
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE,
        )
        return role, function

    def _alarm(self, pipeline: EntityPipeline, monitoring: Monitoring) -> cloudwatch.Alarm:
        entity = pipeline.config.entity.name
        alarm = monitoring.entity_metric(entity, BULK_IMPORTS_FAILED).create_alarm(
            self,
            f"{pipeline.node.id}FailedImportsAlarm",
            alarm_description=f"A dataset import job of {entity} ended CREATE FAILED: read its result file.",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(monitoring.topic))
        return alarm

    def _acknowledge(self, bucket: s3.IBucket) -> None:
        bucket_arn = nag.arn_reference(bucket)
        for pipeline in self.pipelines:
            prefix = pipeline.config.entity.s3_prefix
            nag.acknowledge(
                self.service_role,
                "IAM5",
                f"Personalize reads the import files producers drop under {prefix}: exactly that prefix.",
                finding=f"Resource::{bucket_arn}/{prefix}*",
            )
            results = f"{RESULTS_PREFIX}{prefix}"
            findings = {
                f"{prefix}*": f"Counts the rows of imported files under {prefix}, whose names producers choose.",
                f"{results}*": f"Writes the result files of {prefix} files, under {results}.",
                f"{results}{MARKERS_DIRECTORY}*": (
                    f"Reads and deletes the tracking markers the {pipeline.config.entity.name} function leaves, "
                    "one per started import job."
                ),
            }
            for resource, reason in findings.items():
                nag.acknowledge(self.tracker_role, "IAM5", reason, finding=f"Resource::{bucket_arn}/{resource}")
        nag.acknowledge(
            self.tracker_role,
            "IAM5",
            "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions.",
            finding="Resource::*",
        )
        for job_arns in self._tracked_job_arns():
            nag.acknowledge(
                self.tracker_role,
                "IAM5",
                f"Describes only the import jobs the ingest functions start, named {JOB_NAME_PREFIX}<entity>-...",
                finding=f"Resource::{job_arns}",
            )

    def _tracked_job_arns(self) -> list[str]:
        """The import jobs the tracker describes: every job the ingest functions may start."""
        return sorted(
            {import_job_arns(p.config.bulk_import.dataset_arn) for p in self.pipelines if p.config.bulk_import}
        )


def import_job_arns(dataset_arn: str, entity_name: str | None = None) -> str:
    """The ARN pattern of the import jobs started for ``dataset_arn`` (of one entity's function, when named)."""
    arn_prefix = dataset_arn.split(":dataset/")[0]
    entity_part = f"{entity_name.replace('_', '-')}-" if entity_name else ""
    return f"{arn_prefix}:dataset-import-job/{JOB_NAME_PREFIX}{entity_part}*"
