"""Function configuration, read once per invocation from environment variables.

| variable | default | meaning |
|---|---|---|
| ``PERSONALIZE_TRACKING_ID`` | required (events, action_interactions) | event tracker id |
| ``PERSONALIZE_DATASET_ARN`` | required (items, users, actions) | dataset ARN of the entity's type |
| ``REJECTS_QUEUE_URL`` | unset | queue for invalid records; unset = invalid records are reported failed |
| ``MAX_CONCURRENT_CALLS`` | 8 | Personalize calls in flight per invocation |
| ``MAX_ATTEMPTS`` | 4 | attempts per call (first try included) for throttling, 5xx, timeouts |
| ``CALLS_PER_SECOND`` | 10 (0 = unlimited for PutEvents) | token bucket per target, shared by a container |
| ``DEADLINE_MARGIN_MS`` | 5000 | stop starting calls when less than this is left of the invocation |
| ``DEFAULT_EVENT_TYPE`` | unset | event type for events records that have none |
| ``S3_FANOUT_MIN_BYTES`` | 67108864 (64 MiB) | plain objects from this size are read as byte ranges; 0 = never |
| ``S3_FANOUT_RANGE_BYTES`` | 16777216 (16 MiB) | size of one byte range of a fanned-out object |
| ``S3_FANOUT_MAX_RANGES`` | 64 | most ranges one object is split into (ranges grow past RANGE_BYTES to fit) |
| ``S3_MAX_HOPS`` | 500 | continuations of one object (or range) before it is stopped and its message failed |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from personalize_ingest.entities import Entity

T = TypeVar("T", int, float)


class ConfigurationError(Exception):
    """The function is misconfigured: no record is touched, the whole invocation fails."""


_DATASET_ARN = re.compile(r"^arn:[a-z\d-]+:personalize:[a-z\d-]+:\d{12}:dataset/[^/]+/(?P<type>[A-Z_]+)$")
_TRACKING_ID = re.compile(r"^[A-Za-z\d][A-Za-z\d-]{0,255}$")


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
            match = _DATASET_ARN.match(target)
            if match is None or match.group("type") != entity.dataset_type:
                raise ConfigurationError(
                    f"{entity.target_variable} must be a dataset ARN of type {entity.dataset_type} "
                    f"(arn:aws:personalize:<region>:<account>:dataset/<group>/{entity.dataset_type}), "
                    f"got {target!r}"
                )
        elif not _TRACKING_ID.match(target):
            raise ConfigurationError(
                f"{entity.target_variable} must be an event tracker's tracking id (letters, digits and '-', "
                f"at most 256 characters), got {target!r}"
            )
        return cls(
            entity=entity,
            target=target,
            rejects_queue_url=env.get("REJECTS_QUEUE_URL", "").strip() or None,
            max_concurrent_calls=_number(env, "MAX_CONCURRENT_CALLS", 8, int, minimum=1),
            max_attempts=_number(env, "MAX_ATTEMPTS", 4, int, minimum=1),
            calls_per_second=_number(env, "CALLS_PER_SECOND", entity.default_calls_per_second, float, minimum=0),
            deadline_margin_ms=_number(env, "DEADLINE_MARGIN_MS", 5000, int, minimum=0),
            default_event_type=env.get("DEFAULT_EVENT_TYPE", "").strip() or None,
            s3_fanout_min_bytes=_number(env, "S3_FANOUT_MIN_BYTES", 64 * 1024 * 1024, int, minimum=0),
            s3_fanout_range_bytes=_number(env, "S3_FANOUT_RANGE_BYTES", 16 * 1024 * 1024, int, minimum=1024),
            s3_fanout_max_ranges=_number(env, "S3_FANOUT_MAX_RANGES", 64, int, minimum=2),
            s3_max_hops=_number(env, "S3_MAX_HOPS", 500, int, minimum=1),
        )


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
