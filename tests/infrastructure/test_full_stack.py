"""The sample configuration (five entities, every source): every property the issue asks for."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match
from cfnlint.api import ManualArgs, lint_file

from infrastructure.config_loader import parse
from infrastructure.entity_pipeline import pascal
from personalize_ingest import contract
from personalize_ingest.config import Settings
from personalize_ingest.entities import ENTITIES
from personalize_ingest.observability import emit_metrics
from personalize_ingest.outcome import Tally
from tests.infrastructure.conftest import Synthesized, sample_context

SAMPLE = parse(sample_context()["personalize"])
IMPORT_ROUTE_VARIABLES = {
    "BULK_IMPORT_ENABLED",
    "BULK_IMPORT_DATASET_ARN",
    "BULK_IMPORT_ROLE_ARN",
    "BULK_IMPORT_MIN_ROWS",
    "BULK_IMPORT_SAMPLE_ROWS",
    "BULK_IMPORT_WAIT_SECONDS",
}
"""Set on the functions whose import route is on (tests/infrastructure/test_bulk_import.py checks them)."""
IMPORT_ROUTE_SIDS = {"StartImportJobs", "ReadDatasetSchema", "FindImportJobs"}
"""The import route's control-plane statements (tests/infrastructure/test_bulk_import.py checks them)."""
BY_NAME = {e.entity.name: e for e in SAMPLE.entities}
CONTRACT_VARIABLES = {
    contract.REJECTS_QUEUE_URL,
    contract.MAX_ATTEMPTS,
    contract.CALLS_PER_SECOND,
    contract.DEADLINE_MARGIN_MS,
    contract.METRICS_NAMESPACE,
    contract.SERVICE_NAME,
    contract.PERSONALIZE_CALL_PATH,
}
S3_VARIABLES = {
    contract.S3_FANOUT_MIN_BYTES,
    contract.S3_FANOUT_RANGE_BYTES,
    contract.S3_FANOUT_MAX_RANGES,
    contract.S3_MAX_HOPS,
}


def getatt(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def statements(full: Synthesized, entity: str) -> list[dict[str, Any]]:
    role = full.logical_id("AWS::IAM::Role", entity, "role")
    policies = [
        p for p in full.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
    ]
    return [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]


def has_fifo_queue(entity: str) -> bool:
    source = BY_NAME[entity].sqs
    return source is not None and source.fifo


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


# -- functions ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_function_runtime_handler_bundle_and_environment(full: Synthesized, entity: str) -> None:
    # GIVEN the synthesized function of the entity
    config = BY_NAME[entity]
    function_id = full.logical_id("AWS::Lambda::Function", entity, "function")
    function = full.raw["Resources"][function_id]["Properties"]

    # THEN it runs the entity's handler from the shared asset on arm64, with no layer (Powertools is bundled)
    # and no reserved concurrency (the sample fits any account)
    full.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": f"{entity}.handler.lambda_handler",
            "Runtime": "python3.14",
            "Architectures": ["arm64"],
            "MemorySize": config.function.memory_mb,
            "Timeout": config.function.timeout_s,
            "ReservedConcurrentExecutions": Match.absent(),
            "TracingConfig": {"Mode": "Active"},
            "LoggingConfig": Match.object_like({"LogFormat": "JSON"}),
            "Layers": Match.absent(),
        },
    )
    # AND its environment is exactly the runtime's contract
    variables = function["Environment"]["Variables"]
    target_variable = ENTITIES[entity].target_variable
    expected = CONTRACT_VARIABLES | {target_variable} | (S3_VARIABLES if config.s3 is not None else set())
    if config.bulk_import:
        expected |= IMPORT_ROUTE_VARIABLES
    if config.function.default_event_type:
        expected.add(contract.DEFAULT_EVENT_TYPE)
    if config.function.max_concurrent_calls is not None:
        expected.add(contract.MAX_CONCURRENT_CALLS)
    if config.schema_variable is not None:
        expected.add(config.schema_variable[0])
    assert set(variables) == expected
    assert variables[target_variable] == config.target
    rejects_id = next(k for k in full.resources("AWS::SQS::Queue") if k.startswith("RejectsQueue"))
    assert variables["REJECTS_QUEUE_URL"] == {"Ref": rejects_id}
    assert variables["CALLS_PER_SECOND"] == f"{config.function.calls_per_second:g}"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == SAMPLE.metrics_namespace
    # AND the runtime's own settings parser accepts it (the Ref resolved to a URL as Lambda would see it)
    resolved = {
        k: v if isinstance(v, str) else "https://sqs.us-east-1.amazonaws.com/1/rejects"
        for k, v in variables.items()
    }
    settings = Settings.from_env(ENTITIES[entity], resolved)
    assert settings.calls_per_second == config.function.calls_per_second
    assert settings.rejects_queue_url is not None


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_function_logs_to_its_own_log_group_with_the_configured_retention(full: Synthesized, entity: str) -> None:
    log_group = full.logical_id("AWS::Logs::LogGroup", entity, "log-group")
    full.template.has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": SAMPLE.log_retention_days, "LogGroupName": Match.absent()}
    )
    assert full.raw["Resources"][log_group]["Properties"]["RetentionInDays"] == SAMPLE.log_retention_days
    full.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": f"{entity}.handler.lambda_handler",
            "LoggingConfig": Match.object_like({"LogFormat": "JSON", "LogGroup": {"Ref": log_group}}),
        },
    )


