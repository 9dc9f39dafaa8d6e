"""The ``personalize`` configuration as a declarative, typed schema (pydantic v2, at synth time only).

Each key is one field: its type and range in the annotation, its default, its camelCase name as the alias. Rules
that tie keys together (the concurrency and rate arithmetic, FIFO limits) are validators on the model that owns
the keys. Every error names the offending key by its full path (``personalize.entities.items.datasetArn``), the
form that was expected and what was received (infrastructure/config_source.py turns pydantic's errors into such
messages). pydantic never reaches the Lambda bundle: the functions read their environment (personalize_ingest).

Adding a key is one field on the model it belongs to (docs/deploy.md, "Configuration reference", lists them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from infrastructure.concurrency import ConcurrencyBudget
from personalize_ingest.contract import DATASET_ARN_PATTERN, TRACKING_ID_PATTERN
from personalize_ingest.entities import ACTION_INTERACTIONS, ACTIONS, ENTITIES, EVENTS, ITEMS, USERS, Entity

CONTEXT_KEY = "personalize"

# NOTE: documented quotas (Personalize developer guide): PutEvents 1,000 requests/s per dataset group, PutItems and
# PutUsers 10 requests/s; PutActions and PutActionInteractions are undocumented and treated like PutItems.
DEFAULT_QUOTA_PER_SECOND = {
    "events": 1000.0,
    "action_interactions": 10.0,
    "items": 10.0,
    "users": 10.0,
    "actions": 10.0,
}
ON_DEMAND_START_SHARDS = 4
"""Shards an on-demand stream starts with (4 MB/s of writes): the default bound of its pollers."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$")
TOPIC_ARN_PATTERN = re.compile(r"^arn:[a-z\d-]+:sns:(?P<region>[a-z\d-]+):\d{12}:[A-Za-z0-9_-]{1,256}$")

# CloudWatch Logs accepts only these retention values (days), named as aws_logs.RetentionDays names them.
LOG_RETENTION_NAMES = dict(
    zip(
        (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653),
        ("ONE_DAY", "THREE_DAYS", "FIVE_DAYS", "ONE_WEEK", "TWO_WEEKS", "ONE_MONTH", "TWO_MONTHS", "THREE_MONTHS",
         "FOUR_MONTHS", "FIVE_MONTHS", "SIX_MONTHS", "ONE_YEAR", "THIRTEEN_MONTHS", "EIGHTEEN_MONTHS", "TWO_YEARS",
         "THREE_YEARS", "FIVE_YEARS", "SIX_YEARS", "SEVEN_YEARS", "EIGHT_YEARS", "NINE_YEARS", "TEN_YEARS"),
        strict=True,
    )
)  # fmt: skip


def invalid(message: str, at: str = "") -> PydanticCustomError:
    """A configuration error: ``message`` says what was expected and got; ``at`` is the key path below the
    model or field that raises it (``function.reservedConcurrency``)."""
    return PydanticCustomError("personalize_config", "{message}", {"message": message, "at": at})


def show(value: object) -> str:
    """How an error shows the value it received."""
    text = "nothing" if value is None else json.dumps(value)
    return text if len(text) <= 200 else f"{text[:200]}... ({len(text)} characters)"


# -- field types: the check is part of the annotation --


def _checked(check: Callable[[Any], bool], form: str) -> BeforeValidator:
    def validate(value: Any) -> Any:
        if not check(value):
            raise invalid(f"expected {form}, got {show(value)}")
        return value

    return BeforeValidator(validate)


def integer(low: int, high: int) -> BeforeValidator:
    """An integer from ``low`` to ``high`` (a JSON ``true`` is not 1)."""
    return _checked(
        lambda v: not isinstance(v, bool) and isinstance(v, int) and low <= v <= high,
        f"an integer from {low} to {high}",
    )


def number(low: float, high: float) -> BeforeValidator:
    """A number from ``low`` to ``high``."""
    return _checked(
        lambda v: not isinstance(v, bool) and isinstance(v, int | float) and low <= v <= high,
        f"a number from {low:g} to {high:g}",
    )


def matching(pattern: re.Pattern[str], form: str) -> BeforeValidator:
    """A string matching ``pattern``, described as ``form`` in errors."""
    return _checked(lambda v: isinstance(v, str) and pattern.match(v) is not None, form)


