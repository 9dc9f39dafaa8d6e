"""The ``personalize`` control plane calls a bulk import uses, on the real wire protocol.

Protocol from botocore's model of ``personalize`` (2018-05-22): JSON 1.1, ``POST /`` with
``X-Amz-Target: AmazonPersonalize.<Operation>``, SigV4 with signing name ``personalize`` (the same as the events
API, so one credential check serves both). Errors answer HTTP 400 with ``__type`` naming the modelled error.

Served: CreateDatasetImportJob, DescribeDatasetImportJob, ListDatasetImportJobs, DescribeDataset, DescribeSchema.
The datasets are the emulator's dataset groups' (ITEMS, USERS, ACTIONS, plus an INTERACTIONS dataset behind every
event tracker and an ACTION_INTERACTIONS dataset behind every action tracker); a dataset has a schema ARN only
when its group was configured with a schema of that kind.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.model import ServiceModel

from emulator.datasets import Dataset, datasets_of
from emulator.imports import ImportJob, ImportJobs, ImportSettings, LimitExceeded
from emulator.signing import AuthError, SignedRequest, verify
from emulator.store import Call
from emulator.validation import check_shape

if TYPE_CHECKING:
    from emulator.import_data import Imported
    from emulator.service import Answer, Emulator

logger = logging.getLogger(__name__)

SERVICE_NAME = "personalize"
TARGET_PREFIX = "AmazonPersonalize."
CONTENT_TYPE = "application/x-amz-json-1.1"
_ENTITY_OF_TYPE = {
    "INTERACTIONS": ("events", None),
    "ACTION_INTERACTIONS": ("action_interactions", None),
    "ITEMS": ("items", "itemId"),
    "USERS": ("users", "userId"),
    "ACTIONS": ("actions", "actionId"),
}
"""Dataset type -> (store table, element member that marks a repeated id)."""


@cache
def service_model() -> ServiceModel:
    """botocore's model of the ``personalize`` control plane (loaded once)."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