# -- Kinesis ------------------------------------------------------------------------------------------------------


def test_streams_are_encrypted_on_demand_by_default_and_provisioned_when_configured(full: Synthesized) -> None:
    # GIVEN items (kinesis: true, the defaults) and action_interactions (PROVISIONED, 1 shard)
    items = full.raw["Resources"][full.logical_id("AWS::Kinesis::Stream", "items", "stream")]["Properties"]
    provisioned = full.raw["Resources"][full.logical_id("AWS::Kinesis::Stream", "action_interactions", "stream")]

    # THEN both are encrypted with the aws/kinesis key; the default is on-demand, the other has its shards
    encrypted = {"StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}}
    full.template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            **encrypted,
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "RetentionPeriodHours": 24,
            "ShardCount": Match.absent(),
        },
    )
    full.template.has_resource_properties(
        "AWS::Kinesis::Stream", {**encrypted, "StreamModeDetails": {"StreamMode": "PROVISIONED"}, "ShardCount": 1}
    )
    assert (
        items["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
        and items["StreamEncryption"] == encrypted["StreamEncryption"]
    )
    assert provisioned["Properties"]["ShardCount"] == 1
    assert provisioned["Properties"]["StreamEncryption"] == encrypted["StreamEncryption"]


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_kinesis_mapping_is_hardened_with_an_s3_on_failure_destination(full: Synthesized, entity: str) -> None:
    # GIVEN the entity's stream, function and the failed-batches bucket
    kinesis = BY_NAME[entity].kinesis
    assert kinesis is not None
    stream = full.logical_id("AWS::Kinesis::Stream", entity, "stream")
    function = full.logical_id("AWS::Lambda::Function", entity, "function")
    failed = next(k for k in full.resources("AWS::S3::Bucket") if k.startswith("FailedBatches"))

    # THEN the mapping reports item failures, bisects, retries finitely and keeps failed payloads in S3
    full.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": getatt(stream),
            "FunctionName": {"Ref": function},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": kinesis.retry_attempts,
            "MaximumRecordAgeInSeconds": kinesis.max_record_age_s,
            "BatchSize": kinesis.batch_size,
            "MaximumBatchingWindowInSeconds": kinesis.max_batching_window_s,
            "ParallelizationFactor": kinesis.parallelization_factor,
            "StartingPosition": kinesis.starting_position,
            "DestinationConfig": {"OnFailure": {"Destination": getatt(failed)}},
        },
    )
    # AND the function may only put objects into (and list) that bucket
    s3_statements = [s for s in statements(full, entity) if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    failed_statements = [s for s in s3_statements if "FailedBatches" in json.dumps(s["Resource"])]
    assert sorted(a for s in failed_statements for a in as_list(s["Action"])) == ["s3:ListBucket", "s3:PutObject"]


# -- SQS ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_sqs_queue_redrives_to_a_dlq_and_outlasts_six_function_timeouts(full: Synthesized, entity: str) -> None:
    # GIVEN the entity's producer queue and its DLQ
    config = BY_NAME[entity]
    assert config.sqs is not None
    queue_id = full.logical_id("AWS::SQS::Queue", entity, "queue")
    dlq_id = full.logical_id("AWS::SQS::Queue", entity, "dead-letter-queue")
    queue = full.raw["Resources"][queue_id]["Properties"]
    dlq = full.raw["Resources"][dlq_id]["Properties"]

    # THEN it is encrypted with SQS-managed keys (S3 can deliver to it), redrives after >= 5 receives, and its
    # visibility timeout is at least 6 x the function timeout + the batching window
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": getatt(dlq_id),
        "maxReceiveCount": config.sqs.max_receive_count,
    }
    assert config.sqs.max_receive_count >= 5
    assert queue["VisibilityTimeout"] >= 6 * config.function.timeout_s + config.sqs.max_batching_window_s
    assert bool(queue.get("FifoQueue")) is config.sqs.fifo and bool(dlq.get("FifoQueue")) is config.sqs.fifo
    # AND the mapping reports item failures under a maximum concurrency
    mapping: dict[str, Any] = {
        "EventSourceArn": getatt(queue_id),
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BatchSize": config.sqs.batch_size,
        "ScalingConfig": {"MaximumConcurrency": config.sqs.max_concurrency},
    }
    full.template.has_resource_properties("AWS::Lambda::EventSourceMapping", mapping)
    on_queue = [s for s in statements(full, entity) if s["Resource"] == getatt(queue_id)]
    sends = [s for s in on_queue if "sqs:SendMessage" in as_list(s["Action"])]
    if config.sqs.fifo:
        # AND on FIFO the function sends nothing to it (a large file resumes from its progress marker, no
        # continuation message), but may make held messages visible again after finding the queue's URL
        assert sends == []
        actions = {action for s in on_queue for action in as_list(s["Action"])}
        assert {"sqs:ChangeMessageVisibility", "sqs:GetQueueUrl"} <= actions
    else:
        # AND the function may send continuations to it, finding its URL with GetQueueUrl, and nothing more
        assert [sorted(as_list(s["Action"])) for s in sends] == [["sqs:GetQueueUrl", "sqs:SendMessage"]]


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_only_a_fifo_entity_may_delete_and_only_its_progress_markers(full: Synthesized, entity: str) -> None:
    # GIVEN the entity's role statements that allow s3:DeleteObject
    deletes = [s for s in statements(full, entity) if "s3:DeleteObject" in as_list(s["Action"])]

    # THEN an entity with a FIFO queue and S3 files may delete its files' progress markers and nothing else; the
    # others may delete nothing
    config = BY_NAME[entity]
    if has_fifo_queue(entity) and config.s3 is not None:
        (statement,) = deletes
        assert as_list(statement["Action"]) == ["s3:DeleteObject"]
        resource = json.dumps(statement["Resource"])
        assert resource.endswith(f'"/results/{config.entity.s3_prefix}*.progress/*"]]}}')
    else:
        assert deletes == []


