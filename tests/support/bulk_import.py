"""Bulk import test support: an emulator whose import jobs read moto's S3, and the grants Personalize needs.

The grants are the documents the stack deploys (infrastructure/personalize_access.py), put on moto's IAM and S3,
so the emulator's access check judges exactly what the stack would give Personalize.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from emulator.config import EmulatorConfig, dataset_arn, default_config, default_group
from emulator.testing import EmulatorHandle, running_emulator
from infrastructure.personalize_access import bucket_policy, role_policy, trust_policy
from tests.support.schemas import SHOP_ITEMS_SCHEMA

SHOP_GROUP = "shop"

SHOP_ITEMS_ARN = dataset_arn(SHOP_GROUP, "ITEMS")
DEMO_ITEMS_ARN = dataset_arn("demo", "ITEMS")
DEMO_INTERACTIONS_ARN = dataset_arn("demo", "INTERACTIONS")
FAST_JOBS = {"pendingSeconds": 0.05, "inProgressSeconds": 0.05}
"""Import jobs finish within a tenth of a second: tests poll for the end state, never time it."""
TERMINAL = ("ACTIVE", "CREATE FAILED")


def bulk_config(moto_url: str) -> EmulatorConfig:
    """The ``demo`` group, plus ``shop`` whose ITEMS dataset has a schema; import jobs read moto's S3."""
    config = default_config()
    shop = default_group()
    config.groups = [
        config.groups[0],
        type(shop)(
            name=SHOP_GROUP,
            tracking_id=None,
            action_tracking_id=None,
            datasets={"ITEMS": SHOP_ITEMS_ARN},
            schemas={"ITEMS": SHOP_ITEMS_SCHEMA},
        ),
    ]
    config.import_jobs = {**FAST_JOBS, "s3EndpointUrl": moto_url}
    return config


@pytest.fixture(scope="module")
def bulk_emulator_server(moto_url: str) -> Iterator[EmulatorHandle]:
    """An emulator for this module whose import jobs read the session's moto server."""
    with running_emulator(bulk_config(moto_url)) as handle:
        yield handle


@pytest.fixture
def bulk_emulator(
    bulk_emulator_server: EmulatorHandle, moto_env: str, monkeypatch: pytest.MonkeyPatch
) -> EmulatorHandle:
    """The module's emulator, reset, with boto3's personalize and personalize-events endpoints pointing at it."""
    bulk_emulator_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE", bulk_emulator_server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", bulk_emulator_server.url)
    return bulk_emulator_server


@dataclass
class Bucket:
    """A fresh moto bucket and the service role Personalize would assume to read it."""

    name: str
    role_arn: str
    s3: Any

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        return dict(self.s3.put_object(Bucket=self.name, Key=key, Body=body))

    def location(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def result(self, key: str) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=self.name, Key=f"results/{key}.result.json")["Body"].read()
        return dict(json.loads(body))


def new_bucket(prefixes: Sequence[str] = ("items/", "events/"), *, grant: bool = True) -> Bucket:
    """Create a bucket; with ``grant`` also the service role and the bucket policy the stack deploys."""
    s3, iam = boto3.client("s3"), boto3.client("iam")
    name = f"ingest-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    role_name = f"personalize-import-{name}"
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust_policy()))["Role"][
        "Arn"
    ]
    if grant:
        bucket_arn = f"arn:aws:s3:::{name}"
        iam.put_role_policy(
            RoleName=role_name,
            PolicyName="read-ingest",
            PolicyDocument=json.dumps(role_policy(bucket_arn, prefixes)),
        )
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(bucket_policy(bucket_arn, prefixes)))
    return Bucket(name, role_arn, s3)


def items_csv(rows: int, *, header: str = "ITEM_ID,GENRES,PRICE", start: int = 0) -> bytes:
    lines = [header] + [f"item-{n},Comedy|Drama,{n % 50}.5" for n in range(start, start + rows)]
    return ("\n".join(lines) + "\n").encode()


def interactions_csv(rows: int, users: int = 40) -> bytes:
    lines = ["USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP"]
    lines += [f"u-{n % users},i-{n},click,{1764400000 + n}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def wait_for_job(personalize: Any, job_arn: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll DescribeDatasetImportJob until the job is ACTIVE or CREATE FAILED; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = dict(personalize.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"])
        if job["status"] in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.02)
