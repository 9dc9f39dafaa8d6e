"""The import route: an announced object that qualifies goes to an INCREMENTAL dataset import job.

``offer(entity, item, ref, deadline)`` is called by the S3 stage before an object is streamed. It decides the
route (personalize_ingest.bulk_routing), checks the file (personalize_ingest.bulk_checks), starts the job
(personalize_ingest.import_jobs), and
writes the result file ``results/<key>.result.json`` (``route: "import"``) plus a tracking marker that the
import tracker follows to the job's end. Every outcome is explicit:

- stream: the S3 stage streams the object as before;
- refused: the file failed the checks; its result file lists the problems with line numbers; nothing imported;
- importing: a job was started, or found already started (a redelivered notification: the job name is derived
  from bucket, key and version/ETag, so the second CreateDatasetImportJob is refused and the first job is
  looked up and carried on);
- waiting: 5 import jobs are already pending or in progress (LimitExceededException). The object's notification
  is sent again to its queue with a delay (``BULK_IMPORT_WAIT_SECONDS``) and the result file says so; on a FIFO
  queue or a direct S3 invocation, which cannot delay one message, the item is reported failed for Lambda to
  retry. The file is never dropped;
- failed: a misconfiguration or an outage (no permission, unknown dataset, S3 unreachable): the item is reported
  failed with the reason, so the file is retried; nothing is set aside.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.exceptions import SchemaValidationError
from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest.bulk_checks import check_header, check_sample
from personalize_ingest.bulk_routing import (
    IMPORT,
    BulkImportSettings,
    Probe,
    Route,
    decide,
    probe_object,
    version_request,
)
from personalize_ingest.config import ConfigurationError
from personalize_ingest.entities import Entity
from personalize_ingest.import_jobs import JobNotListed, client, dataset_schema, job_name, start_job
from personalize_ingest.observability import ENTITY_DIMENSION, logger
from personalize_ingest.results import result_key, write_result

if TYPE_CHECKING:
    from personalize_ingest.deadline import Deadline
    from personalize_ingest.sources import BatchItem, ObjectRef

ROUTE_IMPORT = "import"
REFUSED = "refused"
"""The file failed the checks: not imported (see ``problems``)."""
WAITING = "waiting"
"""Five import jobs are already running: the file is retried later."""
IMPORTING = "importing"
"""A job was started; the import tracker rewrites the file when it ends."""
IMPORTED = "imported"
"""The job ended ACTIVE."""
IMPORT_FAILED = "import_failed"
"""The job ended CREATE FAILED (see ``failureReason`` and ``hint``)."""

MARKERS_DIRECTORY = ".import-jobs/"
"""Tracking markers live at ``results/<entity prefix>.import-jobs/<job name>.json``."""
BULK_IMPORTS_STARTED = "BulkImportsStarted"
BULK_IMPORTS_REFUSED = "BulkImportsRefused"
BULK_IMPORTS_WAITING = "BulkImportsWaiting"
BULK_IMPORTS_SUCCEEDED = "BulkImportsSucceeded"
BULK_IMPORTS_FAILED = "BulkImportsFailed"


@dataclass(frozen=True, slots=True)
class Offer:
    """What the import route did with an object: ``taken`` = the S3 stage must not stream it."""

    taken: bool
    failure: str | None = None
    """Set when the batch item must be reported failed (retried by Lambda), with the reason."""


STREAM_IT = Offer(taken=False)


def offer(entity: Entity, item: BatchItem, ref: ObjectRef, deadline: Deadline) -> Offer:
    """Route one announced object (read from its first line); see the module docstring for the outcomes."""
    where = {"item": item.item_id, **ref.describe()}
    try:
        settings = BulkImportSettings.from_env(entity)
    except ConfigurationError as exc:
        logger.error(
            "import route misconfigured: the item is reported for retry", extra={**where, "error": str(exc)}
        )
        return Offer(taken=True, failure=f"the import route is misconfigured: {exc}")
    if settings is None:
        return STREAM_IT
    try:
        s3 = client("s3", deadline)
        probe = probe_object(s3, ref.bucket, ref.key, ref.version_id, ref.etag)
        route = decide(entity, settings, ref.key, probe)
        logger.info("route chosen", extra={**where, "route": route.path, "why": route.reason})
        if route.path != IMPORT:
            return STREAM_IT
        return _import(entity, settings, item, ref, route, probe, deadline)
    except ClientError as exc:
        code = _code(exc)
        if code in ("NoSuchKey", "NoSuchVersion", "PreconditionFailed", "404", "412"):
            # NOTE: replaced or deleted since its notification: the successor has its own notification.
            logger.warning("S3 object no longer there as announced: skipped", extra={**where, "why": code})
            return Offer(taken=True)
        logger.error("import route failed: the item is reported for retry", extra={**where, "error": str(exc)})
        return Offer(taken=True, failure=f"the import route failed for s3://{ref.bucket}/{ref.key}: {code}")
    except (BotoCoreError, JobNotListed) as exc:
        logger.error("import route failed: the item is reported for retry", extra={**where, "error": str(exc)})
        return Offer(taken=True, failure=f"the import route failed for s3://{ref.bucket}/{ref.key}: {exc}")


def _import(
    entity: Entity,
    settings: BulkImportSettings,
    item: BatchItem,
    ref: ObjectRef,
    route: Route,
    probe: Probe,
    deadline: Deadline,
) -> Offer:
    s3, personalize = client("s3", deadline), client("personalize", deadline)
    schema = dataset_schema(personalize, settings.dataset_arn)
    _, problems = check_header(entity, probe.head, schema)
    sampled = 0
    if not problems:
        request = {"Bucket": ref.bucket, "Key": ref.key, **version_request(ref.version_id, ref.etag)}
        body = s3.get_object(**request)["Body"]
        try:
            sampled, problems = check_sample(entity, body, ref.key, settings.sample_rows, ref.source, schema)
        finally:
            body.close()
    base = _document(ref, route, job_name(entity, ref))
    if problems:
        _write(s3, ref, {**base, "status": REFUSED, "problems": [p.as_dict() for p in problems]})
        _metric(entity, BULK_IMPORTS_REFUSED)
        logger.warning(
            "file refused for import: result file written",
            extra={"key": ref.key, "problems": len(problems), "first": problems[0].reason},
        )
        return Offer(taken=True)
    try:
        job = start_job(personalize, settings, entity, ref)
    except ClientError as exc:
        if _code(exc) != "LimitExceededException":
            raise
        return _wait(entity, settings, item, ref, s3, base, str(exc), deadline)
    if job.finished:
        # NOTE: a notification redelivered after its job ended: the tracker wrote the final result file before
        # it deleted the job's marker, so there is nothing left to do.
        logger.info(
            "import job of this object already ended: nothing to do", extra={"key": ref.key, "job": job.arn}
        )
        return Offer(taken=True)
    job_arn, existed = job.arn, job.existed
    document = {**base, "status": IMPORTING, "jobArn": job_arn, "sampledRows": sampled, "submittedAt": time.time()}
    _write(s3, ref, document)
    s3.put_object(
        Bucket=ref.bucket,
        Key=marker_key(entity, base["jobName"]),
        Body=json.dumps({**document, "entity": entity.name}).encode(),
        ContentType="application/json",
    )
    if not existed:
        _metric(entity, BULK_IMPORTS_STARTED)
    logger.info(
        "import job started" if not existed else "import job already started: carried on",
        extra={
            "key": ref.key,
            "job": job_arn,
        },
    )
    return Offer(taken=True)


def marker_key(entity: Entity, name: str) -> str:
    """Where the tracking marker of job ``name`` lives."""
    return f"{result_key(entity.s3_prefix).removesuffix('.result.json')}{MARKERS_DIRECTORY}{name}.json"


def _wait(
    entity: Entity,
    settings: BulkImportSettings,
    item: BatchItem,
    ref: ObjectRef,
    s3: Any,
    base: dict[str, Any],
    reason: str,
    deadline: Deadline,
) -> Offer:
    why = f"5 import jobs are already pending or in progress in the region; the file waits ({reason})"
    _metric(entity, BULK_IMPORTS_WAITING)
    fifo = item.queue_arn is not None and item.queue_arn.endswith(".fifo")
    if item.queue_arn is None or fifo:
        _write(s3, ref, {**base, "status": WAITING, "reason": why, "retry": "the message is retried by Lambda"})
        return Offer(taken=True, failure=why)
    arn_parts = item.queue_arn.split(":")
    sqs = client("sqs", deadline)
    queue_url = sqs.get_queue_url(QueueName=arn_parts[5], QueueOwnerAWSAccountId=arn_parts[4])["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=notification_body(ref), DelaySeconds=settings.wait_seconds)
    retry_at = time.time() + settings.wait_seconds
    _write(s3, ref, {**base, "status": WAITING, "reason": why, "retryAt": retry_at})
    logger.warning(
        "import jobs busy: notification sent again with a delay",
        extra={
            "key": ref.key,
            "delay_s": settings.wait_seconds,
        },
    )
    return Offer(taken=True)


def notification_body(ref: ObjectRef) -> str:
    """An S3 ObjectCreated notification of ``ref``, as S3 sends it (key URL-encoded)."""
    s3_object: dict[str, Any] = {"key": quote_plus(ref.key)}
    if ref.version_id:
        s3_object["versionId"] = ref.version_id
    if ref.etag:
        s3_object["eTag"] = ref.etag
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ref.event_time)),
        "s3": {"bucket": {"name": ref.bucket}, "object": s3_object},
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


def _document(ref: ObjectRef, route: Route, name: str) -> dict[str, Any]:
    return {
        "bucket": ref.bucket,
        "key": ref.key,
        "versionId": ref.version_id,
        "etag": ref.etag,
        "route": ROUTE_IMPORT,
        "routeReason": route.reason,
        "estimatedRows": route.estimated_rows,
        "jobName": name,
    }


def _write(s3: Any, ref: ObjectRef, document: Mapping[str, Any]) -> None:
    write_result(s3, ref, document)


def _metric(entity: Entity, name: str) -> None:
    emit_count(name, {ENTITY_DIMENSION: entity.name})


def emit_count(name: str, dimensions: dict[str, str]) -> None:
    """Publish one count metric now, as its own EMF document with exactly ``dimensions``.

    NOTE: service="" keeps Powertools from adding its "service" dimension (the alarms select by ``entity``
    alone, as observability.emit_metrics does); the metric set is flushed at once, so the invocation's own
    metrics, added at its end, are never mixed in.
    """
    metrics = Metrics(service="")
    for dimension, value in dimensions.items():
        metrics.add_dimension(name=dimension, value=value)
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    try:
        metrics.flush_metrics()
    except SchemaValidationError as exc:
        metrics.clear_metrics()
        logger.error("metric not published (set POWERTOOLS_METRICS_NAMESPACE)", extra={"error": str(exc)})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