def test_fifo_entity_gets_a_standard_notifications_queue_with_its_own_dlq_and_mapping(full: Synthesized) -> None:
    # GIVEN action_interactions: a FIFO sqs source and an s3 source (S3 cannot notify a FIFO queue)
    config = BY_NAME["action_interactions"]
    assert config.sqs is not None and config.sqs.fifo and config.s3 is not None
    queue_id = full.logical_id("AWS::SQS::Queue", "action_interactions", "notifications-queue")
    dlq_id = full.logical_id("AWS::SQS::Queue", "action_interactions", "notifications-dead-letter-queue")

    # THEN S3's queue is a standard, SQS-managed-SSE queue redriving to a standard DLQ after >= 5 receives, with
    # 6 x the function timeout + the batching window of visibility
    full.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "FifoQueue": Match.absent(),
            "SqsManagedSseEnabled": True,
            "VisibilityTimeout": 6 * config.function.timeout_s + config.s3.max_batching_window_s,
            "RedrivePolicy": {
                "deadLetterTargetArn": getatt(dlq_id),
                "maxReceiveCount": config.s3.max_receive_count,
            },
        },
    )
    dlq = full.raw["Resources"][dlq_id]["Properties"]
    assert "FifoQueue" not in dlq and dlq["SqsManagedSseEnabled"] is True
    assert config.s3.max_receive_count >= 5
    # AND its own mapping, with the s3 settings, reports item failures under a maximum concurrency
    full.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": getatt(queue_id),
            "FunctionName": {"Ref": full.logical_id("AWS::Lambda::Function", "action_interactions", "function")},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BatchSize": config.s3.batch_size,
            "ScalingConfig": {"MaximumConcurrency": config.s3.max_concurrency},
        },
    )
    # AND the function may send continuations to it too
    sends = [
        s
        for s in statements(full, "action_interactions")
        if s["Resource"] == getatt(queue_id) and "sqs:SendMessage" in s["Action"]
    ]
    assert [sorted(as_list(s["Action"])) for s in sends] == [["sqs:GetQueueUrl", "sqs:SendMessage"]]


