"""The ``personalize`` context of cdk.json, parsed once into a typed, validated object.

Every error names the offending key by its full path (``personalize.entities.items.datasetArn``) and the form
that was expected, so a wrong ``-c personalize=...`` fails at synth, before anything reaches CloudFormation.
The reference table of every key is the README's "Configuration" section.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from infrastructure.bulk_import_config import KEY as BULK_IMPORT_KEY
from infrastructure.bulk_import_config import BulkImportConfig, parse_bulk_import
from personalize_ingest.entities import ENTITIES, Entity

CONTEXT_KEY = "personalize"

_DATASET_ARN = re.compile(r"^arn:[a-z\d-]+:personalize:[a-z\d-]+:\d{12}:dataset/[^/]+/(?P<type>[A-Z_]+)$")
_TRACKING_ID = re.compile(r"^[A-Za-z\d][A-Za-z\d-]{0,255}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")

# NOTE: documented quotas (Personalize developer guide): PutEvents 1,000 requests/s per dataset group, PutItems and
# PutUsers 10 requests/s; PutActions and PutActionInteractions are undocumented and treated like PutItems.
DEFAULT_QUOTA_PER_SECOND = {
    "events": 1000.0,
    "action_interactions": 10.0,
    "items": 10.0,
    "users": 10.0,
    "actions": 10.0,
}
# Defaults that keep calls-per-second x reserved concurrency within the quota above (README: quotas arithmetic).
DEFAULT_CALLS_PER_SECOND = {
    "events": 100.0,
    "action_interactions": 5.0,
    "items": 5.0,
    "users": 5.0,
    "actions": 5.0,
}
DEFAULT_RESERVED_CONCURRENCY = {"events": 10, "action_interactions": 2, "items": 2, "users": 2, "actions": 2}


class ConfigError(ValueError):
    """The ``personalize`` context is invalid; the message names the key and the expected form."""


@dataclass(frozen=True, slots=True)
class KinesisSource:
    """A Kinesis data stream feeding the entity's function."""

    on_demand: bool
    shard_count: int | None
    retention_hours: int
    batch_size: int
    max_batching_window_s: int
    starting_position: str
    parallelization_factor: int
    retry_attempts: int
    max_record_age_s: int

    @property
    def max_concurrent_invocations(self) -> float:
        """Shards x parallelization factor; unbounded for on-demand streams (they add shards by themselves)."""
        if self.on_demand or self.shard_count is None:
            return math.inf
        return float(self.shard_count * self.parallelization_factor)


@dataclass(frozen=True, slots=True)
class QueueSource:
    """An SQS queue feeding the function: the producers' queue, or the one S3 notifies."""

    fifo: bool
    batch_size: int
    max_batching_window_s: int
    max_concurrency: int
    max_receive_count: int


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    """The Lambda function and the runtime knobs it reads from its environment."""

    memory_mb: int
    timeout_s: int
    reserved_concurrency: int | None
    calls_per_second: float
    max_concurrent_calls: int
    max_attempts: int
    deadline_margin_ms: int
    default_event_type: str | None


@dataclass(frozen=True, slots=True)
class EntityConfig:
    """One deployed entity: its target, its sources and its function."""

    entity: Entity
    target: str
    quota_per_second: float
    function: FunctionSettings
    kinesis: KinesisSource | None
    sqs: QueueSource | None
    s3: QueueSource | None
    bulk_import: BulkImportConfig | None = None
    """The import route (infrastructure/bulk_import_config.py); None when off."""

    @property
    def max_concurrent_invocations(self) -> float:
        """Upper bound of concurrent invocations: reserved concurrency, else what the sources allow.

        NOTE: SQS's maximum concurrency bounds only SQS-driven invocations; Kinesis shards x parallelization
        factor come on top, so without reserved concurrency an on-demand stream leaves the bound open.
        """
        from_sources = 0.0
        if self.kinesis is not None:
            from_sources += self.kinesis.max_concurrent_invocations
        if self.sqs is not None:
            from_sources += self.sqs.max_concurrency
        if self.s3 is not None and (self.sqs is None or self.sqs.fifo):
            from_sources += self.s3.max_concurrency
        if self.function.reserved_concurrency is not None:
            return min(float(self.function.reserved_concurrency), from_sources)
        return from_sources


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """The whole ``personalize`` context."""

    entities: tuple[EntityConfig, ...]
    powertools_layer_version: int | None
    """Explicit layer version; None = the SSM public parameter of the release pinned in requirements.txt."""
    log_retention_days: int
    metrics_namespace: str
    service_name: str
    alarm_email: str | None
    iterator_age_alarm_s: int
    processed_object_expiration_days: int
    result_expiration_days: int
    failed_batch_expiration_days: int

    @property
    def uses_s3(self) -> bool:
        return any(e.s3 is not None for e in self.entities)

    @property
    def uses_kinesis(self) -> bool:
        return any(e.kinesis is not None for e in self.entities)


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


