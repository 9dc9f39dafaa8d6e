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
        contract.MAX_CONCURRENT_CALLS: str(settings.max_concurrent_calls),
        contract.MAX_ATTEMPTS: str(settings.max_attempts),
        contract.CALLS_PER_SECOND: f"{settings.calls_per_second:g}",
        contract.DEADLINE_MARGIN_MS: str(settings.deadline_margin_ms),
        contract.METRICS_NAMESPACE: shared.metrics_namespace,
        contract.SERVICE_NAME: shared.service_name,
    }
    if settings.default_event_type is not None:
        variables[contract.DEFAULT_EVENT_TYPE] = settings.default_event_type
    return variables


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
