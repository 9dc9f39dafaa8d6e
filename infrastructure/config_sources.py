"""The sources of an entity's function in the configuration schema: Kinesis, SQS and S3 (via SQS)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from infrastructure.config_fields import BOOLEAN, SOURCE_SWITCH, Schema, integer, invalid, one_of

ON_DEMAND_START_SHARDS = 4
"""Shards an on-demand stream starts with (4 MB/s of writes): the default bound of its pollers."""


class KinesisSource(Schema):
    """A Kinesis data stream feeding the entity's function."""

    stream_mode: Annotated[str, one_of("ON_DEMAND", "PROVISIONED")] = Field("ON_DEMAND", alias="streamMode")
    shard_count: Annotated[int | None, integer(1, 10_000, optional=True)] = Field(None, alias="shardCount")
    max_shards: Annotated[int | None, integer(1, 10_000, optional=True)] = Field(None, alias="maxShards")
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