def one_of(*choices: object) -> BeforeValidator:
    """One of ``choices``."""
    return _checked(lambda v: v in choices, f"one of {', '.join(map(str, choices))}")


BOOLEAN = _checked(lambda v: isinstance(v, bool), "true or false")
LOG_RETENTION = _checked(
    lambda v: not isinstance(v, bool) and v in LOG_RETENTION_NAMES,
    f"one of CloudWatch Logs' retention values ({', '.join(map(str, LOG_RETENTION_NAMES))})",
)


def _source_switch(value: Any) -> Any:
    """A source is ``true`` (its defaults), an object (its settings), or ``false``/absent (not used)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return value
    raise invalid(f"expected true, false or a JSON object, got {show(value)}")


SOURCE_SWITCH = BeforeValidator(_source_switch)


class Schema(BaseModel):
    """A JSON object of the configuration: only its declared keys (by their camelCase alias), nothing else."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise invalid(f"expected a JSON object, got {show(data)}")
        allowed = [field.alias or name for name, field in cls.model_fields.items()]
        for key in data:
            if key not in allowed:
                raise invalid(f"unknown key; expected one of {', '.join(allowed)}", at=str(key))
        return data


# -- sources --


class KinesisSource(Schema):
    """A Kinesis data stream feeding the entity's function."""

    stream_mode: Annotated[str, one_of("ON_DEMAND", "PROVISIONED")] = Field("ON_DEMAND", alias="streamMode")
    shard_count: Annotated[int | None, integer(1, 10_000)] = Field(None, alias="shardCount")
    max_shards: Annotated[int | None, integer(1, 10_000)] = Field(None, alias="maxShards")
    """ON_DEMAND only: the most shards the stream is expected to reach (default 4, what it starts with)."""
    retention_hours: Annotated[int, integer(24, 8760)] = Field(24, alias="retentionHours")
    batch_size: Annotated[int, integer(1, 10_000)] = Field(100, alias="batchSize")
    max_batching_window_s: Annotated[int, integer(0, 300)] = Field(1, alias="maxBatchingWindowSeconds")
    starting_position: Annotated[str, one_of("LATEST", "TRIM_HORIZON")] = Field("LATEST", alias="startingPosition")
    parallelization_factor: Annotated[int, integer(1, 10)] = Field(1, alias="parallelizationFactor")
    # NOTE: -1 (retry until the record expires) would block the shard for the whole retention: refused.
    retry_attempts: Annotated[int, integer(0, 10_000)] = Field(5, alias="retryAttempts")
    max_record_age_s: Annotated[int, integer(60, 604_800)] = Field(6 * 3600, alias="maxRecordAgeSeconds")

    @property
    def on_demand(self) -> bool:
        return self.stream_mode == "ON_DEMAND"

    @property
    def shards(self) -> int:
        """Shards the pollers are counted for: the provisioned count, or the on-demand bound."""
        if self.on_demand:
            return self.max_shards or ON_DEMAND_START_SHARDS
        return self.shard_count or 1

    @property
    def max_concurrent_invocations(self) -> int:
        """Lambda runs one poller per shard and parallelization factor: shards x parallelizationFactor."""
        return self.shards * self.parallelization_factor

    @model_validator(mode="after")
    def _consistent(self) -> KinesisSource:
        if self.on_demand and self.shard_count is not None:
            raise invalid("only for streamMode PROVISIONED (on-demand streams scale; bound them with maxShards)",
                          "shardCount")  # fmt: skip
        if not self.on_demand and self.max_shards is not None:
            raise invalid("only for streamMode ON_DEMAND (a provisioned stream has shardCount)", "maxShards")
        if self.max_record_age_s > self.retention_hours * 3600:
            raise invalid(
                f"expected at most the stream retention ({self.retention_hours * 3600} s = retentionHours x "
                f"3600), got {self.max_record_age_s}",
                "maxRecordAgeSeconds",
            )
        return self


class QueueSettings(Schema):
    """The settings of an SQS queue and its event source mapping."""

    batch_size: Annotated[int, integer(1, 10_000)] = Field(10, alias="batchSize")
    max_batching_window_s: Annotated[int, integer(0, 300)] = Field(0, alias="maxBatchingWindowSeconds")
    max_concurrency: Annotated[int, integer(2, 1000)] = Field(2, alias="maxConcurrency")
    max_receive_count: Annotated[int, integer(5, 1000)] = Field(5, alias="maxReceiveCount")

    @property
    def fifo(self) -> bool:
        return False

    @model_validator(mode="after")
    def _batching(self) -> QueueSettings:
        if self.batch_size > 10 and self.max_batching_window_s < 1:
            raise invalid(
                "expected at least 1 when batchSize is above 10 (Lambda's rule for SQS), "
                f"got {self.max_batching_window_s}",
                "maxBatchingWindowSeconds",
            )
        return self


