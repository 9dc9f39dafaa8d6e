"""The parts of a synthesized stack the local run needs, read from the template (never described twice).

Streams, queues (with their redrive policy), the ingest bucket's notifications, the functions (handler, timeout,
environment) and every event-source-mapping setting come from :class:`~local.template.Resolver`. Nothing here
talks to a server: :mod:`local.resources` creates what is described, :mod:`local.runner` drives the mappings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.template import LocalAccount, Resolver, TemplateError

# NOTE: defaults CloudFormation documents for properties a template may omit.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-eventsourcemapping.html
DEFAULT_FUNCTION_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128
DEFAULT_VISIBILITY_TIMEOUT_S = 30
DEFAULT_KINESIS_BATCH_SIZE = 100
DEFAULT_SQS_BATCH_SIZE = 10


@dataclass(frozen=True, slots=True)
class StreamSpec:
    logical_id: str
    name: str
    arn: str
    shard_count: int
    """Provisioned shard count; on-demand streams are created with one shard locally."""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    logical_id: str
    name: str
    url: str
    arn: str
    fifo: bool
    content_based_deduplication: bool
    visibility_timeout_s: int
    dead_letter_arn: str | None
    max_receive_count: int | None


@dataclass(frozen=True, slots=True)
class QueueNotification:
    """One ``QueueConfigurations`` entry of a bucket's notification configuration."""

    queue_arn: str
    events: tuple[str, ...]
    prefix: str
    suffix: str


