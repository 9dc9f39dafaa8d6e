"""Dataset import jobs: created, moved through the service's states over time, read from S3, stored.

A job goes CREATE PENDING -> CREATE IN_PROGRESS -> ACTIVE or CREATE FAILED. It reads its input when it enters
CREATE IN_PROGRESS (an object deleted or replaced while the job is pending is read as it is then, like the
service), and stores the imported rows in the same tables as the streamed records when it ends ACTIVE. Jobs advance
on a background thread while any is unfinished, and on every control-plane request.

NOTE: at most 5 import jobs may be pending or in progress per region, not adjustable (developer guide quotas):
CreateDatasetImportJob answers LimitExceededException beyond that.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from emulator.import_access import access_problem
from emulator.import_data import ACCESS_DENIED, Imported, ImportFailed, parse_location, read_import

logger = logging.getLogger(__name__)

PENDING = "CREATE PENDING"
IN_PROGRESS = "CREATE IN_PROGRESS"
ACTIVE = "ACTIVE"
FAILED = "CREATE FAILED"
MAX_UNFINISHED_JOBS = 5
_TICK_S = 0.02


@dataclass(frozen=True)
class ImportSettings:
    """How import jobs behave; the ``importJobs`` object of the configuration file (camelCase keys)."""

    pending_s: float = 1.0
    """Seconds a job stays CREATE PENDING."""
    in_progress_s: float = 2.0
    """Seconds a job stays CREATE IN_PROGRESS (it reads its input when it enters this state)."""
    s3_endpoint_url: str | None = None
    """Where jobs read their input (and check IAM/bucket policies); None = ``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL`` of the emulator's environment."""
    check_access: bool = True
    """Fail jobs whose role or bucket policy does not grant Personalize read access (see import_access)."""
    max_unfinished_jobs: int = MAX_UNFINISHED_JOBS

    def as_dict(self) -> dict[str, Any]:
        return {
            "pendingSeconds": self.pending_s,
            "inProgressSeconds": self.in_progress_s,
            "s3EndpointUrl": self.s3_endpoint_url,
            "checkAccess": self.check_access,
            "maxUnfinishedJobs": self.max_unfinished_jobs,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> ImportSettings:
        raw = dict(raw or {})
        known = {"pendingSeconds", "inProgressSeconds", "s3EndpointUrl", "checkAccess", "maxUnfinishedJobs"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"importJobs: unknown setting(s) {sorted(unknown)}; use {sorted(known)}")
        return cls(
            pending_s=float(raw.get("pendingSeconds", cls.pending_s)),
            in_progress_s=float(raw.get("inProgressSeconds", cls.in_progress_s)),
            s3_endpoint_url=raw.get("s3EndpointUrl"),
            check_access=bool(raw.get("checkAccess", True)),
            max_unfinished_jobs=int(raw.get("maxUnfinishedJobs", MAX_UNFINISHED_JOBS)),
        )


@dataclass
class ImportJob:
    """One dataset import job as DescribeDatasetImportJob shows it."""

    name: str
    arn: str
    dataset_arn: str
    dataset_type: str
    data_location: str
    role_arn: str | None
    import_mode: str
    created_at: float
    status: str = PENDING
    updated_at: float = 0.0
    failure_reason: str | None = None
    imported: Imported | None = field(default=None, repr=False)
    read_done: bool = False
    """The input was read (or failed to be); the job may end once its in-progress time is over."""

    @property
    def unfinished(self) -> bool:
        return self.status in (PENDING, IN_PROGRESS)

    def describe(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "jobName": self.name,
            "datasetImportJobArn": self.arn,
            "datasetArn": self.dataset_arn,
            "dataSource": {"dataLocation": self.data_location},
            "status": self.status,
            "creationDateTime": self.created_at,
            "lastUpdatedDateTime": self.updated_at or self.created_at,
            "importMode": self.import_mode,
            "publishAttributionMetricsToS3": False,
        }
        if self.role_arn:
            document["roleArn"] = self.role_arn
        if self.failure_reason:
            document["failureReason"] = self.failure_reason
        return document

    def summary(self) -> dict[str, Any]:
        full = self.describe()
        keys = ("datasetImportJobArn", "jobName", "status", "creationDateTime", "lastUpdatedDateTime")
        summary = {key: full[key] for key in keys}
        summary["importMode"] = self.import_mode
        if self.failure_reason:
            summary["failureReason"] = self.failure_reason
        return summary


class LimitExceeded(Exception):
    """More than the allowed number of jobs would be pending or in progress."""


Store = Callable[[ImportJob, Imported], None]
"""Stores a finished job's rows (given by the control plane: it knows the tables and targets)."""
SchemaOf = Callable[[str], Mapping[str, Any] | None]
"""Dataset ARN -> its Avro schema, or None when the emulator was given none."""


class ImportJobs:
    """Every import job of the emulator (one region), advanced over time."""

    def __init__(self, settings: ImportSettings, store: Store, schema_of: SchemaOf) -> None:
        self.settings = settings
        self._store = store
        self._schema_of = schema_of
        self._jobs: dict[str, ImportJob] = {}
        self._lock = threading.RLock()
        self._ticker: threading.Thread | None = None
        self._working: set[str] = set()
        """Jobs being read or stored right now (outside the lock)."""
        self._clients: dict[str, Any] = {}

    def create(self, job: ImportJob) -> ImportJob:
        """Register a new job (names are unique per region; the caller checked).

        Raises
        ------
        LimitExceeded
            when ``max_unfinished_jobs`` jobs are pending or in progress.
        """
        self.advance()
        with self._lock:
            unfinished = sum(1 for j in self._jobs.values() if j.unfinished)
            if unfinished >= self.settings.max_unfinished_jobs:
                raise LimitExceeded(
                    f"More than {self.settings.max_unfinished_jobs} resources with PENDING or IN_PROGRESS status."
                )
            self._jobs[job.arn] = job
            if self._ticker is None or not self._ticker.is_alive():
                self._ticker = threading.Thread(target=self._tick, name="import-jobs", daemon=True)
                self._ticker.start()
            return job

    def get(self, arn: str) -> ImportJob | None:
        self.advance()
        with self._lock:
            return self._jobs.get(arn)

    def by_name(self, name: str) -> ImportJob | None:
        with self._lock:
            return next((job for job in self._jobs.values() if job.name == name), None)

    def listing(self, dataset_arn: str | None) -> list[ImportJob]:
        """Jobs of ``dataset_arn`` (or all), newest first, as ListDatasetImportJobs orders them."""
        self.advance()
        with self._lock:
            jobs = [j for j in self._jobs.values() if dataset_arn is None or j.dataset_arn == dataset_arn]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def reset(self, settings: ImportSettings) -> None:
        """Forget every job and restore the starting ``settings`` (an emulator reset)."""
        with self._lock:
            self._jobs.clear()
        self.change(settings)

    def change(self, settings: ImportSettings) -> None:
        """Use ``settings`` from now on (jobs keep their creation time: a shorter pending time moves them on)."""
        with self._lock:
            if settings.s3_endpoint_url != self.settings.s3_endpoint_url:
                self._clients.clear()
            self.settings = settings
        self.advance()

    def advance(self, now: float | None = None) -> None:
        """Move every job to the state its age says it is in, reading and storing as states are entered.

        The reading and storing run outside the lock (a large file takes seconds), so requests keep being
        answered meanwhile; a job stays CREATE IN_PROGRESS until its rows are stored.
        """
        while True:
            with self._lock:
                moment = time.time() if now is None else now
                to_read, to_finish = [], []
                for job in self._jobs.values():
                    if job.arn in self._working:
                        continue
                    if job.status == PENDING and moment >= job.created_at + self.settings.pending_s:
                        job.status, job.updated_at = IN_PROGRESS, moment
                        to_read.append(job)
                    elif (
                        job.status == IN_PROGRESS
                        and job.read_done
                        and moment >= job.updated_at + self.settings.in_progress_s
                    ):
                        to_finish.append(job)
                self._working.update(job.arn for job in to_read + to_finish)
            if not to_read and not to_finish:
                return
            try:
                for job in to_read:
                    self._read(job)
                    job.read_done = True
                for job in to_finish:
                    self._finish(job, moment)
            finally:
                with self._lock:
                    self._working.difference_update(job.arn for job in to_read + to_finish)

    def _read(self, job: ImportJob) -> None:
        try:
            job.imported = self._read_input(job)
        except ImportFailed as exc:
            job.failure_reason = str(exc)
        except Exception as exc:  # whatever the input does, the job ends failed, not the emulator
            logger.exception("import job %s could not read its input", job.name)
            job.failure_reason = f"Failed to read the input data at {job.data_location}: {exc.__class__.__name__}"

    def _read_input(self, job: ImportJob) -> Imported:
        bucket, key = parse_location(job.data_location)
        s3 = self._client("s3")
        if self.settings.check_access:
            problem = access_problem(self._client("iam"), s3, job.role_arn, bucket, key)
            if problem is not None:
                raise ImportFailed(f"{ACCESS_DENIED.format(location=job.data_location)} ({problem})")
        schema = self._schema_of(job.dataset_arn)
        return read_import(s3, job.data_location, job.dataset_type, schema, job.import_mode == "INCREMENTAL")

    def _finish(self, job: ImportJob, now: float) -> None:
        with self._lock:
            if self._jobs.get(job.arn) is not job:
                return  # forgotten by a reset while it was read
        if job.failure_reason is not None or job.imported is None:
            job.updated_at = now
            job.status = FAILED
            job.failure_reason = job.failure_reason or "The input data could not be read."
            logger.info("import job %s failed: %s", job.name, job.failure_reason)
            return
        try:
            self._store(job, job.imported)
        except Exception as exc:  # a store error fails the job visibly
            logger.exception("import job %s could not store its rows", job.name)
            job.status, job.failure_reason = FAILED, f"Internal failure while loading the data: {exc}"
            return
        logger.info("import job %s active: %d rows", job.name, len(job.imported.rows))
        job.imported = None
        job.status, job.updated_at = ACTIVE, max(now, time.time())

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            endpoint = (
                self.settings.s3_endpoint_url
                or os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
                or os.environ.get("AWS_ENDPOINT_URL")
            )
            client = self._clients[service] = boto3.client(
                service,  # type: ignore[call-overload]
                endpoint_url=endpoint,
                region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                config=Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=5),
            )
        return client

    def _tick(self) -> None:
        while True:
            time.sleep(_TICK_S)
            self.advance()
            with self._lock:
                if not any(job.unfinished for job in self._jobs.values()):
                    self._ticker = None
                    return
