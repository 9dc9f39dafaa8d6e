"""Import jobs in the Personalize control plane: their names, starting one, finding it again, the dataset's schema.

Every call the import route and the tracker make to ``personalize`` goes through :func:`client` (one small factory,
so a shared client factory can replace it).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from personalize_ingest.bulk_checks import parse_schema
from personalize_ingest.bulk_routing import BulkImportSettings
from personalize_ingest.clients import control_plane_client, support_client
from personalize_ingest.entities import Entity

if TYPE_CHECKING:
    from personalize_ingest.deadline import Deadline
    from personalize_ingest.sources import ObjectRef

ACTIVE = "ACTIVE"
CREATE_FAILED = "CREATE FAILED"
JOB_NAME_PREFIX = "ingest-"
CONTROL_PLANE_ATTEMPTS = 2
"""NOTE: botocore retries LimitExceededException as throttling; a second try within a second cannot free a job
slot (jobs run for minutes), so the file waits instead."""
_NAME_LIMIT = 63
_schemas: dict[str, Mapping[str, Any] | None] = {}
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class StartedJob:
    """The import job of an object: just created, or found (``existed``) with its ``status`` then."""

    arn: str
    existed: bool
    status: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in (ACTIVE, CREATE_FAILED)


class JobNotListed(RuntimeError):
    """CreateDatasetImportJob says the job exists, but ListDatasetImportJobs does not show it (yet)."""


def start_job(personalize: Any, settings: BulkImportSettings, entity: Entity, ref: ObjectRef) -> StartedJob:
    """CreateDatasetImportJob for ``ref`` (INCREMENTAL), or the job a redelivery of ``ref`` already started.

    Raises ClientError as Personalize answers it (LimitExceededException included), and JobNotListed.
    """
    name = job_name(entity, ref)
    try:
        answer = personalize.create_dataset_import_job(
            jobName=name,
            datasetArn=settings.dataset_arn,
            dataSource={"dataLocation": f"s3://{ref.bucket}/{ref.key}"},
            roleArn=settings.role_arn,
            importMode="INCREMENTAL",
        )
        return StartedJob(str(answer["datasetImportJobArn"]), existed=False)
    except ClientError as exc:
        if _code(exc) != "ResourceAlreadyExistsException":
            raise
    for page in personalize.get_paginator("list_dataset_import_jobs").paginate(datasetArn=settings.dataset_arn):
        for job in page.get("datasetImportJobs", []):
            if job.get("jobName") == name:
                return StartedJob(str(job["datasetImportJobArn"]), existed=True, status=job.get("status"))
    raise JobNotListed(f"import job {name} exists but is not listed for {settings.dataset_arn}")


def job_name(entity: Entity, ref: ObjectRef) -> str:
    """Deterministic job name from bucket, key and version (or ETag): the same object gives the same name."""
    prefix = f"{JOB_NAME_PREFIX}{entity.name.replace('_', '-')}-"
    identity = "\x1f".join((ref.bucket, ref.key, ref.version_id or "", ref.etag or ""))
    return prefix + hashlib.sha256(identity.encode()).hexdigest()[: _NAME_LIMIT - len(prefix)]


def dataset_schema(personalize: Any, dataset_arn: str) -> Mapping[str, Any] | None:
    """The dataset's Avro schema (DescribeDataset, DescribeSchema), cached for the container; None without one."""
    with _lock:
        if dataset_arn in _schemas:
            return _schemas[dataset_arn]
    dataset = personalize.describe_dataset(datasetArn=dataset_arn)["dataset"]
    schema = None
    if dataset.get("schemaArn"):
        schema = parse_schema(personalize.describe_schema(schemaArn=dataset["schemaArn"])["schema"]["schema"])
    with _lock:
        _schemas[dataset_arn] = schema
    return schema


def client(service: str, deadline: Deadline) -> Any:
    """The container's ``s3``, ``sqs`` or ``personalize`` client (personalize_ingest.clients: one botocore session
    per container): ``personalize`` is the control plane's, the others have timeouts fitting the time left."""
    if service == "personalize":
        return control_plane_client(service, attempts=CONTROL_PLANE_ATTEMPTS)
    return support_client(service, deadline)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