@dataclass(frozen=True, slots=True)
class BucketSpec:
    logical_id: str
    name: str
    versioned: bool
    notifications: tuple[QueueNotification, ...] = ()


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    """``<module>.<function>``, relative to the code asset root (``functions/``)."""
    timeout_s: int
    memory_mb: int
    environment: Mapping[str, str]

    @property
    def entity(self) -> str:
        """The entity a handler string ``<entity>.handler.lambda_handler`` serves."""
        return self.handler.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """One ``AWS::Lambda::EventSourceMapping`` with CloudFormation's defaults filled in."""

    logical_id: str
    function: str
    """Logical id of the function."""
    source_arn: str
    kind: str
    """``kinesis`` or ``sqs``."""
    batch_size: int
    batching_window_s: float
    starting_position: str | None
    bisect_on_error: bool
    max_retry_attempts: int
    """-1 = until the record expires (CloudFormation's default for streams)."""
    max_record_age_s: int
    """-1 = no limit."""
    on_failure_arn: str | None
    report_batch_item_failures: bool
    parallelization_factor: int
    max_concurrency: int | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """An EventBridge rule that invokes a function on a fixed rate (the import tracker)."""

    logical_id: str
    function: str
    """Logical id of the function it invokes."""
    period_s: float


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role Personalize assumes (the import route's service role), created in moto's IAM."""

    logical_id: str
    name: str
    trust_policy: Mapping[str, Any]
    policies: Mapping[str, Mapping[str, Any]]
    """Inline policy name -> document."""


@dataclass(frozen=True, slots=True)
class LocalStack:
    """Everything the local run creates and drives, by logical id."""

    account: LocalAccount
    streams: dict[str, StreamSpec] = field(default_factory=dict)
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    buckets: dict[str, BucketSpec] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    mappings: dict[str, MappingSpec] = field(default_factory=dict)
    schedules: dict[str, ScheduleSpec] = field(default_factory=dict)
    service_roles: dict[str, RoleSpec] = field(default_factory=dict)
    bucket_policies: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Bucket name -> policy document: the bucket policy's statements for the Personalize principal."""

    def queue_by_arn(self, arn: str) -> QueueSpec | None:
        return next((q for q in self.queues.values() if q.arn == arn), None)

    def queue_by_url(self, url: str) -> QueueSpec | None:
        return next((q for q in self.queues.values() if q.url == url), None)

    def stream_by_arn(self, arn: str) -> StreamSpec | None:
        return next((s for s in self.streams.values() if s.arn == arn), None)

    def bucket_by_arn(self, arn: str) -> BucketSpec | None:
        return next(
            (b for b in self.buckets.values() if f"arn:{self.account.partition}:s3:::{b.name}" == arn), None
        )

    def sqs_sources(self) -> set[str]:
        """ARNs of the queues an enabled mapping reads."""
        return {m.source_arn for m in self.mappings.values() if m.kind == "sqs" and m.enabled}

    def mappings_of(self, function_logical_id: str) -> list[MappingSpec]:
        return [m for m in self.mappings.values() if m.function == function_logical_id]


def read_stack(template: Mapping[str, Any], account: LocalAccount) -> LocalStack:
    """Describe the local stack from a synthesized template.

    Raises
    ------
    TemplateError
        when something the local run needs cannot be resolved (the message names the resource).
    """
    resolver = Resolver(template, account)
    stack = LocalStack(account=account)
    for logical_id in resolver.resources_of_type("AWS::Kinesis::Stream"):
        stack.streams[logical_id] = _stream(resolver, logical_id)
    for logical_id in resolver.resources_of_type("AWS::SQS::Queue"):
        stack.queues[logical_id] = _queue(resolver, logical_id)
    for logical_id in resolver.resources_of_type("AWS::S3::Bucket"):
        props = resolver.properties(logical_id)
        stack.buckets[logical_id] = BucketSpec(
            logical_id=logical_id,
            name=resolver.physical(logical_id).ref,
            versioned=props.get("VersioningConfiguration", {}).get("Status") == "Enabled",
            notifications=_queue_notifications(props.get("NotificationConfiguration", {})),
        )
    # NOTE: CDK writes bucket notifications as a custom resource (run by a Lambda function at deploy time), not
    # as the bucket's own property; locally its configuration is applied directly.
    for kind in ("Custom::S3BucketNotifications", "AWS::CloudFormation::CustomResource"):
        for logical_id in resolver.resources_of_type(kind):
            props = resolver.properties(logical_id)
            if "NotificationConfiguration" not in props or "BucketName" not in props:
                continue
            bucket = next((b for b in stack.buckets.values() if b.name == props["BucketName"]), None)
            if bucket is None:
                raise TemplateError(
                    f"{logical_id} configures notifications of bucket {props['BucketName']!r}, "
                    "which is not in the template"
                )
            added = _queue_notifications(props["NotificationConfiguration"])
            stack.buckets[bucket.logical_id] = BucketSpec(
                bucket.logical_id, bucket.name, bucket.versioned, bucket.notifications + added
            )
    for logical_id in resolver.resources_of_type("AWS::Lambda::Function"):
        stack.functions[logical_id] = _function(resolver, logical_id)
    for logical_id in resolver.resources_of_type("AWS::Lambda::EventSourceMapping"):
        stack.mappings[logical_id] = _mapping(resolver, logical_id, stack)
    _read_bulk_import(resolver, stack)
    return stack


PERSONALIZE_PRINCIPAL = "personalize.amazonaws.com"
_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def _read_bulk_import(resolver: Resolver, stack: LocalStack) -> None:
    """Schedules, roles assumed by other services, and bucket policies: what the import route needs locally."""
    by_arn = {f.arn: f.logical_id for f in stack.functions.values()}
    for logical_id in resolver.resources_of_type("AWS::Events::Rule"):
        props = resolver.properties(logical_id)
        match = _RATE.match(str(props.get("ScheduleExpression", "")))
        if match is None or props.get("State", "ENABLED") != "ENABLED":
            continue
        for target in props.get("Targets", []):
            function = by_arn.get(str(target.get("Arn")))
            if function is not None:
                period = int(match.group("value")) * _UNIT_S[match.group("unit")]
                stack.schedules[logical_id] = ScheduleSpec(logical_id, function, float(period))
    for logical_id in resolver.resources_of_type("AWS::IAM::Role"):
        props = resolver.properties(logical_id)
        trust = props.get("AssumeRolePolicyDocument", {})
        if PERSONALIZE_PRINCIPAL not in json.dumps(trust):
            continue
        policies = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies", [])}
        stack.service_roles[logical_id] = RoleSpec(logical_id, resolver.physical(logical_id).ref, trust, policies)
    for logical_id in resolver.resources_of_type("AWS::S3::BucketPolicy"):
        props = resolver.properties(logical_id)
        # NOTE: only the statements for Personalize: moto enforces bucket policies, and the TLS-only Deny of a
        # hardened bucket would refuse every request to moto's plain-HTTP endpoint.
        statements = [
            statement
            for statement in props["PolicyDocument"].get("Statement", [])
            if statement.get("Principal") == {"Service": PERSONALIZE_PRINCIPAL}
        ]
        if statements:
            stack.bucket_policies[str(props["Bucket"])] = {"Version": "2012-10-17", "Statement": statements}


def _stream(resolver: Resolver, logical_id: str) -> StreamSpec:
    props = resolver.properties(logical_id)
    physical = resolver.physical(logical_id)
    on_demand = props.get("StreamModeDetails", {}).get("StreamMode") == "ON_DEMAND"
    shards = 1 if on_demand else int(props.get("ShardCount", 1))
    return StreamSpec(logical_id, physical.ref, physical.attributes["Arn"], shards)


def _queue(resolver: Resolver, logical_id: str) -> QueueSpec:
    props = resolver.properties(logical_id)
    physical = resolver.physical(logical_id)
    redrive = props.get("RedrivePolicy") or {}
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    if ("deadLetterTargetArn" in redrive) != ("maxReceiveCount" in redrive):
        # NOTE: SQS requires both keys of a redrive policy; the local run must not invent a maxReceiveCount.
        raise TemplateError(f"{logical_id}: RedrivePolicy needs both deadLetterTargetArn and maxReceiveCount")
    return QueueSpec(
        logical_id=logical_id,
        name=physical.attributes["QueueName"],
        url=physical.ref,
        arn=physical.attributes["Arn"],
        fifo=_flag(props.get("FifoQueue")),
        content_based_deduplication=_flag(props.get("ContentBasedDeduplication")),
        visibility_timeout_s=int(props.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT_S)),
        dead_letter_arn=redrive.get("deadLetterTargetArn"),
        max_receive_count=int(redrive["maxReceiveCount"]) if "maxReceiveCount" in redrive else None,
    )