class SqsSource(QueueSettings):
    """The producers' queue: standard, or FIFO (ordered per message group)."""

    fifo_queue: Annotated[bool, BOOLEAN] = Field(False, alias="fifo")
    content_based_deduplication: Annotated[bool, BOOLEAN] = Field(True, alias="contentBasedDeduplication")
    """FIFO only. true: SQS drops a body identical to one sent in the last 5 minutes unless the producer sets
    its own MessageDeduplicationId; false: every producer must set MessageDeduplicationId."""

    @property
    def fifo(self) -> bool:
        return self.fifo_queue

    @model_validator(mode="after")
    def _fifo_limits(self) -> SqsSource:
        if self.fifo_queue and self.batch_size > 10:
            raise invalid(
                f"expected at most 10 for a FIFO queue (Lambda's rule), got {self.batch_size}", "batchSize"
            )
        if self.fifo_queue and self.max_batching_window_s:
            raise invalid(
                f"expected 0 for a FIFO queue (Lambda takes no batching window from FIFO queues), "
                f"got {self.max_batching_window_s}",
                "maxBatchingWindowSeconds",
            )
        if not self.fifo_queue and "content_based_deduplication" in self.model_fields_set:
            raise invalid("only for a FIFO queue (fifo: true)", "contentBasedDeduplication")
        return self


class S3Source(QueueSettings):
    """The standard queue S3 notifies (the producers' queue itself when that one is standard)."""

    # S3 notification messages name one object each, which can take a whole invocation: one per batch by default.
    batch_size: Annotated[int, integer(1, 10_000)] = Field(1, alias="batchSize")


class Sources(Schema):
    kinesis: Annotated[KinesisSource | None, SOURCE_SWITCH] = None
    sqs: Annotated[SqsSource | None, SOURCE_SWITCH] = None
    s3: Annotated[S3Source | None, SOURCE_SWITCH] = None


# -- functions and entities --


class FunctionSettings(Schema):
    """The Lambda function and the runtime knobs it reads from its environment."""

    memory_mb: Annotated[int, integer(128, 10_240)] = Field(512, alias="memorySize")
    timeout_s: Annotated[int, integer(10, 900)] = Field(120, alias="timeoutSeconds")
    reserved_concurrency: Annotated[int | None, integer(1, 1000)] = Field(None, alias="reservedConcurrency")
    """Opt-in: reserving takes concurrency from the account's pool (docs/deploy.md, "Concurrency")."""
    calls_per_second: Annotated[float, number(0.01, 100_000)] = Field(0.0, alias="callsPerSecond")
    """Token bucket per invocation; by default the quota shared among the most invocations that can run at once."""
    max_concurrent_calls: Annotated[int, integer(1, 64)] = Field(8, alias="maxConcurrentCalls")
    max_attempts: Annotated[int, integer(1, 20)] = Field(4, alias="maxAttempts")
    deadline_margin_ms: Annotated[int, integer(0, 60_000)] = Field(5000, alias="deadlineMarginMs")
    default_event_type: Annotated[
        str | None, matching(re.compile(r"^.{1,256}$"), "an event type (1-256 characters)")
    ] = Field(None, alias="defaultEventType")

    @model_validator(mode="after")
    def _margin(self) -> FunctionSettings:
        if self.deadline_margin_ms >= self.timeout_s * 1000:
            raise invalid(
                f"expected less than the function timeout ({self.timeout_s * 1000} ms), "
                f"got {self.deadline_margin_ms}",
                "deadlineMarginMs",
            )
        return self


