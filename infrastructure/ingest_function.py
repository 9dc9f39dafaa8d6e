"""One entity's Lambda function: its log group, its execution role and the environment the runtime reads."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.config import EntityConfig
from infrastructure.runtime import ARCHITECTURE, RUNTIME
from personalize_ingest import contract


@dataclass(frozen=True, slots=True)
class SharedResources:
    """What the stack builds once and every pipeline uses."""

    code: lambda_.Code
    rejects_queue: sqs.IQueue
    ingest_bucket: s3.IBucket | None
    failed_batches_bucket: s3.IBucket | None
    log_retention: logs.RetentionDays
    metrics_namespace: str
    service_name: str
    removal_policy: RemovalPolicy
    """What ``cdk destroy`` does to the data: RETAIN (default) or DESTROY (development)."""


def environment(config: EntityConfig, shared: SharedResources) -> dict[str, str]:
    """The function's environment: the runtime's contract (personalize_ingest.contract), filled from the
    configuration."""
    settings = config.function
    variables = {
        config.entity.target_variable: config.target,
        contract.REJECTS_QUEUE_URL: shared.rejects_queue.queue_url,
        contract.MAX_ATTEMPTS: str(settings.max_attempts),
        contract.CALLS_PER_SECOND: f"{settings.calls_per_second:g}",
        contract.DEADLINE_MARGIN_MS: str(settings.deadline_margin_ms),
        contract.METRICS_NAMESPACE: shared.metrics_namespace,
        contract.SERVICE_NAME: shared.service_name,
        contract.PERSONALIZE_CALL_PATH: settings.call_path,
    }
    if settings.max_concurrent_calls is not None:
        # Unset, the runtime sizes the calls in flight to the work (personalize_ingest.concurrency).
        variables[contract.MAX_CONCURRENT_CALLS] = str(settings.max_concurrent_calls)
    if settings.default_event_type is not None:
        variables[contract.DEFAULT_EVENT_TYPE] = settings.default_event_type
    if config.s3 is not None:
        variables |= {
            contract.S3_FANOUT_MIN_BYTES: str(settings.s3_fanout_min_bytes),
            contract.S3_FANOUT_RANGE_BYTES: str(settings.s3_fanout_range_bytes),
            contract.S3_FANOUT_MAX_RANGES: str(settings.s3_fanout_max_ranges),
            contract.S3_MAX_HOPS: str(settings.s3_max_hops),
        }
    if config.schema_variable is not None:
        name, value = config.schema_variable
        variables[name] = value
    return variables


def schemas_in_account_of(dataset_arn: str) -> str:
    """Every schema of the dataset's account and region: where its schema is, when only the service knows which.

    NOTE: a dataset's schema lives in the dataset's account and region (CreateDataset takes a schema ARN of that
    account and region); its name is known only at run time, from DescribeDataset.
    """
    match = contract.DATASET_ARN_PATTERN.match(dataset_arn)
    assert match is not None, "the configuration checks the datasetArn"
    return f"arn:{match['partition']}:personalize:{match['region']}:{match['account']}:schema/*"


class IngestFunction(Construct):
    """The entity's function with a role of its own (logs to its own log group, puts to its own target, sends
    rejects); the source constructs add the grants of what feeds it.

    Attributes
    ----------
    function, role, log_group
        The Lambda function, its execution role and its log group.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EntityConfig, shared: SharedResources
    ) -> None:
        super().__init__(scope, construct_id)
        entity, settings = config.entity, config.function
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=shared.log_retention, removal_policy=shared.removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the {entity.name} ingest function",
        )
        # NOTE: a role of our own instead of AWSLambdaBasicExecutionRole: logs go to this log group only.
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"{entity.name}: Kinesis / SQS / S3 -> Amazon Personalize {entity.operation}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=shared.code,
            handler=f"{entity.name}.handler.lambda_handler",
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_s),
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment=environment(config, shared),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE,
        )
        # PutItems / PutUsers / PutActions name their dataset in the request: scoped to the configured ARN.
        # NOTE: PutEvents and PutActionInteractions carry a tracking id, not an ARN; the IAM documentation's
        # examples grant them on "*" and scoping them to an event-tracker ARN is reported to be denied, so "*" is
        # as narrow as the service allows. The tracking id in the environment selects the tracker.
        resources = [config.target] if entity.dataset_type is not None else ["*"]
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PutToPersonalize", actions=[f"personalize:{entity.operation}"], resources=resources
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="SendRejects", actions=["sqs:SendMessage"], resources=[shared.rejects_queue.queue_arn]
            )
        )
        self._grant_schema(config)

    def _grant_schema(self, config: EntityConfig) -> None:
        """Read access to the dataset schema when the function reads it from the service
        (personalize_ingest.schema); nothing for an inline schema or none."""
        if config.schema_arn is not None:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadDatasetSchema", actions=["personalize:DescribeSchema"], resources=[config.schema_arn]
                )
            )
        elif config.schema_from_dataset:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="FindDatasetSchema", actions=["personalize:DescribeDataset"], resources=[config.target]
                )
            )
            # NOTE: the schema's name is known only once DescribeDataset answers: the schemas of the dataset's
            # account and region are as narrow as IAM allows at synth (cdk-nag acknowledgment in entity_pipeline).
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadDatasetSchema",
                    actions=["personalize:DescribeSchema"],
                    resources=[schemas_in_account_of(config.target)],
                )
            )
