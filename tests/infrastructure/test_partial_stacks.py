"""Partial configurations: only what is configured is deployed, and it still passes cdk-nag and cfn-lint."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Match
from cfnlint.api import ManualArgs, lint_file

from tests.infrastructure.conftest import Synthesized, synthesize

ITEMS_ARN = "arn:aws:personalize:eu-west-1:123456789012:dataset/shop/ITEMS"
USERS_ARN = "arn:aws:personalize:eu-west-1:123456789012:dataset/shop/USERS"


@pytest.fixture(scope="module")
def items_from_sqs(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """One entity, one source, under another stack name."""
    return synthesize(
        tmp_path_factory.mktemp("items-sqs"),
        {"entities": {"items": {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}}},
        stackName="ItemsOnly",
    )


@pytest.fixture(scope="module")
def users_from_s3(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """One entity fed by S3 only, with alarms e-mailed."""
    return synthesize(
        tmp_path_factory.mktemp("users-s3"),
        {
            "alarmEmail": "ops@example.com",
            "entities": {"users": {"datasetArn": USERS_ARN, "sources": {"s3": {"maxConcurrency": 2}}}},
        },
    )


def test_one_entity_with_one_source_deploys_only_that(items_from_sqs: Synthesized) -> None:
    # GIVEN items configured with an SQS source only, in a stack named by context
    synth = items_from_sqs

    # THEN the stack is named as configured and holds one function fed by one queue, nothing else
    assert (synth.outdir / "ItemsOnly.template.json").exists()
    functions = synth.resources("AWS::Lambda::Function")
    assert [f["Properties"]["Handler"] for f in functions.values()] == ["items.handler.lambda_handler"]
    assert synth.resources("AWS::Kinesis::Stream") == {}
    assert synth.resources("AWS::S3::Bucket") == {}
    assert synth.resources("Custom::S3BucketNotifications") == {}
    assert len(synth.resources("AWS::Lambda::EventSourceMapping")) == 1
    # AND that queue has the defaults: SQS-managed SSE, redrive after 5 receives, 6 x 120 s of visibility, and a
    # mapping of 10 messages reporting item failures under a maximum concurrency of 2
    queue_id = synth.logical_id("AWS::SQS::Queue", "items", "queue")
    dlq_id = synth.logical_id("AWS::SQS::Queue", "items", "dead-letter-queue")
    synth.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "SqsManagedSseEnabled": True,
            "VisibilityTimeout": 6 * 120,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5},
        },
    )
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    )
    synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like({"PERSONALIZE_DATASET_ARN": ITEMS_ARN, "CALLS_PER_SECOND": "5"})
            }
        },
    )
    # AND no alarm watches what does not exist
    metric_names = {a["Properties"].get("MetricName") for a in synth.resources("AWS::CloudWatch::Alarm").values()}
    assert metric_names == {
        "Errors",
        "ThrottledCalls",
        "ApproximateNumberOfMessagesVisible",
        "NumberOfMessagesSent",
    }
    # AND the function reads no bucket
    policies = synth.resources("AWS::IAM::Policy").values()
    actions = {
        a for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"] for a in _list(s["Action"])
    }
    assert not {a for a in actions if a.startswith("s3:") or a.startswith("kinesis:")}
    assert set(synth.raw["Outputs"]) == {
        "RejectsQueueUrl",
        "DashboardName",
        "AlarmTopicArn",
        "ItemsFunctionName",
        "ItemsQueueUrl",
        "ItemsDeadLetterQueueUrl",
    }


def test_s3_only_entity_gets_its_own_notifications_queue(users_from_s3: Synthesized) -> None:
    # GIVEN users fed by S3 only
    synth = users_from_s3
    queue_id = synth.logical_id("AWS::SQS::Queue", "users", "notifications-queue")
    dlq_id = synth.logical_id("AWS::SQS::Queue", "users", "notifications-dead-letter-queue")

    # THEN S3 notifies a standard queue for users/ only, which redrives to its DLQ and feeds the function
    notifications = next(iter(synth.resources("Custom::S3BucketNotifications").values()))
    (config,) = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "users/"}]
    assert config["QueueArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    queue = synth.raw["Resources"][queue_id]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert "FifoQueue" not in queue
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]},
            "BatchSize": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    )
    # AND there is no Kinesis stream nor failed-batches bucket
    assert synth.resources("AWS::Kinesis::Stream") == {}
    assert not [k for k in synth.resources("AWS::S3::Bucket") if k.startswith("FailedBatches")]


def test_alarms_are_emailed_through_an_encrypted_topic(users_from_s3: Synthesized) -> None:
    # GIVEN an alarm e-mail address in the configuration
    synth = users_from_s3
    (topic_id,) = synth.resources("AWS::SNS::Topic")
    (key_id,) = synth.resources("AWS::KMS::Key")

    # THEN the topic is encrypted with a rotated customer key CloudWatch may use, and every alarm notifies it
    assert synth.raw["Resources"][topic_id]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = synth.raw["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    assert any(
        s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key["KeyPolicy"]["Statement"]
    )
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": {"Ref": topic_id}},
    )
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


@pytest.mark.parametrize("name", ["items_from_sqs", "users_from_s3"])
def test_partial_stacks_pass_cdk_nag_and_cfn_lint(name: str, request: pytest.FixtureRequest) -> None:
    # GIVEN a partial stack (its synth already ran the AwsSolutions checks, which fail the synth on errors)
    synth: Synthesized = request.getfixturevalue(name)
    (report,) = synth.validation_report["pluginReports"]

    # WHEN cfn-lint checks its template
    template = next(Path(synth.outdir).glob("*.template.json"))
    matches = lint_file(template, config=ManualArgs(ignore_checks=["W3005"]))

    # THEN neither finds anything unacknowledged
    assert report["violations"] == []
    assert [str(m) for m in matches] == []


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.fixture(scope="module")
def development(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """removalPolicy DESTROY (development), alarms to an existing topic, items from Kinesis and S3."""
    return synthesize(
        tmp_path_factory.mktemp("development"),
        {
            "removalPolicy": "DESTROY",
            "alarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops-pager",
            "entities": {"items": {"datasetArn": ITEMS_ARN, "sources": {"kinesis": True, "s3": True}}},
        },
        stackName="Development",
    )


def test_development_removal_policy_empties_and_deletes_buckets_streams_queues_and_logs(
    development: Synthesized,
) -> None:
    # GIVEN removalPolicy DESTROY
    synth = development

    # THEN streams, queues and log groups are deleted with the stack
    for resource_type in ("AWS::Kinesis::Stream", "AWS::SQS::Queue", "AWS::Logs::LogGroup"):
        resources = synth.resources(resource_type)
        assert resources, resource_type
        assert {r.get("DeletionPolicy") for r in resources.values()} == {"Delete"}, resource_type
    # AND every bucket is deleted after CDK's auto-delete custom resource empties it
    buckets = synth.resources("AWS::S3::Bucket")
    assert len(buckets) == 3
    emptied = {
        r["Properties"]["BucketName"]["Ref"] for r in synth.resources("Custom::S3AutoDeleteObjects").values()
    }
    assert emptied == set(buckets)
    assert {b.get("DeletionPolicy") for b in buckets.values()} == {"Delete"}


def test_an_existing_alarm_topic_receives_every_alarm(development: Synthesized) -> None:
    # GIVEN alarmTopicArn naming the team's topic
    topic = "arn:aws:sns:eu-west-1:123456789012:ops-pager"

    # THEN the stack builds no topic of its own, every alarm notifies that one, and it is the output
    assert development.resources("AWS::SNS::Topic") == {}
    alarms = development.resources("AWS::CloudWatch::Alarm")
    assert alarms and all(a["Properties"]["AlarmActions"] == [topic] for a in alarms.values())
    development.template.has_output("AlarmTopicArn", {"Value": topic})
    # AND the region rule checks the topic's region as well as the dataset's (alarms notify their own region's
    # topics only)
    descriptions = [
        a["AssertDescription"] for a in development.raw["Rules"]["TargetsInDeployRegion"]["Assertions"]
    ]
    assert [d.split(":")[0] for d in descriptions] == [
        "personalize.alarmTopicArn is in eu-west-1",
        "personalize.entities.items.datasetArn is in eu-west-1",
    ]


def test_a_stack_bound_to_another_region_is_refused_at_synth(tmp_path: Path) -> None:
    # GIVEN a stack whose environment names us-east-1 and an items dataset of eu-west-1
    import aws_cdk as cdk

    from infrastructure.config_loader import parse
    from infrastructure.stack import PersonalizeIngestStack, RegionError

    config = parse({"entities": {"items": {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}}})

    # WHEN the stack is built
    with pytest.raises(RegionError) as caught:
        PersonalizeIngestStack(cdk.App(), "Bound", config=config, env=cdk.Environment(region="us-east-1"))

    # THEN the message names the key and both regions
    assert str(caught.value) == (
        "the stack deploys to us-east-1 but personalize.entities.items.datasetArn is in eu-west-1"
    )


@pytest.mark.parametrize("name", ["development"])
def test_development_stack_passes_cdk_nag_and_cfn_lint(name: str, request: pytest.FixtureRequest) -> None:
    synth: Synthesized = request.getfixturevalue(name)
    (report,) = synth.validation_report["pluginReports"]
    template = next(Path(synth.outdir).glob("*.template.json"))
    matches = lint_file(template, config=ManualArgs(ignore_checks=["W3005"]))
    assert report["violations"] == []
    assert [str(m) for m in matches] == []