class _Node:
    """A JSON object of the context with its dotted path, so every error can name its key."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a JSON object, got {_show(value)}")
        self._value: Mapping[str, Any] = value
        self.path = path

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self._value:
            if key not in allowed:
                raise ConfigError(f"{self.path}.{key}: unknown key; expected one of {', '.join(allowed)}")

    def has(self, key: str) -> bool:
        return self._value.get(key) is not None

    def get(self, key: str) -> object:
        return self._value.get(key)

    def child(self, key: str) -> _Node:
        return _Node(self._value.get(key, {}), f"{self.path}.{key}")

    def integer(self, key: str, default: int | None, low: int, high: int) -> int:
        value = self._value.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{self.path}.{key}: expected an integer from {low} to {high}, got {_show(value)}")
        return value

    def optional_integer(self, key: str, default: int | None, low: int, high: int) -> int | None:
        if self._value.get(key, default) is None:
            return None
        return self.integer(key, default, low, high)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._value.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(f"{self.path}.{key}: expected a number from {low:g} to {high:g}, got {_show(value)}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._value.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path}.{key}: expected true or false, got {_show(value)}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._value.get(key, default)
        if value not in choices:
            raise ConfigError(f"{self.path}.{key}: expected one of {', '.join(choices)}, got {_show(value)}")
        return str(value)

    def string(self, key: str, default: str | None, pattern: re.Pattern[str], form: str) -> str | None:
        value = self._value.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.match(value):
            raise ConfigError(f"{self.path}.{key}: expected {form}, got {_show(value)}")
        return value


def _show(value: object) -> str:
    return "nothing" if value is None else json.dumps(value)


def parse(context: object) -> IngestConfig:
    """Parse and validate the ``personalize`` context value.

    Parameters
    ----------
    context
        The value of ``node.try_get_context("personalize")``: a JSON object, or a JSON string of one
        (``cdk synth -c personalize='{...}'`` passes strings).

    Raises
    ------
    ConfigError
        naming the offending key and the expected form.
    """
    if isinstance(context, str):
        try:
            context = json.loads(context)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{CONTEXT_KEY}: expected a JSON object, got invalid JSON ({exc.msg})") from None
    if context is None:
        raise ConfigError(
            f"{CONTEXT_KEY}: missing; expected a JSON object in cdk.json context or -c {CONTEXT_KEY}="
        )
    root = _Node(context, CONTEXT_KEY)
    root.check_keys(
        (
            "entities",
            "powertoolsLayerVersion",
            "logRetentionDays",
            "metricsNamespace",
            "serviceName",
            "alarmEmail",
            "iteratorAgeAlarmSeconds",
            "processedObjectExpirationDays",
            "resultExpirationDays",
            "failedBatchExpirationDays",
        )
    )
    retention = root.integer("logRetentionDays", 30, 1, 3653)
    if retention not in LOG_RETENTION_NAMES:
        raise ConfigError(
            f"{CONTEXT_KEY}.logRetentionDays: expected one of CloudWatch Logs' retention values "
            f"({', '.join(map(str, LOG_RETENTION_NAMES))}), got {retention}"
        )
    entities_node = root.child("entities")
    entities_node.check_keys(tuple(ENTITIES))
    entities = tuple(
        _entity(entities_node.child(name), ENTITIES[name]) for name in ENTITIES if entities_node.has(name)
    )
    if not entities:
        raise ConfigError(f"{CONTEXT_KEY}.entities: expected at least one of {', '.join(ENTITIES)}")
    return IngestConfig(
        entities=entities,
        powertools_layer_version=root.optional_integer("powertoolsLayerVersion", None, 1, 10_000),
        log_retention_days=retention,
        metrics_namespace=_required(
            root.string(
                "metricsNamespace",
                "PersonalizeIngest",
                re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$"),
                "a CloudWatch namespace (letters, digits, . _ / # : -)",
            )
        ),
        service_name=_required(
            root.string("serviceName", "personalize-ingest", _NAME, "a name (letters, digits, -)")
        ),
        alarm_email=root.string("alarmEmail", None, _EMAIL, "an e-mail address"),
        iterator_age_alarm_s=root.integer("iteratorAgeAlarmSeconds", 300, 1, 7 * 24 * 3600),
        processed_object_expiration_days=root.integer("processedObjectExpirationDays", 30, 1, 3650),
        result_expiration_days=root.integer("resultExpirationDays", 30, 1, 3650),
        failed_batch_expiration_days=root.integer("failedBatchExpirationDays", 90, 1, 3650),
    )


def _required(value: str | None) -> str:
    assert value is not None  # the defaults are not None
    return value


def _entity(node: _Node, entity: Entity) -> EntityConfig:
    target_key = entity.target_member  # trackingId or datasetArn
    node.check_keys((target_key, "sources", "function", "quotaPerSecond", BULK_IMPORT_KEY))
    if entity.dataset_type is not None:
        target = node.string(
            target_key,
            None,
            _DATASET_ARN,
            f"a dataset ARN of type {entity.dataset_type} "
            f"(arn:aws:personalize:<region>:<account>:dataset/<dataset group>/{entity.dataset_type})",
        )
        match = _DATASET_ARN.match(target or "")
        if target is not None and match is not None and match.group("type") != entity.dataset_type:
            raise ConfigError(
                f"{node.path}.{target_key}: expected a dataset ARN of type {entity.dataset_type} "
                f"(arn:aws:personalize:<region>:<account>:dataset/<dataset group>/{entity.dataset_type}), "
                f"got a {match.group('type')} dataset {json.dumps(target)}"
            )
    else:
        target = node.string(
            target_key, None, _TRACKING_ID, "an event tracker's tracking id (letters, digits and -, 1-256)"
        )
    if target is None:
        raise ConfigError(f"{node.path}.{target_key}: missing; the {entity.name} function needs it")

    function = _function(node.child("function"), entity)
    sources = node.child("sources")
    sources.check_keys(("kinesis", "sqs", "s3"))
    kinesis = _kinesis(sources) if _enabled(sources, "kinesis") else None
    sqs = _queue(sources, "sqs", function, allow_fifo=True) if _enabled(sources, "sqs") else None
    s3 = _queue(sources, "s3", function, allow_fifo=False) if _enabled(sources, "s3") else None
    if s3 is not None and sqs is not None and not sqs.fifo and isinstance(sources.get("s3"), Mapping):
        # NOTE: with a standard sqs source, S3 notifies that very queue and its mapping's settings apply: settings
        # under s3 would be silently ignored, so they are refused.
        raise ConfigError(
            f"{sources.path}.s3: expected true when the sqs source is a standard queue (S3 then notifies that "
            f"queue and the sqs settings apply); s3 settings apply only to S3's own queue (no sqs source, or a "
            f"FIFO one), got {_show(sources.get('s3'))}"
        )
    if kinesis is None and sqs is None and s3 is None:
        raise ConfigError(f"{sources.path}: expected at least one of kinesis, sqs, s3 (true or an object)")
    own_s3_queue = s3 is not None and (sqs is None or sqs.fifo)
    reserved = function.reserved_concurrency
    if reserved is not None and sqs is not None and s3 is not None and own_s3_queue:
        total = sqs.max_concurrency + s3.max_concurrency
        if total > reserved:
            # NOTE: each SQS mapping's maximum concurrency is its own; together they must fit the reserved
            # concurrency, or Lambda throttles the pollers and throttled messages count receives towards the DLQ.
            raise ConfigError(
                f"{node.path}.function.reservedConcurrency: expected at least the sum of the SQS mappings' "
                f"maxConcurrency (sqs {sqs.max_concurrency} + s3 {s3.max_concurrency} = {total}: S3 has its own "
                f"queue), got {reserved}"
            )
    config = EntityConfig(
        entity=entity,
        target=target,
        quota_per_second=node.number("quotaPerSecond", DEFAULT_QUOTA_PER_SECOND[entity.name], 0.1, 1_000_000),
        function=function,
        kinesis=kinesis,
        sqs=sqs,
        s3=s3,
    )
    try:
        bulk = parse_bulk_import(
            node.get(BULK_IMPORT_KEY), f"{node.path}.{BULK_IMPORT_KEY}", entity, target, s3 is not None
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    config = replace(config, bulk_import=bulk)
    _check_quota(node, config)
    return config


def _enabled(sources: _Node, key: str) -> bool:
    """A source is ``true`` (defaults), an object (settings), or ``false``/absent (not used)."""
    value = sources.get(key)
    if value is None or value is False:
        return False
    if value is True or isinstance(value, Mapping):
        return True
    raise ConfigError(f"{sources.path}.{key}: expected true, false or a JSON object, got {_show(value)}")


def _source_node(sources: _Node, key: str) -> _Node:
    value = sources.get(key)
    return _Node({} if value is True else value, f"{sources.path}.{key}")


def _function(node: _Node, entity: Entity) -> FunctionSettings:
    node.check_keys(
        (
            "memorySize",
            "timeoutSeconds",
            "reservedConcurrency",
            "callsPerSecond",
            "maxConcurrentCalls",
            "maxAttempts",
            "deadlineMarginMs",
            "defaultEventType",
        )
    )
    if node.has("defaultEventType") and entity.name != "events":
        raise ConfigError(f"{node.path}.defaultEventType: only the events entity has event types to default")
    timeout_s = node.integer("timeoutSeconds", 120, 10, 900)
    margin_ms = node.integer("deadlineMarginMs", 5000, 0, 60_000)
    if margin_ms >= timeout_s * 1000:
        raise ConfigError(
            f"{node.path}.deadlineMarginMs: expected less than the function timeout ({timeout_s * 1000} ms), "
            f"got {margin_ms}"
        )
    return FunctionSettings(
        memory_mb=node.integer("memorySize", 512, 128, 10_240),
        timeout_s=timeout_s,
        reserved_concurrency=node.optional_integer(
            "reservedConcurrency", DEFAULT_RESERVED_CONCURRENCY[entity.name], 1, 1000
        ),
        calls_per_second=node.number("callsPerSecond", DEFAULT_CALLS_PER_SECOND[entity.name], 0, 100_000),
        max_concurrent_calls=node.integer("maxConcurrentCalls", 8, 1, 64),
        max_attempts=node.integer("maxAttempts", 4, 1, 20),
        deadline_margin_ms=margin_ms,
        default_event_type=node.string(
            "defaultEventType", None, re.compile(r"^.{1,256}$"), "an event type (1-256 characters)"
        ),
    )


def _kinesis(sources: _Node) -> KinesisSource:
    node = _source_node(sources, "kinesis")
    node.check_keys(
        (
            "streamMode",
            "shardCount",
            "retentionHours",
            "batchSize",
            "maxBatchingWindowSeconds",
            "startingPosition",
            "parallelizationFactor",
            "retryAttempts",
            "maxRecordAgeSeconds",
        )
    )
    on_demand = node.choice("streamMode", "ON_DEMAND", ("ON_DEMAND", "PROVISIONED")) == "ON_DEMAND"
    if on_demand and node.has("shardCount"):
        raise ConfigError(f"{node.path}.shardCount: only for streamMode PROVISIONED (on-demand streams scale)")
    shard_count = None if on_demand else node.integer("shardCount", 1, 1, 10_000)
    retention_hours = node.integer("retentionHours", 24, 24, 8760)
    max_age = node.integer("maxRecordAgeSeconds", 6 * 3600, 60, 604_800)
    if max_age > retention_hours * 3600:
        raise ConfigError(
            f"{node.path}.maxRecordAgeSeconds: expected at most the stream retention "
            f"({retention_hours * 3600} s = retentionHours x 3600), got {max_age}"
        )
    return KinesisSource(
        on_demand=on_demand,
        shard_count=shard_count,
        retention_hours=retention_hours,
        batch_size=node.integer("batchSize", 100, 1, 10_000),
        max_batching_window_s=node.integer("maxBatchingWindowSeconds", 1, 0, 300),
        starting_position=node.choice("startingPosition", "LATEST", ("LATEST", "TRIM_HORIZON")),
        parallelization_factor=node.integer("parallelizationFactor", 1, 1, 10),
        # NOTE: -1 (retry until the record expires) would block the shard for the whole retention: refused.
        retry_attempts=node.integer("retryAttempts", 5, 0, 10_000),
        max_record_age_s=max_age,
    )


def _queue(sources: _Node, key: str, function: FunctionSettings, *, allow_fifo: bool) -> QueueSource:
    node = _source_node(sources, key)
    allowed = ("batchSize", "maxBatchingWindowSeconds", "maxConcurrency", "maxReceiveCount")
    node.check_keys((*allowed, "fifo") if allow_fifo else allowed)
    fifo = node.boolean("fifo", False) if allow_fifo else False
    # S3 notification messages name one object each, which can take a whole invocation: one per batch by default.
    batch_size = node.integer("batchSize", 1 if key == "s3" else 10, 1, 10 if fifo else 10_000)
    window = node.integer("maxBatchingWindowSeconds", 0, 0, 0 if fifo else 300)
    if batch_size > 10 and window < 1:
        raise ConfigError(
            f"{node.path}.maxBatchingWindowSeconds: expected at least 1 when batchSize is above 10 "
            f"(Lambda's rule for SQS), got {window}"
        )
    max_concurrency = node.integer("maxConcurrency", 2, 2, 1000)
    reserved = function.reserved_concurrency
    if reserved is not None and max_concurrency > reserved:
        raise ConfigError(
            f"{node.path}.maxConcurrency: expected at most function.reservedConcurrency ({reserved}); above it "
            f"Lambda throttles the SQS pollers and messages count receives towards the DLQ, got {max_concurrency}"
        )
    return QueueSource(
        fifo=fifo,
        batch_size=batch_size,
        max_batching_window_s=window,
        max_concurrency=max_concurrency,
        max_receive_count=node.integer("maxReceiveCount", 5, 5, 1000),
    )


def _check_quota(node: _Node, config: EntityConfig) -> None:
    """calls per second x concurrent invocations must stay within the operation's quota.

    NOTE: concurrency caps alone cannot bound a request rate (one invocation may call many times a second);
    the runtime's token bucket (CALLS_PER_SECOND) bounds each invocation, and this product bounds the function.
    callsPerSecond = 0 disables the bucket (the runtime's default for PutEvents): the operator then accepts that
    nothing bounds the rate, so there is nothing to check.
    """
    rate = config.function.calls_per_second
    if rate == 0:
        return
    bound = config.max_concurrent_invocations
    if math.isinf(bound):
        raise ConfigError(
            f"{node.path}.function.reservedConcurrency: expected a number when callsPerSecond is set and a source "
            f"has no concurrency bound (on-demand Kinesis); callsPerSecond x reservedConcurrency must stay within "
            f"quotaPerSecond ({config.quota_per_second:g})"
        )
    if rate * bound > config.quota_per_second + 1e-9:
        raise ConfigError(
            f"{node.path}.function.callsPerSecond: callsPerSecond ({rate:g}) x maximum concurrent invocations "
            f"({bound:g}) = {rate * bound:g} requests/s exceeds quotaPerSecond ({config.quota_per_second:g}); "
            f"lower callsPerSecond or reservedConcurrency"
        )
