"""The ``personalize`` configuration as a declarative, typed schema (pydantic v2, at synth time only).

Each key is one field: its type and range in the annotation, its default, its camelCase name as the alias. Rules
that tie keys together (the concurrency and rate arithmetic, FIFO limits) are validators on the model that owns
the keys. Every error names the offending key by its full path (``personalize.entities.items.datasetArn``), the
form that was expected and what was received (infrastructure/config_loader.py turns pydantic's errors into such
messages). pydantic never reaches the Lambda bundle: the functions read their environment (personalize_ingest).

Adding a key is one field on the model it belongs to (docs/deploy.md, "Configuration", lists them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from infrastructure.bulk_import_config import BulkImportConfig, parse_bulk_import
from infrastructure.concurrency import ConcurrencyBudget
from infrastructure.config_dataset_schema import (
    FROM_DATASET,
    SCHEMA_ARN_FORM,
    SCHEMA_FORM,
    checked_inline,
    compact,
    schema_region,
)
from infrastructure.config_fields import (
    LOG_RETENTION,
    Schema,
    integer,
    invalid,
    matching,
    number,
    one_of,
    show,
)
from infrastructure.config_function import FunctionSettings
from infrastructure.config_sources import KinesisSource, S3Source, Sources, SqsSource
from personalize_ingest import contract
from personalize_ingest.contract import DATASET_ARN_PATTERN, SCHEMA_ARN_PATTERN, TRACKING_ID_PATTERN
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

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$")
TOPIC_ARN_PATTERN = re.compile(r"^arn:[a-z\d-]+:sns:(?P<region>[a-z\d-]+):\d{12}:[A-Za-z0-9_-]{1,256}$")


# -- functions and entities --


class EntityConfig(Schema):
    """One deployed entity: its target, its sources and its function. Subclasses name the entity."""

    entity: ClassVar[Entity]
    sources: Sources
    function: FunctionSettings = Field(default_factory=lambda: FunctionSettings.model_validate({}))
    quota_per_second: Annotated[float | None, number(0.1, 1_000_000, optional=True)] = Field(
        None, alias="quotaPerSecond"
    )
    dataset_schema: Annotated[dict[str, Any] | str | None, SCHEMA_FORM] = Field(None, alias="schema")
    """The dataset's Avro schema (a JSON object), or ``fromDataset`` (infrastructure/config_dataset_schema.py)."""
    schema_arn: Annotated[str | None, matching(SCHEMA_ARN_PATTERN, SCHEMA_ARN_FORM, optional=True)] = Field(
        None, alias="schemaArn"
    )
    bulk_import_raw: Any = Field(None, alias="bulkImport")
    """The import route's key as written; checked against the target and sources into :attr:`bulk_import`."""
    _bulk_import: BulkImportConfig | None = PrivateAttr(None)

    @property
    def target(self) -> str:
        raise NotImplementedError

    @property
    def bulk_import(self) -> BulkImportConfig | None:
        """The import route (infrastructure/bulk_import_config.py); None when off."""
        return self._bulk_import

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

    @property
    def schema_from_dataset(self) -> bool:
        return self.dataset_schema == FROM_DATASET

    @property
    def schema_variable(self) -> tuple[str, str] | None:
        """The environment variable (contract name, value) that tells the function where its dataset schema is;
        None without a schema."""
        if self.schema_arn is not None:
            return contract.DATASET_SCHEMA_ARN, self.schema_arn
        if self.schema_from_dataset:
            return contract.DATASET_SCHEMA_ARN, contract.SCHEMA_FROM_DATASET
        if isinstance(self.dataset_schema, dict):
            return contract.DATASET_SCHEMA, compact(self.dataset_schema)
        return None

    @model_validator(mode="after")
    def _schema(self) -> EntityConfig:
        if self.dataset_schema is not None and self.schema_arn is not None:
            raise invalid("give schema or schemaArn, not both", "schemaArn")
        if self.schema_from_dataset and self.entity.dataset_type is None:
            raise invalid(
                f'"{FROM_DATASET}" needs a dataset target; {self.entity.name} sends with a tracking id, which '
                "names no dataset: give its dataset's schema ARN in schemaArn, or the schema itself",
                "schema",
            )
        if isinstance(self.dataset_schema, dict):
            error = checked_inline(self.dataset_schema, self.entity)
            if error is not None:
                raise error
        return self

    @model_validator(mode="after")
    def _s3_settings(self) -> EntityConfig:
        given = self.function.s3_keys_set
        if given and self.s3 is None:
            raise invalid("only with an s3 source (it acts on S3 objects)", f"function.{given[0]}")
        return self

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
        self._bulk_import = parse_bulk_import(self.bulk_import_raw, self.entity, self.target, self.s3 is not None)
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
    alarm_email: Annotated[str | None, matching(_EMAIL, "an e-mail address", optional=True)] = Field(
        None, alias="alarmEmail"
    )
    alarm_topic_arn: Annotated[str | None, matching(TOPIC_ARN_PATTERN, "an SNS topic ARN", optional=True)] = Field(
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
    def schema_regions(self) -> dict[str, str]:
        """``{entity: region}`` of every ``schemaArn`` (the function reads it in its own region)."""
        return {e.entity.name: schema_region(e.schema_arn) for e in self.entities if e.schema_arn is not None}

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
