"""The emulator's ``personalize`` control plane: dataset import jobs reading moto's S3, to unmodified boto3."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.config import DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle
from tests.support.bulk_import import (
    DEMO_INTERACTIONS_ARN,
    DEMO_ITEMS_ARN,
    SHOP_ITEMS_ARN,
    SHOP_ITEMS_SCHEMA,
    bulk_emulator,
    bulk_emulator_server,
    interactions_csv,
    items_csv,
    new_bucket,
    wait_for_job,
)

__all__ = ["bulk_emulator", "bulk_emulator_server"]


@pytest.fixture
def personalize(bulk_emulator: EmulatorHandle) -> Any:
    return boto3.client("personalize")


def create(personalize: Any, name: str, dataset: str, location: str, role: str | None, **extra: Any) -> str:
    request: dict[str, Any] = {
        "jobName": name,
        "datasetArn": dataset,
        "dataSource": {"dataLocation": location},
        "importMode": "INCREMENTAL",
        **extra,
    }
    if role is not None:
        request["roleArn"] = role
    return str(personalize.create_dataset_import_job(**request)["datasetImportJobArn"])


def test_job_moves_through_the_states_and_stores_rows_beside_streamed_ones(
    bulk_emulator: EmulatorHandle, personalize: Any
) -> None:
    # GIVEN an items file, the grants, and one item already streamed with PutItems
    bucket = new_bucket()
    bucket.put("items/catalogue.csv", items_csv(3))
    boto3.client("personalize-events").put_items(datasetArn=DEMO_ITEMS_ARN, items=[{"itemId": "streamed-1"}])
    bulk_emulator.set_import_jobs(pending_seconds=600, in_progress_seconds=600)
    # WHEN a job is created
    arn = create(
        personalize, "catalogue-1", DEMO_ITEMS_ARN, bucket.location("items/catalogue.csv"), bucket.role_arn
    )
    # THEN it is pending, then in progress, then active, as its time passes
    assert personalize.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"]["status"] == (
        "CREATE PENDING"
    )
    bulk_emulator.set_import_jobs(pending_seconds=0)
    assert personalize.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"]["status"] == (
        "CREATE IN_PROGRESS"
    )
    bulk_emulator.set_import_jobs(in_progress_seconds=0)
    job = wait_for_job(personalize, arn)
    assert job["status"] == "ACTIVE"
    assert job["importMode"] == "INCREMENTAL"
    assert job["dataSource"] == {"dataLocation": bucket.location("items/catalogue.csv")}
    assert arn.endswith(":dataset-import-job/catalogue-1")
    # AND the store holds the streamed item and the imported ones, in the same table
    rows = bulk_emulator.records("items", target=DEMO_ITEMS_ARN)
    assert [r["element"]["itemId"] for r in rows] == ["streamed-1", "item-0", "item-1", "item-2"]
    imported = rows[1]
    assert imported["request"] == {"datasetImportJobArn": arn}
    assert json.loads(imported["element"]["properties"]) == {"genres": "Comedy|Drama", "price": "0.5"}


def test_interactions_rows_are_stored_as_events_of_the_tracker(
    bulk_emulator: EmulatorHandle, personalize: Any
) -> None:
    bucket = new_bucket()
    bucket.put("events/history.csv", interactions_csv(1000))
    arn = create(
        personalize, "history", DEMO_INTERACTIONS_ARN, bucket.location("events/history.csv"), bucket.role_arn
    )
    assert wait_for_job(personalize, arn)["status"] == "ACTIVE"
    rows = bulk_emulator.records("events", target=DEFAULT_TRACKING_ID)
    assert len(rows) == 1000
    assert rows[0]["request"] == {"userId": "u-0", "datasetImportJobArn": arn}
    assert rows[0]["element"] == {"itemId": "i-0", "eventType": "click", "sentAt": 1764400000}


def test_repeated_job_name_is_refused(bulk_emulator: EmulatorHandle, personalize: Any) -> None:
    bucket = new_bucket()
    bucket.put("items/a.csv", items_csv(2))
    create(personalize, "same-name", DEMO_ITEMS_ARN, bucket.location("items/a.csv"), bucket.role_arn)
    with pytest.raises(ClientError) as refused:
        create(personalize, "same-name", DEMO_ITEMS_ARN, bucket.location("items/a.csv"), bucket.role_arn)
    assert refused.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"


def test_sixth_unfinished_job_exceeds_the_limit_until_one_ends(
    bulk_emulator: EmulatorHandle, personalize: Any
) -> None:
    # GIVEN five jobs pending
    bucket = new_bucket()
    bucket.put("items/a.csv", items_csv(2))
    bulk_emulator.set_import_jobs(pending_seconds=600)
    for n in range(5):
        create(personalize, f"job-{n}", DEMO_ITEMS_ARN, bucket.location("items/a.csv"), bucket.role_arn)
    # WHEN a sixth is created THEN LimitExceededException, as the service answers
    with pytest.raises(ClientError) as refused:
        create(personalize, "job-5", DEMO_ITEMS_ARN, bucket.location("items/a.csv"), bucket.role_arn)
    assert refused.value.response["Error"]["Code"] == "LimitExceededException"
    assert "More than 5 resources with PENDING or IN_PROGRESS status" in refused.value.response["Error"]["Message"]
    # AND once the five have ended, the sixth is accepted
    bulk_emulator.set_import_jobs(pending_seconds=0, in_progress_seconds=0)
    arn = create(personalize, "job-5", DEMO_ITEMS_ARN, bucket.location("items/a.csv"), bucket.role_arn)
    assert wait_for_job(personalize, arn)["status"] == "ACTIVE"
    listed = personalize.list_dataset_import_jobs(datasetArn=DEMO_ITEMS_ARN, maxResults=4)
    assert len(listed["datasetImportJobs"]) == 4 and "nextToken" in listed
    rest = personalize.list_dataset_import_jobs(datasetArn=DEMO_ITEMS_ARN, nextToken=listed["nextToken"])
    names = {j["jobName"] for j in listed["datasetImportJobs"] + rest["datasetImportJobs"]}
    assert names == {f"job-{n}" for n in range(6)}
    calls = bulk_emulator.calls("CreateDatasetImportJob")
    # (botocore retries LimitExceededException as a throttling error: every attempt is the same refused call)
    assert len({c["invocationId"] for c in calls if c["errorCode"] == "LimitExceededException"}) == 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no bucket policy", "Insufficient privileges for accessing data in Amazon S3"),
        ("no role", "Insufficient privileges for accessing data in Amazon S3"),
        ("deleted object", "No input data found"),
        ("missing id column", "missing the following columns: [ITEM_ID]"),
        ("empty file", "is empty"),
        ("bad number", "column PRICE must be a float"),
    ],
)
def test_jobs_fail_with_the_services_kinds_of_reasons(
    bulk_emulator: EmulatorHandle, personalize: Any, case: str, reason: str
) -> None:
    bucket = new_bucket(grant=case != "no bucket policy")
    body = {
        "missing id column": items_csv(2, header="GENRES,ITEM,PRICE"),
        "empty file": b"ITEM_ID,GENRES,PRICE\n",
        "bad number": b"ITEM_ID,GENRES,PRICE\nitem-1,Comedy,cheap\n",
    }.get(case, items_csv(2))
    bucket.put("items/a.csv", body)
    bulk_emulator.set_import_jobs(pending_seconds=600)
    role = None if case == "no role" else bucket.role_arn
    arn = create(personalize, "failing", SHOP_ITEMS_ARN, bucket.location("items/a.csv"), role)
    if case == "deleted object":
        bucket.s3.delete_object(Bucket=bucket.name, Key="items/a.csv")
    bulk_emulator.set_import_jobs(pending_seconds=0)
    job = wait_for_job(personalize, arn)
    assert job["status"] == "CREATE FAILED"
    assert reason in job["failureReason"]
    assert bulk_emulator.records("items", target=SHOP_ITEMS_ARN) == []


def test_unknown_column_fails_against_the_schema_and_few_interactions_fail_incremental(
    bulk_emulator: EmulatorHandle, personalize: Any
) -> None:
    bucket = new_bucket()
    bucket.put("items/a.csv", items_csv(2, header="ITEM_ID,GENRES,COLOUR"))
    bucket.put("events/few.csv", interactions_csv(999))
    unknown = create(personalize, "unknown", SHOP_ITEMS_ARN, bucket.location("items/a.csv"), bucket.role_arn)
    few = create(personalize, "few", DEMO_INTERACTIONS_ARN, bucket.location("events/few.csv"), bucket.role_arn)
    assert "unknown column(s) [COLOUR]" in wait_for_job(personalize, unknown)["failureReason"]
    assert "needs at least 1000 records" in wait_for_job(personalize, few)["failureReason"]


def test_a_replaced_object_is_read_as_it_is_when_the_job_runs(
    bulk_emulator: EmulatorHandle, personalize: Any
) -> None:
    bucket = new_bucket()
    bucket.put("items/a.csv", items_csv(2))
    bulk_emulator.set_import_jobs(pending_seconds=600)
    arn = create(personalize, "replaced", DEMO_ITEMS_ARN, bucket.location("items/a.csv"), bucket.role_arn)
    bucket.put("items/a.csv", items_csv(1, start=7))
    bulk_emulator.set_import_jobs(pending_seconds=0)
    assert wait_for_job(personalize, arn)["status"] == "ACTIVE"
    assert [r["element"]["itemId"] for r in bulk_emulator.records("items")] == ["item-7"]


def test_datasets_and_schemas_are_described(bulk_emulator: EmulatorHandle, personalize: Any) -> None:
    shop = personalize.describe_dataset(datasetArn=SHOP_ITEMS_ARN)["dataset"]
    assert shop["datasetType"] == "ITEMS" and shop["status"] == "ACTIVE"
    schema = personalize.describe_schema(schemaArn=shop["schemaArn"])["schema"]
    assert json.loads(schema["schema"]) == SHOP_ITEMS_SCHEMA
    demo = personalize.describe_dataset(datasetArn=DEMO_INTERACTIONS_ARN)["dataset"]
    assert demo["trackingId"] == DEFAULT_TRACKING_ID and "schemaArn" not in demo
    with pytest.raises(ClientError) as missing:
        personalize.describe_dataset(datasetArn=DEMO_ITEMS_ARN.replace("demo", "nowhere"))
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as invalid:
        personalize.create_dataset_import_job(
            jobName="-starts-with-a-dash", datasetArn=DEMO_ITEMS_ARN, dataSource={"dataLocation": "s3://b/k"}
        )
    assert invalid.value.response["Error"]["Code"] == "InvalidInputException"


def test_unsigned_control_plane_request_is_refused(bulk_emulator: EmulatorHandle) -> None:
    from tests.integration.emulator.conftest import raw_post

    answer = raw_post(bulk_emulator.url, "/", {"datasetArn": DEMO_ITEMS_ARN}, access_key=None)
    assert answer.status in (403, 404)


def test_import_settings_come_from_the_configuration_file(tmp_path: Any) -> None:
    from emulator.config import load_config
    from emulator.imports import ImportSettings

    path = tmp_path / "emulator.json"
    path.write_text(json.dumps({"importJobs": {"pendingSeconds": 3, "checkAccess": False}}))
    settings = ImportSettings.from_dict(load_config(path).import_jobs)
    assert (settings.pending_s, settings.in_progress_s, settings.check_access) == (3.0, 2.0, False)
