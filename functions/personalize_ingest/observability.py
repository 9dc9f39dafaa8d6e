"""Powertools Logger, Metrics and Tracer shared by the five functions.

Metric names are a contract: the stack's alarms and dashboard are built on them. Each metric carries exactly one
dimension, ``entity``; logs carry source identifiers (ARNs, sequence numbers, message ids, bucket/key/line) and
never user ids, item ids or properties above DEBUG.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.exceptions import SchemaValidationError

from personalize_ingest.outcome import Tally

RECORDS_RECEIVED = "RecordsReceived"
RECORDS_DELIVERED = "RecordsDelivered"
RECORDS_REJECTED = "RecordsRejected"
RECORDS_FAILED = "RecordsFailed"
API_CALLS = "ApiCalls"
THROTTLED_CALLS = "ThrottledCalls"
RETRIES = "Retries"
METRIC_NAMES = (
    RECORDS_RECEIVED,
    RECORDS_DELIVERED,
    RECORDS_REJECTED,
    RECORDS_FAILED,
    API_CALLS,
    THROTTLED_CALLS,
    RETRIES,
)
ENTITY_DIMENSION = "entity"

logger = Logger()
"""JSON logger; service name from ``POWERTOOLS_SERVICE_NAME``."""
tracer = Tracer()
"""X-Ray tracer; disabled outside Lambda."""


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
