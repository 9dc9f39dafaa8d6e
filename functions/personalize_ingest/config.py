"""Function configuration, read once per invocation from environment variables.

| variable | default | meaning |
|---|---|---|
| ``PERSONALIZE_TRACKING_ID`` | required (events, action_interactions) | event tracker id |
| ``PERSONALIZE_DATASET_ARN`` | required (items, users, actions) | dataset ARN of the entity's type |
| ``REJECTS_QUEUE_URL`` | unset | queue for invalid records; unset = invalid records are reported failed |
| ``MAX_CONCURRENT_CALLS`` | sized | most Personalize calls in flight; unset: sized to the work (concurrency.py) |
| ``MAX_ATTEMPTS`` | 4 | attempts per call (first try included) for throttling, 5xx, timeouts |
| ``CALLS_PER_SECOND`` | 10 (0 = unlimited for PutEvents) | token bucket per target, shared by a container |
| ``DEADLINE_MARGIN_MS`` | 5000 | stop starting calls when less than this is left of the invocation |
| ``DEFAULT_EVENT_TYPE`` | unset | event type for events records that have none |
| ``S3_FANOUT_MIN_BYTES`` | 67108864 (64 MiB) | plain objects from this size are read as byte ranges; 0 = never |
| ``S3_FANOUT_RANGE_BYTES`` | 16777216 (16 MiB) | size of one byte range of a fanned-out object |
| ``S3_FANOUT_MAX_RANGES`` | 64 | most ranges one object is split into (ranges grow past RANGE_BYTES to fit) |
| ``S3_MAX_HOPS`` | 500 | continuations of one object (or range) before it is stopped and its message failed |
| ``DATASET_SCHEMA`` | unset | the dataset's Avro schema (JSON): properties are checked against it (schema.py) |
| ``DATASET_SCHEMA_FILE`` | unset | path of that schema, relative to the code root (bundled with the function) |
| ``DATASET_SCHEMA_ARN`` | unset | schema ARN (DescribeSchema), or ``dataset``: DescribeDataset of the target |
| ``PERSONALIZE_CALL_PATH`` | ``direct`` | ``direct``: lean calls (calls.py); ``botocore``: client methods |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from personalize_ingest.contract import (
    CALLS_PER_SECOND,
    DATASET_ARN_PATTERN,
    DATASET_SCHEMA,
    DATASET_SCHEMA_ARN,
    DATASET_SCHEMA_FILE,
    DEADLINE_MARGIN_MS,
    DEFAULT_EVENT_TYPE,
    MAX_ATTEMPTS,
    MAX_CONCURRENT_CALLS,
    PERSONALIZE_CALL_PATH,
    REJECTS_QUEUE_URL,
    S3_FANOUT_MAX_RANGES,
    S3_FANOUT_MIN_BYTES,
    S3_FANOUT_RANGE_BYTES,
    S3_MAX_HOPS,
    SCHEMA_ARN_PATTERN,
    SCHEMA_FROM_DATASET,
    TRACKING_ID_PATTERN,
)
from personalize_ingest.entities import Entity

T = TypeVar("T", int, float)


class ConfigurationError(Exception):
    """The function is misconfigured: no record is touched, the whole invocation fails."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated configuration of one function."""

    entity: Entity
    target: str
    rejects_queue_url: str | None
    max_concurrent_calls: int
    max_attempts: int
    calls_per_second: float
    deadline_margin_ms: int
    default_event_type: str | None
    s3_fanout_min_bytes: int = 64 * 1024 * 1024
    """Plain (not gzip) S3 objects from this size are split into byte ranges read at once; 0 = never."""
    s3_fanout_range_bytes: int = 16 * 1024 * 1024
    s3_fanout_max_ranges: int = 64
    s3_max_hops: int = 500
    """Continuations of one object or range before reading stops (a guard: every continuation makes progress)."""
    concurrency_configured: bool = True
    """``max_concurrent_calls`` caps the sized concurrency (from_env: only when ``MAX_CONCURRENT_CALLS`` is set;
    otherwise ``concurrency.DEFAULT_CEILING`` does).
    ``max_concurrent_calls`` keeps 8 when unset, for the S3 chunk rule (lanes per delivery thread)."""
    call_path: str = "direct"
    """``direct`` (the lean call path, :mod:`personalize_ingest.calls`) or ``botocore`` (the client's methods)."""
    schema_source: tuple[str, str] | None = None
    """Where the dataset's schema comes from: ``("inline", json)``, ``("file", path)``, ``("arn", arn)``; None."""

    @classmethod
    def from_env(cls, entity: Entity, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings of ``entity``.

        Raises
        ------
        ConfigurationError
            naming the variable that is missing or malformed.
        """
        env = os.environ if environ is None else environ
        target = env.get(entity.target_variable, "").strip()
        if not target:
            raise ConfigurationError(f"{entity.target_variable} is not set; the {entity.name} function needs it")
        if entity.dataset_type is not None:
            match = DATASET_ARN_PATTERN.match(target)
            if match is None or match.group("type") != entity.dataset_type:
                raise ConfigurationError(
                    f"{entity.target_variable} must be a dataset ARN of type {entity.dataset_type} "
                    f"(arn:aws:personalize:<region>:<account>:dataset/<group>/{entity.dataset_type}), "
                    f"got {target!r}"
                )
        elif not TRACKING_ID_PATTERN.match(target):
            raise ConfigurationError(
                f"{entity.target_variable} must be an event tracker's tracking id (letters, digits and '-', "
                f"at most 256 characters), got {target!r}"
            )
        return cls(
            entity=entity,
            target=target,
            rejects_queue_url=env.get(REJECTS_QUEUE_URL, "").strip() or None,
            max_concurrent_calls=_number(env, MAX_CONCURRENT_CALLS, 8, int, minimum=1),
            max_attempts=_number(env, MAX_ATTEMPTS, 4, int, minimum=1),
            calls_per_second=_number(env, CALLS_PER_SECOND, entity.default_calls_per_second, float, minimum=0),
            deadline_margin_ms=_number(env, DEADLINE_MARGIN_MS, 5000, int, minimum=0),
            default_event_type=env.get(DEFAULT_EVENT_TYPE, "").strip() or None,
            s3_fanout_min_bytes=_number(env, S3_FANOUT_MIN_BYTES, 64 * 1024 * 1024, int, minimum=0),
            s3_fanout_range_bytes=_number(env, S3_FANOUT_RANGE_BYTES, 16 * 1024 * 1024, int, minimum=1024),
            s3_fanout_max_ranges=_number(env, S3_FANOUT_MAX_RANGES, 64, int, minimum=2),
            s3_max_hops=_number(env, S3_MAX_HOPS, 500, int, minimum=1),
            concurrency_configured=bool(env.get(MAX_CONCURRENT_CALLS, "").strip()),
            call_path=_choice(env, PERSONALIZE_CALL_PATH, CALL_PATHS),
            schema_source=_schema_source(env, entity),
        )


SCHEMA_VARIABLES = {DATASET_SCHEMA: "inline", DATASET_SCHEMA_FILE: "file", DATASET_SCHEMA_ARN: "arn"}


def _schema_source(env: Mapping[str, str], entity: Entity) -> tuple[str, str] | None:
    given = [(name, env[name].strip()) for name in SCHEMA_VARIABLES if env.get(name, "").strip()]
    if not given:
        return None
    if len(given) > 1:
        raise ConfigurationError(
            f"set at most one of {', '.join(SCHEMA_VARIABLES)}; got {', '.join(n for n, _ in given)}"
        )
    name, value = given[0]
    kind = SCHEMA_VARIABLES[name]
    if kind == "arn" and value != SCHEMA_FROM_DATASET and not SCHEMA_ARN_PATTERN.match(value):
        raise ConfigurationError(
            f"{name} must be a schema ARN (arn:aws:personalize:<region>:<account>:schema/<name>) or 'dataset', "
            f"got {value!r}"
        )
    if kind == "arn" and value == SCHEMA_FROM_DATASET and entity.dataset_type is None:
        raise ConfigurationError(
            f"{name}=dataset needs a dataset ARN target; the {entity.name} function sends to a tracker: "
            "give the schema's ARN"
        )
    if kind != "arn":
        # NOTE: a schema that cannot be read is a misconfiguration: the invocation fails before any record is
        # touched, instead of records being checked against nothing or refused for a broken schema.
        from personalize_ingest.schema import SchemaError, parse_document, read_file

        try:
            parse_document(value, name) if kind == "inline" else read_file(value)
        except SchemaError as exc:
            raise ConfigurationError(str(exc)) from None
    return kind, value


CALL_PATHS = ("direct", "botocore")
"""Values of ``PERSONALIZE_CALL_PATH``; the first is the default."""


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _number(env: Mapping[str, str], name: str, default: T, kind: type[T], minimum: T) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {raw!r}")
    return value