class ControlPlaneError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ControlPlane:
    """Answers control-plane requests for one emulator; owns its import jobs."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.datasets = datasets_of(emulator.config)
        self.settings = ImportSettings.from_dict(emulator.config.import_jobs)
        self.jobs = ImportJobs(self.settings, self._store_rows, self._schema_of)
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateDatasetImportJob": self._create_dataset_import_job,
            "DescribeDatasetImportJob": self._describe_dataset_import_job,
            "ListDatasetImportJobs": self._list_dataset_import_jobs,
            "DescribeDataset": self._describe_dataset,
            "DescribeSchema": self._describe_schema,
        }

    def call(self, target: str, request: SignedRequest) -> Answer:
        """Answer one request whose ``X-Amz-Target`` is ``target``; log it in the call log."""
        from emulator.service import Answer, attempt_number, header_value

        request_id = str(uuid.uuid4())
        received_at = time.time()
        operation = target.removeprefix(TARGET_PREFIX)
        status, code, message = 200, None, None
        try:
            verify(
                request,
                self.emulator.config.credentials if self.emulator.config.verify_signatures else None,
                max_clock_skew_s=self.emulator.config.max_clock_skew_s,
            )
            handler = self._operations.get(operation)
            if handler is None:
                raise ControlPlaneError("UnknownOperationException", f"The emulator does not serve {operation}")
            body = self._decode(operation, request.body)
            answer = handler(body)
            return Answer(
                200, json.dumps(answer).encode(), {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id}
            )
        except AuthError as exc:
            status, code, message = 403, exc.code, exc.message
        except ControlPlaneError as exc:
            status, code, message = 400, exc.code, exc.message
        except Exception:
            logger.exception("%s %s failed inside the emulator", operation, request_id)
            status, code, message = 500, "InternalFailure", "The emulator failed; see its log."
        finally:
            self.emulator.store.add_call(
                Call(
                    request_id,
                    received_at,
                    operation,
                    None,
                    status,
                    code,
                    message,
                    0,
                    header_value(request, "amz-sdk-invocation-id"),
                    attempt_number(header_value(request, "amz-sdk-request")),
                )
            )
        payload = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id, "x-amzn-ErrorType": str(code)}
        return Answer(status, payload, headers)

    def reset(self) -> None:
        """Forget every import job; restore the configured import settings."""
        self.jobs.reset(self.settings)

    # ------------------------------------------------------------------------------------------------ requests

    @staticmethod
    def _decode(operation: str, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise ControlPlaneError("SerializationException", f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ControlPlaneError("SerializationException", "Request body must be a JSON object")
        problems: list[str] = []
        shape = service_model().operation_model(operation).input_shape
        assert shape is not None  # every served operation has an input
        check_shape(shape, body, "", problems)
        if problems:
            raise ControlPlaneError("InvalidInputException", "; ".join(problems))
        return body

    def _dataset(self, arn: str) -> Dataset:
        dataset = self.datasets.get(arn)
        if dataset is None:
            raise ControlPlaneError("ResourceNotFoundException", f"Could not find dataset {arn}")
        return dataset

    def _create_dataset_import_job(self, body: dict[str, Any]) -> dict[str, Any]:
        dataset = self._dataset(body["datasetArn"])
        name = body["jobName"]
        if self.jobs.by_name(name) is not None:
            raise ControlPlaneError("ResourceAlreadyExistsException", f"Dataset import job {name} already exists")
        location = (body.get("dataSource") or {}).get("dataLocation")
        if not location:
            raise ControlPlaneError("InvalidInputException", "dataSource.dataLocation is required")
        prefix = dataset.group_arn.split(":dataset-group/")[0]
        job = ImportJob(
            name=name,
            arn=f"{prefix}:dataset-import-job/{name}",
            dataset_arn=dataset.arn,
            dataset_type=dataset.dataset_type,
            data_location=location,
            role_arn=body.get("roleArn"),
            import_mode=body.get("importMode", "FULL"),
            created_at=time.time(),
        )
        try:
            self.jobs.create(job)
        except LimitExceeded as exc:
            raise ControlPlaneError("LimitExceededException", str(exc)) from exc
        return {"datasetImportJobArn": job.arn}

    def _describe_dataset_import_job(self, body: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(body["datasetImportJobArn"])
        if job is None:
            raise ControlPlaneError(
                "ResourceNotFoundException", f"Could not find dataset import job {body['datasetImportJobArn']}"
            )
        return {"datasetImportJob": job.describe()}

    def _list_dataset_import_jobs(self, body: dict[str, Any]) -> dict[str, Any]:
        jobs = self.jobs.listing(body.get("datasetArn"))
        token = body.get("nextToken")
        if token is not None and not str(token).isdigit():
            raise ControlPlaneError("InvalidNextTokenException", "The next token is invalid")
        start = int(token or 0)
        size = int(body.get("maxResults", 100))
        answer: dict[str, Any] = {"datasetImportJobs": [job.summary() for job in jobs[start : start + size]]}
        if start + size < len(jobs):
            answer["nextToken"] = str(start + size)
        return answer

    def _describe_dataset(self, body: dict[str, Any]) -> dict[str, Any]:
        dataset = self._dataset(body["datasetArn"])
        described: dict[str, Any] = {
            "name": f"{dataset.group}-{dataset.dataset_type.lower()}",
            "datasetArn": dataset.arn,
            "datasetGroupArn": dataset.group_arn,
            "datasetType": dataset.dataset_type,
            "status": "ACTIVE",
        }
        if dataset.schema_arn is not None:
            described["schemaArn"] = dataset.schema_arn
        if dataset.tracking_id is not None:
            described["trackingId"] = dataset.tracking_id
        return {"dataset": described}

    def _describe_schema(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = body["schemaArn"]
        dataset = next((d for d in self.datasets.values() if d.schema_arn == arn), None)
        if dataset is None or dataset.schema is None:
            raise ControlPlaneError("ResourceNotFoundException", f"Could not find schema {arn}")
        return {
            "schema": {
                "name": arn.rsplit("/", 1)[-1],
                "schemaArn": arn,
                "schema": json.dumps(dataset.schema),
                "domain": "",
            }
        }

    # ------------------------------------------------------------------------------------------------ jobs

    def _schema_of(self, dataset_arn: str) -> Mapping[str, Any] | None:
        dataset = self.datasets.get(dataset_arn)
        return dataset.schema if dataset is not None else None

    def _store_rows(self, job: ImportJob, imported: Imported) -> None:
        dataset = self.datasets[job.dataset_arn]
        table, key_member = _ENTITY_OF_TYPE[dataset.dataset_type]
        now = time.time()
        # Rows of one request (userId, sessionId of interactions) are stored together, in file order.
        batch: list[dict[str, Any]] = []
        batch_request: dict[str, Any] | None = None
        for request, element in [*imported.rows, (None, None)]:
            if request != batch_request and batch:
                self.emulator.store.add_records(
                    table,
                    request_id=job.arn,
                    received_at=now,
                    target=dataset.store_target,
                    request={**(batch_request or {}), "datasetImportJobArn": job.arn},
                    elements=batch,
                    key_member=key_member,
                )
                batch = []
            if element is None:
                break
            batch_request = request
            batch.append(element)