def _queue_notifications(configuration: Mapping[str, Any]) -> tuple[QueueNotification, ...]:
    notifications = []
    for entry in configuration.get("QueueConfigurations", []):
        rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        by_name = {rule["Name"].lower(): rule["Value"] for rule in rules}
        events = entry.get("Events") or [entry["Event"]]
        notifications.append(
            QueueNotification(
                entry["QueueArn"], tuple(events), by_name.get("prefix", ""), by_name.get("suffix", "")
            )
        )
    return tuple(notifications)


def _function(resolver: Resolver, logical_id: str) -> FunctionSpec:
    props = resolver.properties(logical_id)
    physical = resolver.physical(logical_id)
    variables = props.get("Environment", {}).get("Variables", {})
    return FunctionSpec(
        logical_id=logical_id,
        name=physical.ref,
        arn=physical.attributes["Arn"],
        handler=props.get("Handler", ""),
        timeout_s=int(props.get("Timeout", DEFAULT_FUNCTION_TIMEOUT_S)),
        memory_mb=int(props.get("MemorySize", DEFAULT_MEMORY_MB)),
        environment={name: str(value) for name, value in variables.items()},
    )


def _mapping(resolver: Resolver, logical_id: str, stack: LocalStack) -> MappingSpec:
    props = resolver.properties(logical_id)
    function_ref = props["FunctionName"]
    function = next(
        (
            f
            for f in stack.functions.values()
            if function_ref in (f.name, f.arn) or function_ref.endswith(f":{f.name}")
        ),
        None,
    )
    if function is None:
        raise TemplateError(f"{logical_id}: FunctionName {function_ref!r} is not a function of the template")
    source_arn = props.get("EventSourceArn", "")
    kind = source_arn.split(":")[2] if source_arn.count(":") >= 5 else ""
    if kind not in ("kinesis", "sqs"):
        raise TemplateError(f"{logical_id}: event source {source_arn!r} is not a Kinesis stream or an SQS queue")
    streams = kind == "kinesis"
    scaling = props.get("ScalingConfig") or {}
    return MappingSpec(
        logical_id=logical_id,
        function=function.logical_id,
        source_arn=source_arn,
        kind=kind,
        batch_size=int(props.get("BatchSize", DEFAULT_KINESIS_BATCH_SIZE if streams else DEFAULT_SQS_BATCH_SIZE)),
        batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        starting_position=props.get("StartingPosition"),
        bisect_on_error=_flag(props.get("BisectBatchOnFunctionError")),
        max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        max_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
        on_failure_arn=(props.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination"),
        report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        parallelization_factor=int(props.get("ParallelizationFactor", 1)),
        max_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
        enabled=_flag(props.get("Enabled", True)),
    )


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