def test_every_queue_is_encrypted_and_denies_insecure_transport(full: Synthesized) -> None:
    queues = full.resources("AWS::SQS::Queue")
    assert len(queues) >= 2 * len(ENTITIES) + 1
    for queue_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, queue_id
        full.template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue_id}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            {
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                                "Action": "sqs:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Resource": getatt(queue_id),
                            }
                        ]
                    )
                },
            },
        )


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_s3_may_notify_the_entitys_queue_only_from_the_ingest_bucket(full: Synthesized, entity: str) -> None:
    # GIVEN the queue S3 notifies for the entity and the ingest bucket
    queue_id = full.logical_id(
        "AWS::SQS::Queue", entity, "notifications-queue" if has_fifo_queue(entity) else "queue"
    )
    bucket_id = next(k for k in full.resources("AWS::S3::Bucket") if k.startswith("IngestBucket"))

    # THEN the queue policy lets the S3 service send to it, for that bucket only (the queue's SQS-managed SSE
    # needs no key policy, unlike the aws/sqs key which S3 cannot use)
    full.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": Match.array_with(["sqs:SendMessage"]),
                            "Condition": {"ArnLike": {"aws:SourceArn": getatt(bucket_id)}},
                            "Resource": getatt(queue_id),
                        }
                    ]
                )
            },
        },
    )
    assert "KmsMasterKeyId" not in full.raw["Resources"][queue_id]["Properties"]


