"""Follow started import jobs to ACTIVE or CREATE FAILED and write their final result files.

The ingest function leaves one marker per started job (``results/<entity prefix>.import-jobs/<job>.json``,
personalize_ingest.bulk_import). The tracker runs on a schedule: for each marker it asks
DescribeDatasetImportJob; a job still pending or in progress gets its state copied into the result file, a
finished one gets the final result file (job ARN, status, failure reason with a hint at the fix, timings, rows)
and one metric, and its marker is deleted. The work per run is proportional to the jobs in flight (at most 5 per
region), whatever the number of files ever imported.

NOTE: a scheduled function rather than a Step Functions state machine per job: Personalize publishes no event
when a job ends, so something must poll either way; one function polling every minute keeps no per-job execution
state outside S3, needs no states:StartExecution grant on the ingest functions, runs the same code locally and in
tests, and a minute of latency is nothing against jobs that take many minutes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from personalize_ingest import contract
from personalize_ingest.bulk_import import (
    BULK_IMPORTS_FAILED,
    BULK_IMPORTS_SUCCEEDED,
    IMPORT_FAILED,
    IMPORTED,
    MARKERS_DIRECTORY,
    emit_count,
)
from personalize_ingest.bulk_routing import version_request
from personalize_ingest.entities import ENTITIES, Entity
from personalize_ingest.import_jobs import ACTIVE, CREATE_FAILED
from personalize_ingest.observability import ENTITY_DIMENSION, logger
from personalize_ingest.results import result_key

FINISHED = (ACTIVE, CREATE_FAILED)
ACCESS_HINT = (
    "Personalize could not read the object: the service role (BULK_IMPORT_ROLE_ARN) must be trusted by "
    "personalize.amazonaws.com and allow s3:GetObject and s3:ListBucket on the ingest prefixes, and the bucket "
    "policy must allow the personalize.amazonaws.com principal the same (with SSE-KMS, the key policy must admit "
    "both). The stack deploys all of these when bulkImport is enabled; see docs/bulk-import.md."
)
GONE_HINT = "the object was deleted or replaced before the job read it; a replacement has its own result file"
HEADER_HINT = "the file's header does not match the dataset's schema; fix the columns and upload the file again"
FEW_HINT = "interactions files need at least 1,000 records for an incremental import; smaller files are streamed"
ENTITIES_VARIABLE = contract.TRACKER_ENTITIES
STOP_BEFORE_END_S = 30.0
"""A run stops this long before its timeout; the next run carries on (markers stay until a job is finished)."""
COUNT_CHECK_EVERY = 100_000
ROWS_NOT_COUNTED = "not counted: the file is too large to count within one tracker run; see estimatedRows"
ROWS_OF_GONE_OBJECT = (
    "not counted: the announced version was replaced or deleted after the job started, and the job read what was "
    "there when it ran; a replacement has its own result file"
)
BUCKET_VARIABLE = contract.TRACKER_BUCKET


@dataclass(slots=True)
class TrackingRun:
    """What one run of the tracker saw."""

    in_flight: int = 0
    imported: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "inFlight": self.in_flight,
            "imported": self.imported,
            "failed": self.failed,
            "errors": self.errors,
        }


def track(
    s3: Any,
    personalize: Any,
    bucket: str,
    entities: Iterable[Entity],
    time_left_s: Callable[[], float] | None = None,
) -> TrackingRun:
    """Advance every tracked job of ``entities`` in ``bucket``; ``time_left_s()`` stops the run early."""
    run = TrackingRun()
    for entity in entities:
        for marker_key in _markers(s3, bucket, entity):
            if time_left_s is not None and time_left_s() < STOP_BEFORE_END_S:
                logger.warning("tracker stopped for time; the next run carries on")
                return run
            try:
                _advance(s3, personalize, bucket, entity, marker_key, run, time_left_s)
            except (ClientError, BotoCoreError, ValueError, KeyError) as exc:
                # NOTE: one job's trouble (a throttled Describe, an unreadable marker) must not stop the others;
                # the marker stays and the next run tries again.
                run.errors.append(f"{marker_key}: {exc}")
                logger.error(
                    "tracking a job failed; retried next run", extra={"marker": marker_key, "error": str(exc)}
                )
    return run


def entities_from(names: str) -> list[Entity]:
    """``items,events`` -> the entities (unknown names raise KeyError naming them)."""
    return [ENTITIES[name.strip()] for name in names.split(",") if name.strip()]


def _markers(s3: Any, bucket: str, entity: Entity) -> Iterator[str]:
    prefix = result_key(entity.s3_prefix).removesuffix(".result.json") + MARKERS_DIRECTORY
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            yield str(entry["Key"])


def _advance(
    s3: Any,
    personalize: Any,
    bucket: str,
    entity: Entity,
    marker_key: str,
    run: TrackingRun,
    time_left_s: Callable[[], float] | None = None,
) -> None:
    marker = json.loads(s3.get_object(Bucket=bucket, Key=marker_key)["Body"].read())
    try:
        job = personalize.describe_dataset_import_job(datasetImportJobArn=marker["jobArn"])["datasetImportJob"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        job = {"status": CREATE_FAILED, "failureReason": "the import job no longer exists"}
    status = str(job.get("status", ""))
    if status not in FINISHED:
        run.in_flight += 1
        if marker.get("jobStatus") != status:
            marker["jobStatus"] = status
            _put_json(s3, bucket, result_key(marker["key"]), _result(marker, job, status=marker["status"]))
            _put_json(s3, bucket, marker_key, marker)
        return
    if status == ACTIVE:
        document = _result(marker, job, status=IMPORTED)
        document["rows"], note = _count_rows(s3, marker, time_left_s)
        if note is not None:
            document["rowsNote"] = note
        run.imported += 1
        metric = BULK_IMPORTS_SUCCEEDED
    else:
        document = _result(marker, job, status=IMPORT_FAILED)
        document["hint"] = _hint(s3, marker, str(job.get("failureReason", "")))
        run.failed += 1
        metric = BULK_IMPORTS_FAILED
    _put_json(s3, bucket, result_key(marker["key"]), document)
    s3.delete_object(Bucket=bucket, Key=marker_key)
    emit_count(metric, {ENTITY_DIMENSION: entity.name})
    logger.info(
        "import job finished: result file written",
        extra={"key": marker["key"], "job": marker["jobArn"], "status": status},
    )


def _result(marker: Mapping[str, Any], job: Mapping[str, Any], *, status: str) -> dict[str, Any]:
    keep = ("bucket", "key", "versionId", "etag", "route", "routeReason", "estimatedRows", "jobName", "jobArn")
    document: dict[str, Any] = {name: marker.get(name) for name in keep}
    created, updated = _epoch(job.get("creationDateTime")), _epoch(job.get("lastUpdatedDateTime"))
    document.update(
        status=status,
        jobStatus=job.get("status"),
        failureReason=job.get("failureReason"),
        sampledRows=marker.get("sampledRows"),
        timings={
            "submittedAt": marker.get("submittedAt"),
            "jobCreatedAt": created,
            "jobUpdatedAt": updated,
            "jobSeconds": round(updated - created, 3) if created is not None and updated is not None else None,
        },
    )
    return document


def _hint(s3: Any, marker: Mapping[str, Any], reason: str) -> str:
    if "Insufficient privileges" in reason:
        return ACCESS_HINT
    try:
        s3.head_object(
            Bucket=marker["bucket"],
            Key=marker["key"],
            **version_request(marker.get("versionId"), marker.get("etag")),
        )
    except ClientError:
        return GONE_HINT
    lowered = reason.lower()
    if "header" in lowered or "column" in lowered:
        return HEADER_HINT
    if "1000 records" in lowered:
        return FEW_HINT
    return "see failureReason; fix the file and upload it again"


def _count_rows(
    s3: Any, marker: Mapping[str, Any], time_left_s: Callable[[], float] | None
) -> tuple[int | None, str | None]:
    """(data rows of the imported object, None) - the CSV records after the header; (None, why) when the announced
    version is gone, or the run's time would not suffice to count it (a multi-gigabyte history)."""
    try:
        body = s3.get_object(
            Bucket=marker["bucket"],
            Key=marker["key"],
            **version_request(marker.get("versionId"), marker.get("etag")),
        )["Body"]
    except ClientError:
        return None, ROWS_OF_GONE_OBJECT
    records = 0

    def out_of_time() -> bool:
        return time_left_s is not None and time_left_s() < STOP_BEFORE_END_S

    try:
        if out_of_time():
            return None, ROWS_NOT_COUNTED
        text = io.TextIOWrapper(body, encoding="utf-8-sig", errors="replace", newline="")
        for cells in csv.reader(text):
            if cells and any(cell.strip() for cell in cells):
                records += 1
                if records % COUNT_CHECK_EVERY == 0 and out_of_time():
                    return None, ROWS_NOT_COUNTED
    finally:
        body.close()
    return max(0, records - 1), None


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


def _put_json(s3: Any, bucket: str, key: str, document: Mapping[str, Any]) -> None:
    s3.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document, indent=2).encode(), ContentType="application/json"
    )
