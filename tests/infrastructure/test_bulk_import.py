"""The import route's resources: service role, bucket policy for Personalize, function grants, tracker, alarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match
from cfnlint.api import ManualArgs, lint_file

from infrastructure.config_loader import ConfigError, parse
from tests.infrastructure.conftest import Synthesized, sample_context, synthesize

INTERACTIONS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/INTERACTIONS"


def bulk_context() -> dict[str, Any]:
    """The sample configuration with the import route on for items and events."""
    personalize = sample_context()["personalize"]
    personalize["entities"]["items"]["bulkImport"] = {"minRows": 50000, "minBytes": 20_000_000}
    personalize["entities"]["events"]["bulkImport"] = {"datasetArn": INTERACTIONS_ARN, "minRows": 2_000_000}
    return personalize


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("bulk"), bulk_context())


def ingest_bucket_id(bulk: Synthesized) -> str:
    (bucket_id,) = [k for k in bulk.resources("AWS::S3::Bucket") if k.startswith("IngestBucket")]
    return bucket_id


def objects(bucket_id: str, prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{prefix}*"]]}


def role_with_principal(bulk: Synthesized, principal: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, v)
        for k, v in bulk.resources("AWS::IAM::Role").items()
        if v["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": principal}
    ]
    return found


def statements_of(bulk: Synthesized, role_id: str) -> list[dict[str, Any]]:
    found = []
    for policy in bulk.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_service_role_is_trusted_by_personalize_and_reads_exactly_the_ingest_prefixes(bulk: Synthesized) -> None:
    bucket = ingest_bucket_id(bulk)
    _, role = role_with_principal(bulk, "personalize.amazonaws.com")
    (inline,) = role["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in inline["PolicyDocument"]["Statement"]}
    get = statements["PersonalizeReadsIngestObjects"]
    assert get["Action"] == "s3:GetObject" and get["Effect"] == "Allow"
    assert get["Resource"] == [objects(bucket, "events/"), objects(bucket, "items/")]
    listing = statements["PersonalizeListsIngestPrefixes"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["events/*", "items/*"]}}


def test_bucket_policy_admits_the_personalize_principal_to_the_ingest_prefixes_only(bulk: Synthesized) -> None:
    bucket = ingest_bucket_id(bulk)
    (policy,) = [
        p for p in bulk.resources("AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    statements = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "personalize.amazonaws.com"}
    ]
    assert {s["Action"] for s in statements} == {"s3:GetObject", "s3:ListBucket"}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        if statement["Action"] == "s3:GetObject":
            assert statement["Resource"] == [objects(bucket, "events/"), objects(bucket, "items/")]
        else:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["events/*", "items/*"]}}
    # The bucket still refuses anything but TLS (the hardened bucket's own statement survives).
    assert any(s.get("Effect") == "Deny" for s in policy["Properties"]["PolicyDocument"]["Statement"])


def test_ingest_functions_get_the_route_settings_and_only_the_calls_it_makes(bulk: Synthesized) -> None:
    service_role_id, _ = role_with_principal(bulk, "personalize.amazonaws.com")
    items_function = bulk.raw["Resources"][bulk.logical_id("AWS::Lambda::Function", "items", "function")]
    variables = items_function["Properties"]["Environment"]["Variables"]
    assert variables["BULK_IMPORT_ENABLED"] == "true"
    assert variables["BULK_IMPORT_DATASET_ARN"] == "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS"
    assert variables["BULK_IMPORT_ROLE_ARN"] == {"Fn::GetAtt": [service_role_id, "Arn"]}
    assert (variables["BULK_IMPORT_MIN_ROWS"], variables["BULK_IMPORT_MIN_BYTES"]) == ("50000", "20000000")
    users_function = bulk.raw["Resources"][bulk.logical_id("AWS::Lambda::Function", "users", "function")]
    assert "BULK_IMPORT_ENABLED" not in users_function["Properties"]["Environment"]["Variables"]

    statements = {s.get("Sid"): s for s in statements_of(bulk, bulk.logical_id("AWS::IAM::Role", "items", "role"))}
    assert statements["StartImportJobs"]["Resource"] == [
        "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS",
        "arn:aws:personalize:us-east-1:123456789012:dataset-import-job/ingest-items-*",
    ]
    assert statements["PassImportRole"] == {
        "Sid": "PassImportRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": {"Fn::GetAtt": [service_role_id, "Arn"]},
        "Condition": {"StringEquals": {"iam:PassedToService": "personalize.amazonaws.com"}},
    }
    events_statements = {
        s.get("Sid"): s for s in statements_of(bulk, bulk.logical_id("AWS::IAM::Role", "events", "role"))
    }
    assert events_statements["StartImportJobs"]["Resource"][0] == INTERACTIONS_ARN


def test_tracker_runs_every_minute_with_least_privilege(bulk: Synthesized) -> None:
    bucket = ingest_bucket_id(bulk)
    ((tracker_id, tracker),) = [
        (k, v)
        for k, v in bulk.resources("AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == "import_tracker.handler.lambda_handler"
    ]
    assert tracker["Properties"]["Environment"]["Variables"]["BULK_IMPORT_ENTITIES"] == "events,items"
    assert tracker["Properties"]["ReservedConcurrentExecutions"] == 1
    # built as the ingest functions are: the same code asset (Powertools bundled, no layer), runtime,
    # architecture, and a log group kept or deleted as theirs are
    (items_function,) = [
        v
        for v in bulk.resources("AWS::Lambda::Function").values()
        if v["Properties"].get("Handler") == "items.handler.lambda_handler"
    ]
    for key in ("Code", "Runtime", "Architectures"):
        assert tracker["Properties"][key] == items_function["Properties"][key], key
    assert "Layers" not in tracker["Properties"]
    log_groups = bulk.resources("AWS::Logs::LogGroup")
    tracker_logs = log_groups[tracker["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
    items_logs = log_groups[items_function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
    assert tracker_logs["DeletionPolicy"] == items_logs["DeletionPolicy"]
    bulk.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(1 minute)",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [tracker_id, "Arn"]}})],
        },
    )
    role_id = tracker["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = {s["Sid"]: s for s in statements_of(bulk, role_id) if "Sid" in s}
    assert statements["DescribeImportJobs"]["Action"] == "personalize:DescribeDatasetImportJob"
    assert statements["DescribeImportJobs"]["Resource"] == (
        "arn:aws:personalize:us-east-1:123456789012:dataset-import-job/ingest-*"
    )
    assert statements["ListMarkers"]["Condition"] == {
        "StringLike": {"s3:prefix": ["results/events/.import-jobs/*", "results/items/.import-jobs/*"]}
    }
    assert statements["ConsumeMarkers"]["Resource"] == [
        objects(bucket, "results/events/.import-jobs/"),
        objects(bucket, "results/items/.import-jobs/"),
    ]
    assert statements["WriteResults"]["Resource"] == [
        objects(bucket, "results/events/"),
        objects(bucket, "results/items/"),
    ]
    every_action = {
        a
        for s in statements_of(bulk, role_id)
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not any(a.startswith("personalize:Create") or a == "s3:*" for a in every_action)


def test_failed_imports_raise_an_alarm_per_entity(bulk: Synthesized) -> None:
    (topic_id,) = bulk.resources("AWS::SNS::Topic")
    failed = [
        a
        for a in bulk.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "BulkImportsFailed"
    ]
    assert len(failed) == 2
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": topic_id}] for a in failed)
    for entity in ("items", "events"):
        bulk.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": "BulkImportsFailed",
                "Namespace": "PersonalizeIngest",
                "Dimensions": [{"Name": "entity", "Value": entity}],
                "Statistic": "Sum",
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        )


def test_the_dashboard_graphs_every_outcome_of_the_route(bulk: Synthesized) -> None:
    (dashboard,) = bulk.resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "import route: files by outcome" in body
    for name in ("BulkImportsStarted", "BulkImportsRefused", "BulkImportsWaiting", "BulkImportsSucceeded"):
        assert name in body
    assert "BulkImportsFailed" in body


def test_cdk_nag_and_cfn_lint_are_clean_with_the_route_on(bulk: Synthesized) -> None:
    (report,) = bulk.validation_report["pluginReports"]
    assert report["violations"] == []
    for finding in report["suppressedViolations"]:
        assert len(finding["reason"]) > 40, finding["ruleName"]
    matches = lint_file(
        Path(bulk.outdir / "PersonalizeIngest.template.json"), config=ManualArgs(ignore_checks=["W3005"])
    )
    assert [str(m) for m in matches] == []


def test_without_the_route_nothing_is_added(tmp_path: Path) -> None:
    personalize = sample_context()["personalize"]
    for entity in personalize["entities"].values():
        entity.pop("bulkImport", None)
    plain = synthesize(tmp_path, personalize)
    assert not [
        r
        for r in plain.resources("AWS::IAM::Role").values()
        if "personalize.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert not [
        f
        for f in plain.resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "import_tracker.handler.lambda_handler"
    ]


@pytest.mark.parametrize(
    ("entity", "value", "message"),
    [
        ("events", True, "entities.events.bulkImport.datasetArn: expected the ARN of the INTERACTIONS dataset"),
        (
            "items",
            {"datasetArn": INTERACTIONS_ARN},
            "items.bulkImport.datasetArn: expected the ARN of the ITEMS dataset",
        ),
        ("items", {"minRows": 0}, "entities.items.bulkImport.minRows: expected an integer from 1"),
        ("items", {"treshold": 5}, "entities.items.bulkImport.treshold: unknown key"),
        ("items", "yes", 'entities.items.bulkImport: expected true, false or a JSON object, got "yes"'),
    ],
)
def test_invalid_bulk_import_settings_are_refused_by_name(entity: str, value: Any, message: str) -> None:
    personalize = sample_context()["personalize"]
    personalize["entities"][entity]["bulkImport"] = value
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse(personalize)


def test_route_needs_the_s3_source() -> None:
    personalize = sample_context()["personalize"]
    personalize["entities"]["items"]["sources"]["s3"] = False
    personalize["entities"]["items"]["bulkImport"] = True
    with pytest.raises(ConfigError, match="enable the entity's s3 source"):
        parse(personalize)
    personalize["entities"]["items"]["bulkImport"] = {"enabled": False}
    assert parse(personalize).entities[2].bulk_import is None


def test_a_bucket_encrypted_with_a_customer_key_admits_the_role_and_personalize_to_decrypt() -> None:
    # GIVEN the import route built on a bucket that uses SSE-KMS with a customer key
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_logs as logs
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sqs as sqs
    from aws_cdk.assertions import Template

    from infrastructure.bulk_import import BulkImport
    from infrastructure.bundling import FUNCTIONS_DIR
    from infrastructure.entity_pipeline import EntityPipeline
    from infrastructure.ingest_function import SharedResources
    from infrastructure.monitoring import Monitoring

    stack = cdk.Stack(cdk.App(), "Encrypted")
    bucket = s3.Bucket(stack, "Ingest", encryption=s3.BucketEncryption.KMS, enforce_ssl=True)
    shared = SharedResources(
        code=lambda_.Code.from_asset(str(FUNCTIONS_DIR)),
        rejects_queue=sqs.Queue(stack, "Rejects"),
        ingest_bucket=bucket,
        failed_batches_bucket=None,
        log_retention=logs.RetentionDays.ONE_WEEK,
        metrics_namespace="Test",
        service_name="test",
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    context = bulk_context()
    context["entities"]["items"]["sources"] = {"s3": True}
    items = next(e for e in parse(context).entities if e.entity.name == "items")
    pipeline = EntityPipeline(stack, "ItemsPipeline", config=items, shared=shared)
    monitoring = Monitoring(
        stack,
        "Monitoring",
        pipelines=[pipeline],
        rejects_queue=shared.rejects_queue,
        failed_batches_bucket=None,
        metrics_namespace="Test",
        iterator_age_alarm_s=60,
        alarm_email=None,
        alarm_topic_arn=None,
    )
    route = BulkImport(
        stack, "BulkImport", pipelines=[pipeline], bucket=bucket, shared=shared, monitoring=monitoring
    )
    template = Template.from_stack(stack)

    # THEN the key policy admits the Personalize principal to decrypt, and the service role may use the key
    key_id = stack.resolve(bucket.encryption_key.node.default_child.logical_id)  # type: ignore[union-attr]
    key_statements = template.to_json()["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s.get("Principal") == {"Service": "personalize.amazonaws.com"} and "kms:Decrypt" in s["Action"]
        for s in key_statements
    )
    role_id = stack.resolve(route.service_role.node.default_child.logical_id)  # type: ignore[union-attr]
    role_statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        "kms:Decrypt" in s["Action"] and s["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]} for s in role_statements
    )
