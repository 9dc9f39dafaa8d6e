"""Powertools Logger and Metrics shared by the five functions.

Metric names are a contract: the stack's alarms and dashboard are built on them. Each metric carries exactly one
dimension, ``entity``; logs carry source identifiers (ARNs, sequence numbers, message ids, bucket/key/line) and
never user ids, item ids or properties above DEBUG.

# NOTE: no Powertools Tracer. The stack turns on Lambda active tracing, which records every invocation (its
# duration, cold start and errors) in X-Ray without any SDK in the function. The Tracer would add subsegments for
# each botocore call, but importing it loads ``aws_xray_sdk.core`` - about 0.7 s of every cold start, a third to
# a half of the handler's import time - and patching botocore adds CPU to every one of the thousands of
# Personalize calls a large file makes. The figures that matter per call (ApiCalls, ThrottledCalls, Retries) are
# metrics already; the per-call latency is the emulator's / the service's to report.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.exceptions import SchemaValidationError

from personalize_ingest.contract import (
    API_CALLS,
    ENTITY_DIMENSION,
    RECORDS_DELIVERED,
    RECORDS_FAILED,
    RECORDS_RECEIVED,
    RECORDS_REJECTED,
    RETRIES,
    THROTTLED_CALLS,
)
from personalize_ingest.outcome import Tally

logger = Logger()
"""JSON logger; service name from ``POWERTOOLS_SERVICE_NAME``."""


def emit_metrics(entity_name: str, tally: Tally) -> None:
    """Publish the invocation's counts as one EMF document (printed to stdout, read by CloudWatch)."""
    # NOTE: service="" keeps Powertools from adding its default "service" dimension: the alarms select the
    # metrics by the single dimension "entity". The namespace is read from POWERTOOLS_METRICS_NAMESPACE here,
    # at the invocation, not at import (Powertools' metric set is shared by all instances, so this is cheap).
    metrics = Metrics(service="")
    metrics.add_dimension(name=ENTITY_DIMENSION, value=entity_name)
    values = {
        RECORDS_RECEIVED: tally.received,
        RECORDS_DELIVERED: tally.delivered + tally.superseded,
        RECORDS_REJECTED: tally.rejected,
        RECORDS_FAILED: tally.failed,
        API_CALLS: tally.api_calls,
        THROTTLED_CALLS: tally.throttled_calls,
        RETRIES: tally.retries,
    }
    for name, value in values.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    try:
        metrics.flush_metrics()
    except SchemaValidationError as exc:
        # NOTE: raising here would fail a batch whose records were all handled (and send them again); a missing
        # namespace is a deployment mistake the log makes visible.
        metrics.clear_metrics()
        logger.error("metrics not published (set POWERTOOLS_METRICS_NAMESPACE)", extra={"error": str(exc)})
