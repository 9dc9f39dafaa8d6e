"""An entity's ``function`` in the configuration schema: the Lambda function and the runtime knobs it reads.

Each runtime knob is one environment variable named in personalize_ingest.contract. Where the runtime has a default
of its own (the S3 fan-out and hop settings, the call path), the key's default is read from the runtime's
:class:`~personalize_ingest.config.Settings`, so the stack and the runtime cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

from pydantic import Field, model_validator

from infrastructure.config_fields import Schema, integer, invalid, matching, number, one_of
from personalize_ingest.config import CALL_PATHS, Settings

S3_OBJECT_MAX_BYTES = 5 * 1024**4
"""S3's largest object (5 TiB): no byte count about one object needs to go further."""
S3_FILE_KEYS = {
    "s3_fanout_min_bytes": "s3FanoutMinBytes",
    "s3_fanout_range_bytes": "s3FanoutRangeBytes",
    "s3_fanout_max_ranges": "s3FanoutMaxRanges",
    "s3_max_hops": "s3MaxHops",
}
"""Fields (and keys) that act only on S3 objects: refused for an entity without an ``s3`` source."""


def runtime_default(name: str) -> Any:
    """The default of the runtime's setting ``name`` (a field of personalize_ingest.config.Settings)."""
    (found,) = (f for f in dataclasses.fields(Settings) if f.name == name)
    assert found.default is not dataclasses.MISSING, f"Settings.{name} has no default"
    return found.default


class FunctionSettings(Schema):
    """The Lambda function and the runtime knobs it reads from its environment."""

    memory_mb: Annotated[int, integer(128, 10_240)] = Field(512, alias="memorySize")
    timeout_s: Annotated[int, integer(10, 900)] = Field(120, alias="timeoutSeconds")
    reserved_concurrency: Annotated[int | None, integer(1, 1000, optional=True)] = Field(
        None, alias="reservedConcurrency"
    )
    """Opt-in: reserving takes concurrency from the account's pool (docs/deploy.md, "Concurrency")."""
    calls_per_second: Annotated[float, number(0.01, 100_000)] = Field(0.0, alias="callsPerSecond")
    """Token bucket per invocation; by default the quota shared among the most invocations that can run at once."""
    max_concurrent_calls: Annotated[int | None, integer(1, 64, optional=True)] = Field(
        None, alias="maxConcurrentCalls"
    )
    """A ceiling on the calls in flight per invocation. Unset (the default), the runtime sizes them to the work
    (personalize_ingest.concurrency: lanes, what the rate allows, memory; at most 32). NOTE: it never bounds the
    request rate - the token bucket does (callsPerSecond x most invocations at once <= quotaPerSecond)."""
    max_attempts: Annotated[int, integer(1, 20)] = Field(4, alias="maxAttempts")
    deadline_margin_ms: Annotated[int, integer(0, 60_000)] = Field(5000, alias="deadlineMarginMs")
    default_event_type: Annotated[
        str | None, matching(re.compile(r"^.{1,256}$"), "an event type (1-256 characters)", optional=True)
    ] = Field(None, alias="defaultEventType")
    call_path: Annotated[str, one_of(*CALL_PATHS)] = Field(runtime_default("call_path"), alias="callPath")
    """``direct``: the lean call path; ``botocore``: the client's own methods (docs/calls.md)."""

    # -- S3 objects (personalize_ingest.s3stage): only with an s3 source --
    s3_fanout_min_bytes: Annotated[int, integer(0, S3_OBJECT_MAX_BYTES)] = Field(
        runtime_default("s3_fanout_min_bytes"), alias="s3FanoutMinBytes"
    )
    """A plain (not gzip) object at least this large is split into byte ranges read by several invocations at
    once; 0 = never."""
    s3_fanout_range_bytes: Annotated[int, integer(1024, S3_OBJECT_MAX_BYTES)] = Field(
        runtime_default("s3_fanout_range_bytes"), alias="s3FanoutRangeBytes"
    )
    s3_fanout_max_ranges: Annotated[int, integer(2, 1000)] = Field(
        runtime_default("s3_fanout_max_ranges"), alias="s3FanoutMaxRanges"
    )
    """Most ranges of one object (ranges grow past s3FanoutRangeBytes to fit). NOTE: 1000 is the most a queue's
    mapping can run at once (maxConcurrency); more ranges would only wait in the queue."""
    s3_max_hops: Annotated[int, integer(1, 100_000)] = Field(runtime_default("s3_max_hops"), alias="s3MaxHops")
    """Continuations of one object (or range) before reading it stops, with a result file saying why."""

    @property
    def s3_keys_set(self) -> list[str]:
        """The S3 keys given in the configuration (not their defaults), as the configuration names them."""
        return [key for field, key in S3_FILE_KEYS.items() if field in self.model_fields_set]

    @model_validator(mode="after")
    def _consistent(self) -> FunctionSettings:
        if self.deadline_margin_ms >= self.timeout_s * 1000:
            raise invalid(
                f"expected less than the function timeout ({self.timeout_s * 1000} ms), "
                f"got {self.deadline_margin_ms}",
                "deadlineMarginMs",
            )
        if self.s3_fanout_min_bytes and self.s3_fanout_range_bytes >= self.s3_fanout_min_bytes:
            # NOTE: an object is split only into ranges of s3FanoutRangeBytes or more; at the threshold it must
            # make at least two of them, or objects of that size are read whole after all.
            raise invalid(
                f"expected less than s3FanoutMinBytes ({self.s3_fanout_min_bytes}), so that an object of that "
                f"size splits into at least two ranges, got {self.s3_fanout_range_bytes}",
                "s3FanoutRangeBytes",
            )
        return self
