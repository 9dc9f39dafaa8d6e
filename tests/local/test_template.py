"""The local stack is read from a template: intrinsic functions resolve to local names, settings to specs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from local.stack import read_stack
from local.template import LocalAccount, Resolver, TemplateError, load_template

TEMPLATE = Path(__file__).parent / "template.json"
ACCOUNT = LocalAccount("Demo", endpoint_url="http://127.0.0.1:5000")


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template(TEMPLATE)


def test_refs_and_attributes_resolve_to_what_cloudformation_documents_per_type(template: dict) -> None:
    # GIVEN a resolver for the hand-made template
    resolver = Resolver(template, ACCOUNT)

    # WHEN queue, stream and bucket references are resolved
    queue_url = resolver.resolve({"Ref": "SinkQueue"})
    queue_arn = resolver.resolve({"Fn::GetAtt": ["SinkQueue", "Arn"]})
    stream_name = resolver.resolve({"Ref": "Stream"})
    bucket_arn = resolver.resolve({"Fn::GetAtt": "IngestBucket.Arn"})

    # THEN a queue's Ref is its URL on the local endpoint, the others are names and ARNs
    assert queue_url == "http://127.0.0.1:5000/123456789012/Demo-SinkQueue"
    assert queue_arn == "arn:aws:sqs:us-east-1:123456789012:Demo-SinkQueue"
    assert stream_name == "Demo-Stream"
    assert bucket_arn == "arn:aws:s3:::demo-ingestbucket"


def test_functions_conditions_and_no_value_resolve_in_an_environment(template: dict) -> None:
    # GIVEN the probe function's environment, written with Join, Sub, FindInMap, Select, Split, GetAZs and If
    resolver = Resolver(template, ACCOUNT)

    # WHEN its properties are resolved
    variables = resolver.properties("ProbeFunction")["Environment"]["Variables"]

    # THEN every variable is a plain string and AWS::NoValue removed its key
    assert variables == {
        "SINK_QUEUE_URL": "http://127.0.0.1:5000/123456789012/Demo-SinkQueue",
        "MODE": "probe",
        "QUEUE_ARN_PREFIX": "arn:aws:sqs:us-east-1:123456789012",
        "STREAM_LABEL": "Demo-Stream/Demo/primary",
        "FIRST_AZ": "us-east-1a",
        "SECOND_WORD": "beta",
        "REGION_KIND": "home",
    }


def test_import_value_and_unknown_references_are_refused_with_the_name(template: dict) -> None:
    # GIVEN a resolver
    resolver = Resolver(template, ACCOUNT)

    # WHEN / THEN a cross-stack import and a reference to a missing resource fail naming what is missing
    with pytest.raises(TemplateError, match="ImportValue"):
        resolver.resolve({"Fn::ImportValue": "SharedQueueUrl"})
    with pytest.raises(TemplateError, match="NoSuchQueue"):
        resolver.resolve({"Ref": "NoSuchQueue"})
    with pytest.raises(TemplateError, match=r"Stream\.Missing"):
        resolver.resolve({"Fn::GetAtt": ["Stream", "Missing"]})


def test_stack_description_carries_every_mapping_setting(template: dict) -> None:
    # GIVEN the hand-made template
    # WHEN the local stack is read from it
    stack = read_stack(template, ACCOUNT)

    # THEN each mapping has the template's settings and CloudFormation's defaults for the rest
    kinesis = stack.mappings["ProbeKinesisMapping"]
    assert (kinesis.kind, kinesis.function, kinesis.batch_size, kinesis.batching_window_s) == (
        "kinesis",
        "ProbeFunction",
        10,
        0,
    )
    assert kinesis.bisect_on_error and kinesis.report_batch_item_failures
    assert (kinesis.max_retry_attempts, kinesis.max_record_age_s) == (1, 3600)
    assert kinesis.on_failure_arn == stack.queues["FailedBatchesQueue"].arn
    assert kinesis.starting_position == "TRIM_HORIZON"
    sqs = stack.mappings["ProbeQueueMapping"]
    assert (sqs.kind, sqs.batch_size, sqs.max_concurrency, sqs.bisect_on_error) == ("sqs", 5, 2, False)
    assert (sqs.max_retry_attempts, sqs.max_record_age_s, sqs.on_failure_arn) == (-1, -1, None)
    # ... queues keep their redrive policy and FIFO settings, the bucket its notification from the custom resource
    queue = stack.queues["Queue"]
    assert (queue.visibility_timeout_s, queue.max_receive_count) == (100, 2)
    assert queue.dead_letter_arn == stack.queues["DeadLetterQueue"].arn
    ordered = stack.queues["OrderedQueue"]
    assert ordered.fifo and ordered.content_based_deduplication and ordered.name.endswith(".fifo")
    notification = stack.buckets["IngestBucket"].notifications[0]
    assert (notification.queue_arn, notification.prefix) == (queue.arn, "probe/")
    assert stack.buckets["IngestBucket"].versioned
    # ... and functions their handler, timeout and resolved environment
    probe = stack.functions["ProbeFunction"]
    assert (probe.handler, probe.timeout_s, probe.memory_mb, probe.entity) == (
        "probe.handler.lambda_handler",
        2,
        256,
        "probe",
    )
    assert probe.environment["SINK_QUEUE_URL"] == stack.queues["SinkQueue"].url


def test_a_missing_template_names_the_make_target(tmp_path: Path) -> None:
    # GIVEN no synthesized template
    # WHEN / THEN loading it says how to make one
    with pytest.raises(TemplateError, match="make synth"):
        load_template(tmp_path / "cdk.out" / "PersonalizeIngest.template.json")


def test_a_json_file_without_resources_is_not_a_template(tmp_path: Path) -> None:
    # GIVEN a JSON file that is not a template
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"version": "36.0.0"}))

    # WHEN / THEN it is refused
    with pytest.raises(TemplateError, match="not a CloudFormation template"):
        load_template(path)


def test_a_redrive_policy_without_max_receive_count_is_refused_rather_than_guessed(template: dict) -> None:
    # GIVEN the hand-made template with a redrive policy that names a DLQ but no maxReceiveCount
    broken = copy.deepcopy(template)
    del broken["Resources"]["Queue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]

    # WHEN / THEN reading the stack fails naming the queue
    with pytest.raises(TemplateError, match="Queue: RedrivePolicy"):
        read_stack(broken, ACCOUNT)


def test_the_import_routes_schedule_role_and_bucket_policy_are_read_for_the_local_run() -> None:
    # GIVEN a template with the import tracker's schedule, Personalize's role and a hardened bucket's policy
    personalize = {"Service": "personalize.amazonaws.com"}
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Tracker": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "import_tracker.handler.h"}},
            "Schedule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "ScheduleExpression": "rate(1 minute)",
                    "State": "ENABLED",
                    "Targets": [{"Arn": {"Fn::GetAtt": ["Tracker", "Arn"]}, "Id": "t"}],
                },
            },
            "ServiceRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Statement": [{"Effect": "Allow", "Principal": personalize, "Action": "sts:AssumeRole"}]
                    },
                    "Policies": [{"PolicyName": "read", "PolicyDocument": {"Statement": []}}],
                },
            },
            "Policy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Bucket"},
                    "PolicyDocument": {
                        "Statement": [
                            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": "*"},
                            {
                                "Effect": "Allow",
                                "Principal": personalize,
                                "Action": "s3:GetObject",
                                "Resource": "*",
                            },
                        ]
                    },
                },
            },
        }
    }
    # WHEN the local stack is read
    stack = read_stack(template, ACCOUNT)
    # THEN the tracker runs every minute, the role has an IAM ARN, only Personalize's statements reach moto
    (schedule,) = stack.schedules.values()
    assert (schedule.function, schedule.period_s) == ("Tracker", 60.0)
    (role,) = stack.service_roles.values()
    assert Resolver(template, ACCOUNT).resolve({"Fn::GetAtt": ["ServiceRole", "Arn"]}) == (
        f"arn:aws:iam::{ACCOUNT.account_id}:role/{role.name}"
    )
    assert role.policies == {"read": {"Statement": []}}
    ((bucket, policy),) = stack.bucket_policies.items()
    assert bucket == stack.buckets["Bucket"].name
    assert [s["Effect"] for s in policy["Statement"]] == ["Allow"]
