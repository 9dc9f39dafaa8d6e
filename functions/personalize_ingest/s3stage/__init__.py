"""The S3 stage: an announced object -> rows -> chunks -> deliveries -> continuation -> result file.

:class:`~personalize_ingest.s3stage.stage.ObjectStage` takes one :class:`~personalize_ingest.sources.ObjectRef`
from the invocation's flow and accounts for every row of it; the invocation only hands objects over.
"""

from __future__ import annotations

from personalize_ingest.s3stage.stage import (
    CHUNK_COST_FACTOR,
    LANES_PER_WORKER,
    S3_CHUNK_MAX_BYTES,
    S3_CHUNK_MAX_ROWS,
    S3_CHUNK_ROWS,
    ObjectStage,
    RowSink,
)

__all__ = [
    "CHUNK_COST_FACTOR",
    "LANES_PER_WORKER",
    "S3_CHUNK_MAX_BYTES",
    "S3_CHUNK_MAX_ROWS",
    "S3_CHUNK_ROWS",
    "ObjectStage",
    "RowSink",
]