def test_rejects_queue_is_encrypted_keeps_14_days_and_only_the_functions_send_to_it(full: Synthesized) -> None:
    rejects_id = next(k for k in full.resources("AWS::SQS::Queue") if k.startswith("RejectsQueue"))
    rejects = full.raw["Resources"][rejects_id]["Properties"]
    full.template.has_resource_properties(
        "AWS::SQS::Queue",
        {"MessageRetentionPeriod": 14 * 24 * 3600, "SqsManagedSseEnabled": True, "RedrivePolicy": Match.absent()},
    )
    assert rejects["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert rejects["SqsManagedSseEnabled"] is True
    for entity in ENTITIES:
        sends = [s for s in statements(full, entity) if s["Resource"] == getatt(rejects_id)]
        assert [as_list(s["Action"]) for s in sends] == [["sqs:SendMessage"]]


# -- S3 -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["IngestBucket", "FailedBatchesBucket", "AccessLogsBucket"])
def test_every_bucket_is_private_encrypted_ssl_only_logged_and_expiring(full: Synthesized, bucket: str) -> None:
    # GIVEN one of the stack's buckets
    bucket_id = next(k for k in full.resources("AWS::S3::Bucket") if k.startswith(bucket))
    access_logs_id = next(k for k in full.resources("AWS::S3::Bucket") if k.startswith("AccessLogsBucket"))
    properties = full.raw["Resources"][bucket_id]["Properties"]

    # THEN public access is blocked, objects are encrypted and owned by the bucket owner (no ACLs), every rule
    # of its lifecycle expires something, and it refuses requests without TLS
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert properties["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = properties["LifecycleConfiguration"]["Rules"]
    assert rules and all(r["Status"] == "Enabled" for r in rules)
    assert all("ExpirationInDays" in r or "AbortIncompleteMultipartUpload" in r for r in rules)
    full.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )
    # AND it logs its requests to the access-log bucket, except that bucket itself (logging it would loop)
    if bucket == "AccessLogsBucket":
        assert "LoggingConfiguration" not in properties
    else:
        assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": access_logs_id}


def test_ingest_bucket_is_private_encrypted_logged_and_expires_objects(full: Synthesized) -> None:
    bucket_id = next(k for k in full.resources("AWS::S3::Bucket") if k.startswith("IngestBucket"))
    bucket = full.raw["Resources"][bucket_id]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert "DestinationBucketName" in bucket["LoggingConfiguration"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireResults"]["Prefix"] == "results/"
    assert rules["ExpireResults"]["ExpirationInDays"] == SAMPLE.result_expiration_days
    for entity in ENTITIES.values():
        rule = rules[f"ExpireProcessed-{entity.s3_prefix.rstrip('/')}"]
        assert rule["Prefix"] == entity.s3_prefix
        assert rule["ExpirationInDays"] == SAMPLE.processed_object_expiration_days
    policy = next(
        p
        for p in full.resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_each_prefix_notifies_its_entitys_standard_queue(full: Synthesized) -> None:
    # GIVEN the bucket notification configuration (CDK's Custom::S3BucketNotifications)
    notifications = next(iter(full.resources("Custom::S3BucketNotifications").values()))
    queue_configs = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    by_prefix = {
        c["Filter"]["Key"]["FilterRules"][0]["Value"]: c
        for c in queue_configs
        if c["Events"] == ["s3:ObjectCreated:*"]
    }

    # THEN every entity prefix notifies the entity's queue, and the FIFO entity gets a standard one for S3
    assert sorted(by_prefix) == sorted(e.s3_prefix for e in ENTITIES.values())
    for name, entity in ENTITIES.items():
        role = "notifications-queue" if has_fifo_queue(name) else "queue"
        queue_id = full.logical_id("AWS::SQS::Queue", name, role)
        assert by_prefix[entity.s3_prefix]["QueueArn"] == getatt(queue_id)
        assert not full.raw["Resources"][queue_id]["Properties"].get("FifoQueue")
        assert full.raw["Resources"][queue_id]["Properties"]["SqsManagedSseEnabled"] is True


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_function_reads_only_its_prefix_and_writes_only_its_results(full: Synthesized, entity: str) -> None:
    # GIVEN the entity's S3 permissions on the ingest bucket
    bucket_id = next(k for k in full.resources("AWS::S3::Bucket") if k.startswith("IngestBucket"))
    prefix = ENTITIES[entity].s3_prefix
    on_ingest = [s for s in statements(full, entity) if bucket_id in json.dumps(s["Resource"])]

    # THEN reading is limited to <prefix>* and writing (and reading back range parts) to results/<prefix>*;
    # on the bucket itself only
    # ListBucket, so that S3 answers a deleted object with NoSuchKey (the runtime skips it) and not AccessDenied
    on_objects = [s for s in on_ingest if "Fn::Join" in s["Resource"]]
    grants = {json.dumps(s["Resource"]["Fn::Join"][1][1]): sorted(as_list(s["Action"])) for s in on_objects}
    expected = {
        json.dumps(f"/{prefix}*"): ["s3:GetObject", "s3:GetObjectVersion"],
        json.dumps(f"/results/{prefix}*"): ["s3:GetObject", "s3:PutObject"],
    }
    if has_fifo_queue(entity):
        # (and deleting the progress markers of files announced on its FIFO queue)
        expected[json.dumps(f"/results/{prefix}*.progress/*")] = ["s3:DeleteObject"]
    assert grants == expected
    on_bucket = [s for s in on_ingest if "Fn::Join" not in s["Resource"]]
    assert [(s["Resource"], as_list(s["Action"])) for s in on_bucket] == [(getatt(bucket_id), ["s3:ListBucket"])]


# -- IAM ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["items", "users", "actions"])
def test_dataset_operations_are_scoped_to_the_configured_dataset(full: Synthesized, entity: str) -> None:
    personalize = [
        s
        for s in statements(full, entity)
        if any(a.startswith("personalize:") for a in as_list(s["Action"]))
        and s.get("Sid") not in IMPORT_ROUTE_SIDS
    ]
    assert [(s["Action"], s["Resource"]) for s in personalize] == [
        (f"personalize:{ENTITIES[entity].operation}", BY_NAME[entity].target)
    ]


@pytest.mark.parametrize("entity", ["events", "action_interactions"])
def test_tracker_operations_grant_only_their_one_action(full: Synthesized, entity: str) -> None:
    personalize = [
        s for s in statements(full, entity) if any(a.startswith("personalize:") for a in as_list(s["Action"]))
    ]
    assert [(s["Action"], s["Resource"]) for s in personalize] == [
        (f"personalize:{ENTITIES[entity].operation}", "*")
    ]


def test_no_function_role_uses_a_managed_policy(full: Synthesized) -> None:
    for entity in ENTITIES:
        role = full.raw["Resources"][full.logical_id("AWS::IAM::Role", entity, "role")]["Properties"]
        assert "ManagedPolicyArns" not in role


# -- operations ---------------------------------------------------------------------------------------------------


def alarm_on(full: Synthesized, metric_name: str, dimensions: list[dict[str, Any]]) -> dict[str, Any]:
    found = [
        a["Properties"]
        for a in full.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == metric_name and a["Properties"].get("Dimensions") == dimensions
    ]
    assert len(found) == 1, f"expected one {metric_name} alarm on {dimensions}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_alarms_cover_dlqs_iterator_age_errors_and_throttled_calls(full: Synthesized, entity: str) -> None:
    function = {
        "Name": "FunctionName",
        "Value": {"Ref": full.logical_id("AWS::Lambda::Function", entity, "function")},
    }
    assert alarm_on(full, "Errors", [function])["Threshold"] == 1
    assert alarm_on(full, "IteratorAge", [function])["Threshold"] == SAMPLE.iterator_age_alarm_s * 1000
    throttled = alarm_on(full, "ThrottledCalls", [{"Name": "entity", "Value": entity}])
    assert throttled["Namespace"] == SAMPLE.metrics_namespace
    dlq_roles = ["dead-letter-queue"] + (["notifications-dead-letter-queue"] if has_fifo_queue(entity) else [])
    for role in dlq_roles:
        dlq = full.logical_id("AWS::SQS::Queue", entity, role)
        alarm = alarm_on(
            full,
            "ApproximateNumberOfMessagesVisible",
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
        )
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_alarms_cover_rejects_and_failed_kinesis_batches(full: Synthesized) -> None:
    rejects_id = next(k for k in full.resources("AWS::SQS::Queue") if k.startswith("RejectsQueue"))
    rejects = alarm_on(
        full, "NumberOfMessagesSent", [{"Name": "QueueName", "Value": {"Fn::GetAtt": [rejects_id, "QueueName"]}}]
    )
    assert (rejects["Statistic"], rejects["Threshold"], rejects["ComparisonOperator"]) == (
        "Sum",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    failed = next(k for k in full.resources("AWS::S3::Bucket") if k.startswith("FailedBatches"))
    alarm_on(
        full,
        "PutRequests",
        [{"Name": "BucketName", "Value": {"Ref": failed}}, {"Name": "FilterId", "Value": "AllObjects"}],
    )
    assert full.raw["Resources"][failed]["Properties"]["MetricsConfigurations"] == [{"Id": "AllObjects"}]


def test_alarms_and_dashboard_select_the_metrics_exactly_as_the_runtime_publishes_them(
    full: Synthesized, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the EMF document the runtime prints for one invocation of each entity, with the stack's environment
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", SAMPLE.metrics_namespace)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SAMPLE.service_name)
    dashboard = next(iter(full.resources("AWS::CloudWatch::Dashboard").values()))["Properties"]
    body = "".join(p for p in dashboard["DashboardBody"]["Fn::Join"][1] if isinstance(p, str))
    for entity in ENTITIES:
        emit_metrics(entity, Tally())
        emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        (directive,) = emf["_aws"]["CloudWatchMetrics"]
        published = {m["Name"] for m in directive["Metrics"]}

        # THEN the ThrottledCalls alarm selects that namespace, that name and that one dimension set
        assert directive["Dimensions"] == [["entity"]] and emf["entity"] == entity
        alarm = alarm_on(full, "ThrottledCalls", [{"Name": "entity", "Value": entity}])
        assert alarm["Namespace"] == directive["Namespace"]
        assert "ThrottledCalls" in published
        # AND the dashboard graphs records in / delivered / rejected / failed under the same names
        for name in ("RecordsReceived", "RecordsDelivered", "RecordsRejected", "RecordsFailed"):
            assert name in published
            assert f'["{directive["Namespace"]}","{name}","entity","{entity}"' in body, name


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_outputs_name_each_entitys_stream_queues_prefix_and_function(full: Synthesized, entity: str) -> None:
    prefix = pascal(entity)
    full.template.has_output(
        f"{prefix}StreamName", {"Value": {"Ref": full.logical_id("AWS::Kinesis::Stream", entity, "stream")}}
    )
    full.template.has_output(
        f"{prefix}QueueUrl", {"Value": {"Ref": full.logical_id("AWS::SQS::Queue", entity, "queue")}}
    )
    full.template.has_output(f"{prefix}S3Prefix", {"Value": ENTITIES[entity].s3_prefix})
    full.template.has_output(
        f"{prefix}FunctionName", {"Value": {"Ref": full.logical_id("AWS::Lambda::Function", entity, "function")}}
    )
    if has_fifo_queue(entity):
        notifications = full.logical_id("AWS::SQS::Queue", entity, "notifications-queue")
        full.template.has_output(f"{prefix}NotificationsQueueUrl", {"Value": {"Ref": notifications}})


def test_outputs_name_the_shared_resources(full: Synthesized) -> None:
    def first(resource_type: str, prefix: str) -> str:
        return next(k for k in full.resources(resource_type) if k.startswith(prefix))

    full.template.has_output("RejectsQueueUrl", {"Value": {"Ref": first("AWS::SQS::Queue", "RejectsQueue")}})
    full.template.has_output("IngestBucketName", {"Value": {"Ref": first("AWS::S3::Bucket", "IngestBucket")}})
    full.template.has_output("ResultsPrefix", {"Value": "results/"})
    full.template.has_output(
        "FailedBatchesBucketName", {"Value": {"Ref": first("AWS::S3::Bucket", "FailedBatchesBucket")}}
    )
    full.template.has_output(
        "DashboardName", {"Value": {"Ref": first("AWS::CloudWatch::Dashboard", "MonitoringDashboard")}}
    )


def test_dashboard_shows_every_entity_and_outputs_name_what_producers_need(full: Synthesized) -> None:
    dashboard = next(iter(full.resources("AWS::CloudWatch::Dashboard").values()))["Properties"]
    assert dashboard["DashboardName"] == "PersonalizeIngest-ingest"
    body = json.dumps(dashboard["DashboardBody"])
    for entity in ENTITIES:
        assert f"{entity}: records" in body and f"{entity}: queue depth" in body
    outputs = full.raw["Outputs"]
    for name in ("RejectsQueueUrl", "DashboardName", "IngestBucketName", "FailedBatchesBucketName"):
        assert name in outputs
    for prefix in ("Events", "ActionInteractions", "Items", "Users", "Actions"):
        for suffix in ("StreamName", "QueueUrl", "S3Prefix", "FunctionName"):
            assert f"{prefix}{suffix}" in outputs
    assert "ActionInteractionsNotificationsQueueUrl" in outputs
    assert outputs["ItemsS3Prefix"]["Value"] == "items/"


def test_every_entity_resource_is_tagged_with_its_entity(full: Synthesized) -> None:
    for entity in ENTITIES:
        for resource_type in ("AWS::Lambda::Function", "AWS::SQS::Queue", "AWS::Kinesis::Stream"):
            labelled = full.entity_resources(resource_type, entity)
            assert labelled, (entity, resource_type)
            for resource in labelled.values():
                assert {"Key": "personalize:entity", "Value": entity} in resource["Properties"]["Tags"]


# -- checks -------------------------------------------------------------------------------------------------------


def test_cdk_nag_passes_and_every_acknowledgment_has_a_reason(full: Synthesized) -> None:
    # GIVEN the validation report the synth wrote (the synth itself fails on unacknowledged errors)
    (report,) = full.validation_report["pluginReports"]

    # THEN nothing is left unacknowledged, errors or warnings, and each acknowledgment says why
    assert report["pluginName"] == "AwsSolutions"
    assert report["violations"] == []
    assert report["suppressedViolations"], "the report lists acknowledged findings"
    for finding in report["suppressedViolations"]:
        assert len(finding["reason"]) > 40, finding["ruleName"]


def test_cfn_lint_passes_on_the_template(full: Synthesized) -> None:
    # GIVEN the synthesized template
    template = full.outdir / "PersonalizeIngest.template.json"

    # WHEN cfn-lint checks it
    # NOTE: W3005 (DependsOn already implied by a GetAtt) flags the explicit dependencies CDK itself writes.
    matches = lint_file(template, config=ManualArgs(ignore_checks=["W3005"]))

    # THEN it finds nothing
    assert [str(m) for m in matches] == []
