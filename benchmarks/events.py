"""Lambda events for the benchmarks, built from a small JSON-able spec with the test factories' real shapes."""

from __future__ import annotations

import random
from typing import Any

from benchmarks import movielens
from tests.support import factories


def build_event(spec: dict[str, Any]) -> dict[str, Any]:
    """The Lambda event described by ``spec``.

    ``{"type": "s3_via_sqs", "bucket", "key", "etag", "size"}``: an SQS message holding the S3 notification of
    one object. ``{"type": "kinesis", "records": N, "shuffleSeed": int | None}``: N camelCase events from the
    MovieLens ratings, in file order (long runs of one user) or shuffled (sessions interleaved).
    ``{"type": "inline", "event": {...}}``: an event built beforehand (by the parent, so the worker's memory
    holds no data set).
    """
    if spec["type"] == "inline":
        return spec["event"]
    if spec["type"] == "s3_via_sqs":
        record = factories.s3_record(spec["bucket"], spec["key"], etag=spec["etag"], size=spec["size"])
        message = factories.sqs_message(factories.s3_notification(record), f"bench-{spec['key']}")
        return factories.sqs_event([message])
    if spec["type"] == "kinesis":
        ratings = movielens.take(movielens.ratings(), spec["records"])
        if spec.get("shuffleSeed") is not None:
            pool = list(movielens.ratings())
            ratings = random.Random(spec["shuffleSeed"]).sample(pool, spec["records"])
        return factories.kinesis_event([movielens.event_camel(rating) for rating in ratings])
    raise ValueError(f"unknown event spec type {spec['type']!r}")