class EntityConfig(Schema):
    """One deployed entity: its target, its sources and its function. Subclasses name the entity."""

    entity: ClassVar[Entity]
    sources: Sources
    function: FunctionSettings = Field(default_factory=lambda: FunctionSettings.model_validate({}))
    quota_per_second: Annotated[float | None, number(0.1, 1_000_000)] = Field(None, alias="quotaPerSecond")

    @property
    def target(self) -> str:
        raise NotImplementedError

    @property
    def kinesis(self) -> KinesisSource | None:
        return self.sources.kinesis

    @property
    def sqs(self) -> SqsSource | None:
        return self.sources.sqs

    @property
    def s3(self) -> S3Source | None:
        return self.sources.s3

    @property
    def s3_has_own_queue(self) -> bool:
        """S3 cannot notify a FIFO queue: it gets a standard one unless the producers' queue is standard."""
        return self.s3 is not None and (self.sqs is None or self.sqs.fifo)

    @property
    def budget(self) -> ConcurrencyBudget:
        """The most invocations the sources can run at once, and what bounds them."""
        assert self.quota_per_second is not None  # set by _arithmetic
        return ConcurrencyBudget(
            entity=self.entity.name,
            kinesis_shards=self.kinesis.shards if self.kinesis else None,
            kinesis_on_demand=bool(self.kinesis and self.kinesis.on_demand),
            parallelization_factor=self.kinesis.parallelization_factor if self.kinesis else 1,
            sqs_max_concurrency=self.sqs.max_concurrency if self.sqs else None,
            s3_max_concurrency=self.s3.max_concurrency if self.s3 is not None and self.s3_has_own_queue else None,
            reserved_concurrency=self.function.reserved_concurrency,
            quota_per_second=self.quota_per_second,
        )

    @property
    def max_concurrent_invocations(self) -> int:
        return self.budget.max_invocations

    @model_validator(mode="after")
    def _arithmetic(self) -> EntityConfig:
        if self.function.default_event_type is not None and self.entity is not EVENTS:
            raise invalid("only the events entity has event types to default", "function.defaultEventType")
        if self.kinesis is None and self.sqs is None and self.s3 is None:
            raise invalid("expected at least one of kinesis, sqs, s3 (true or a JSON object)", "sources")
        if self.s3 is not None and self.sqs is not None and not self.sqs.fifo and self.s3.model_fields_set:
            # NOTE: with a standard sqs source, S3 notifies that very queue and its mapping's settings apply:
            # settings under s3 would be silently ignored, so they are refused.
            raise invalid(
                "expected true when the sqs source is a standard queue (S3 then notifies that queue and the sqs "
                "settings apply); s3 settings apply only to S3's own queue (no sqs source, or a FIFO one), "
                f"got {show(self.s3.model_dump(by_alias=True, exclude_unset=True))}",
                "sources.s3",
            )
        if self.quota_per_second is None:
            self.quota_per_second = DEFAULT_QUOTA_PER_SECOND[self.entity.name]
        budget = self.budget
        if not budget.fits_reserved:
            raise invalid(budget.reserved_shortfall(), "function.reservedConcurrency")
        if "calls_per_second" not in self.function.model_fields_set:
            self.function.calls_per_second = budget.default_calls_per_second
        elif not budget.within_quota(self.function.calls_per_second):
            raise invalid(budget.over_quota(self.function.calls_per_second), "function.callsPerSecond")
        return self


class TrackerEntity(EntityConfig):
    """An interaction entity, sent with an event tracker's tracking id (no region in it: docs/deploy.md)."""

    tracking_id: Annotated[
        str, matching(TRACKING_ID_PATTERN, "an event tracker's tracking id (letters, digits and -, 1-256)")
    ] = Field(alias="trackingId")

    @property
    def target(self) -> str:
        return self.tracking_id


class DatasetEntity(EntityConfig):
    """An entity sent to a dataset ARN of its type."""

    dataset_arn: str = Field(alias="datasetArn")

    @property
    def target(self) -> str:
        return self.dataset_arn

    @property
    def region(self) -> str:
        """The dataset's region: the functions must deploy there (a CloudFormation rule checks it)."""
        match = DATASET_ARN_PATTERN.match(self.dataset_arn)
        assert match is not None  # checked by _dataset_of_its_type
        return match.group("region")

    @model_validator(mode="before")
    @classmethod
    def _dataset_of_its_type(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "datasetArn" in data:
            value, kind = data["datasetArn"], cls.entity.dataset_type
            form = (
                f"a dataset ARN of type {kind} "
                f"(arn:aws:personalize:<region>:<account>:dataset/<dataset group>/{kind})"
            )
            match = DATASET_ARN_PATTERN.match(value) if isinstance(value, str) else None
            if match is None:
                raise invalid(f"expected {form}, got {show(value)}", "datasetArn")
            if match.group("type") != kind:
                raise invalid(f"expected {form}, got a {match.group('type')} dataset {show(value)}", "datasetArn")
        return data


class EventsConfig(TrackerEntity):
    entity = EVENTS


class ActionInteractionsConfig(TrackerEntity):
    entity = ACTION_INTERACTIONS


class ItemsConfig(DatasetEntity):
    entity = ITEMS


class UsersConfig(DatasetEntity):
    entity = USERS


class ActionsConfig(DatasetEntity):
    entity = ACTIONS


class Entities(Schema):
    """One optional key per entity, in ENTITIES order."""

    events: EventsConfig | None = None
    action_interactions: ActionInteractionsConfig | None = None
    items: ItemsConfig | None = None
    users: UsersConfig | None = None
    actions: ActionsConfig | None = None


# -- the whole configuration --


class IngestConfig(Schema):
    """The whole ``personalize`` configuration."""

    configured: Entities = Field(default_factory=lambda: Entities.model_validate({}), alias="entities")
    log_retention_days: Annotated[int, LOG_RETENTION] = Field(30, alias="logRetentionDays")
    metrics_namespace: Annotated[
        str, matching(_NAMESPACE, "a CloudWatch namespace (letters, digits, . _ / # : -)")
    ] = Field("PersonalizeIngest", alias="metricsNamespace")
    service_name: Annotated[str, matching(_NAME, "a name (letters, digits, -)")] = Field(
        "personalize-ingest", alias="serviceName"
    )
    alarm_email: Annotated[str | None, matching(_EMAIL, "an e-mail address")] = Field(None, alias="alarmEmail")
    alarm_topic_arn: Annotated[str | None, matching(TOPIC_ARN_PATTERN, "an SNS topic ARN")] = Field(
        None, alias="alarmTopicArn"
    )
    """An existing topic for the alarms instead of the stack's own (it must be in the deploy region)."""
    iterator_age_alarm_s: Annotated[int, integer(1, 7 * 24 * 3600)] = Field(300, alias="iteratorAgeAlarmSeconds")
    processed_object_expiration_days: Annotated[int, integer(1, 3650)] = Field(
        30, alias="processedObjectExpirationDays"
    )
    result_expiration_days: Annotated[int, integer(1, 3650)] = Field(30, alias="resultExpirationDays")
    failed_batch_expiration_days: Annotated[int, integer(1, 3650)] = Field(90, alias="failedBatchExpirationDays")
    removal_policy: Annotated[Literal["RETAIN", "DESTROY"], one_of("RETAIN", "DESTROY")] = Field(
        "RETAIN", alias="removalPolicy"
    )
    """RETAIN keeps streams, buckets and log groups on ``cdk destroy``; DESTROY (development) deletes them,
    emptying the buckets first."""

    @property
    def entities(self) -> tuple[EntityConfig, ...]:
        configured = (getattr(self.configured, name) for name in ENTITIES)
        return tuple(entity for entity in configured if entity is not None)

    @property
    def uses_s3(self) -> bool:
        return any(e.s3 is not None for e in self.entities)

    @property
    def uses_kinesis(self) -> bool:
        return any(e.kinesis is not None for e in self.entities)

    @property
    def reserved_concurrency_total(self) -> int:
        """What the stack reserves from the account's regional concurrency (docs/deploy.md, "Concurrency")."""
        return sum(e.function.reserved_concurrency or 0 for e in self.entities)

    @property
    def dataset_regions(self) -> dict[str, str]:
        """``{entity: region}`` of every dataset target."""
        return {e.entity.name: e.region for e in self.entities if isinstance(e, DatasetEntity)}

    @property
    def alarm_topic_region(self) -> str | None:
        match = TOPIC_ARN_PATTERN.match(self.alarm_topic_arn or "")
        return match.group("region") if match else None

    @model_validator(mode="after")
    def _some_entity(self) -> IngestConfig:
        if not self.entities:
            raise invalid(f"expected at least one of {', '.join(ENTITIES)}", "entities")
        if self.alarm_email is not None and self.alarm_topic_arn is not None:
            raise invalid("give alarmEmail or alarmTopicArn, not both (subscribe the e-mail to your topic)",
                          "alarmEmail")  # fmt: skip
        return self
