"""What a production deploy needs of the sample stack: alarms that reach someone, a region check, outputs for
producers, data kept on destroy, and concurrency that adds up."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infrastructure.config_loader import parse
from infrastructure.entity_pipeline import pascal
from infrastructure.stack import FIFO_DEDUPLICATION_NOTE, REGION_RULE
from local.template import LocalAccount, Resolver
from personalize_ingest.entities import ENTITIES
from tests.infrastructure.conftest import ROOT, Synthesized, sample_context

SAMPLE = parse(sample_context()["personalize"])
BY_NAME = {e.entity.name: e for e in SAMPLE.entities}


def rule_holds(raw: dict[str, Any], region: str) -> list[bool]:
    """Evaluate each assertion of the region rule as CloudFormation would in ``region``."""
    template = copy.deepcopy(raw)
    assertions = template["Rules"][REGION_RULE]["Assertions"]
    template["Conditions"] = {f"Assertion{i}": a["Assert"] for i, a in enumerate(assertions)}
    resolver = Resolver(template, LocalAccount("Check", region=region))
    return [resolver.condition(f"Assertion{i}") for i in range(len(assertions))]


# -- alarms -------------------------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_stacks_encrypted_topic_whose_arn_is_an_output(full: Synthesized) -> None:
    # GIVEN the sample, which names no e-mail address
    assert SAMPLE.alarm_email is None and SAMPLE.alarm_topic_arn is None
    (topic_id,) = full.resources("AWS::SNS::Topic")
    (key_id,) = full.resources("AWS::KMS::Key")

    # THEN there is a topic anyway, encrypted with a rotated customer key that CloudWatch may use
    topic = full.raw["Resources"][topic_id]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = full.raw["Resources"][key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert any(
        s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        for s in key["Properties"]["KeyPolicy"]["Statement"]
    )
    # AND every alarm (there are many) has it as its action
    alarms = full.resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 4 * len(ENTITIES)
    for alarm_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}], alarm_id
    # AND its ARN is an output, with no e-mail subscription
    full.template.has_output("AlarmTopicArn", {"Value": {"Ref": topic_id}})
    assert full.resources("AWS::SNS::Subscription") == {}


# -- region -------------------------------------------------------------------------------------------------------


def test_a_rule_refuses_to_deploy_where_the_datasets_are_not(full: Synthesized) -> None:
    # GIVEN the sample's dataset ARNs, all in us-east-1
    assert set(SAMPLE.dataset_regions.values()) == {"us-east-1"}
    rule = full.raw["Rules"][REGION_RULE]

    # THEN the template carries one assertion per dataset, each naming its key and region
    descriptions = sorted(a["AssertDescription"] for a in rule["Assertions"])
    assert descriptions == [
        f"personalize.entities.{name}.datasetArn is in us-east-1: deploy the stack to us-east-1 (or configure a "
        "target of this region)"
        for name in ("actions", "items", "users")
    ]
    # AND CloudFormation would accept us-east-1 and refuse eu-west-1 before creating anything
    assert rule_holds(full.raw, "us-east-1") == [True, True, True]
    assert rule_holds(full.raw, "eu-west-1") == [False, False, False]


# -- outputs and producers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_outputs_give_producers_stream_arns_and_dead_letter_queue_urls(full: Synthesized, entity: str) -> None:
    prefix = pascal(entity)
    stream = full.logical_id("AWS::Kinesis::Stream", entity, "stream")
    full.template.has_output(f"{prefix}StreamArn", {"Value": {"Fn::GetAtt": [stream, "Arn"]}})
    dlq = full.logical_id("AWS::SQS::Queue", entity, "dead-letter-queue")
    full.template.has_output(f"{prefix}DeadLetterQueueUrl", {"Value": {"Ref": dlq}})
    config = BY_NAME[entity]
    if config.sqs is not None and config.sqs.fifo:
        notifications_dlq = full.logical_id("AWS::SQS::Queue", entity, "notifications-dead-letter-queue")
        full.template.has_output(f"{prefix}NotificationsDeadLetterQueueUrl", {"Value": {"Ref": notifications_dlq}})


def test_fifo_producers_are_told_about_deduplication(full: Synthesized) -> None:
    # GIVEN action_interactions, the sample's FIFO queue (content-based deduplication by default)
    queue_id = full.logical_id("AWS::SQS::Queue", "action_interactions", "queue")
    queue = full.raw["Resources"][queue_id]["Properties"]
    assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is True

    # THEN its URL output says what deduplication drops and how a producer keeps its own ids
    outputs = full.raw["Outputs"]
    assert outputs["ActionInteractionsQueueUrl"]["Description"] == FIFO_DEDUPLICATION_NOTE
    assert "MessageDeduplicationId" in FIFO_DEDUPLICATION_NOTE and "5 minutes" in FIFO_DEDUPLICATION_NOTE
    assert outputs["ActionInteractionsQueueDeduplication"]["Value"] == "content-based"
    # AND standard queues say they are standard
    assert "Standard queue" in outputs["ItemsQueueUrl"]["Description"]


# -- data on destroy ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource_type", ["AWS::S3::Bucket", "AWS::Kinesis::Stream", "AWS::Logs::LogGroup", "AWS::SQS::Queue"]
)
def test_data_is_retained_by_default(full: Synthesized, resource_type: str) -> None:
    # GIVEN the sample (removalPolicy RETAIN, the default)
    assert SAMPLE.removal_policy == "RETAIN"

    # THEN every resource holding data survives `cdk destroy`, and nothing empties the buckets
    resources = full.resources(resource_type)
    assert resources
    for logical_id, resource in resources.items():
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain"), (
            logical_id
        )
    assert full.resources("Custom::S3AutoDeleteObjects") == {}


def test_the_alarm_key_goes_with_the_stack(full: Synthesized) -> None:
    (key,) = full.resources("AWS::KMS::Key").values()
    assert key["DeletionPolicy"] == "Delete" and key["Properties"]["PendingWindowInDays"] == 7


# -- concurrency --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_the_template_runs_no_more_invocations_than_the_rate_arithmetic_counted(
    full: Synthesized, entity: str
) -> None:
    # GIVEN the entity's mappings and function as synthesized
    function_id = full.logical_id("AWS::Lambda::Function", entity, "function")
    function = full.raw["Resources"][function_id]["Properties"]
    mappings = [
        m["Properties"]
        for m in full.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    streams = full.resources("AWS::Kinesis::Stream")

    # WHEN the most concurrent invocations are counted from the template itself
    invocations = 0
    for mapping in mappings:
        source = mapping["EventSourceArn"]["Fn::GetAtt"][0]
        if source in streams:
            details = streams[source]["Properties"]
            shards = details.get("ShardCount") or BY_NAME[entity].kinesis.shards  # type: ignore[union-attr]
            invocations += shards * mapping["ParallelizationFactor"]
        else:
            invocations += mapping["ScalingConfig"]["MaximumConcurrency"]

    # THEN callsPerSecond x that count stays within the entity's quota, and no concurrency is reserved
    calls_per_second = float(function["Environment"]["Variables"]["CALLS_PER_SECOND"])
    quota = BY_NAME[entity].quota_per_second
    assert quota is not None and calls_per_second * invocations <= quota
    assert invocations == BY_NAME[entity].max_concurrent_invocations
    assert "ReservedConcurrentExecutions" not in function


def test_nothing_in_the_template_ties_it_to_a_region_but_the_configured_targets(full: Synthesized) -> None:
    # GIVEN the template without its region rule and without the configured dataset ARNs
    body = json.dumps({k: v for k, v in full.raw.items() if k != "Rules"})
    for entity in SAMPLE.entities:
        body = body.replace(entity.target, "")
        if entity.bulk_import is not None:
            # the import route's job and schema ARNs live where its configured dataset lives
            body = body.replace(entity.bulk_import.dataset_arn.split(":dataset/")[0], "")

    # THEN no region name is left (no layer ARN, no SSM public parameter, no regional endpoint): the stack
    # deploys wherever its services run
    assert re.findall(r"\b[a-z]{2}(?:-gov)?-[a-z]+-\d\b", body) == []
    assert "resolve:ssm" not in body
    full.template.has_resource_properties("AWS::Lambda::Function", {"Layers": Match.absent()})


def test_the_synth_prints_the_arithmetic_and_the_account_requirement(tmp_path: Path) -> None:
    # GIVEN the CDK CLI's way of running the app: context in CDK_CONTEXT_JSON, output folder in CDK_OUTDIR, with
    # items reserving 6 (its sources run 4 + 2 at once)
    personalize = {
        "entities": {
            "items": {
                "datasetArn": "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS",
                "function": {"reservedConcurrency": 6},
                "sources": {"kinesis": True, "sqs": True},
            }
        }
    }
    environment = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"personalize": personalize, "aws:cdk:disable-stack-trace": True}),
        "CDK_OUTDIR": str(tmp_path),
    }

    # WHEN app.py runs
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], capture_output=True, text=True, env=environment, check=False
    )

    # THEN it synthesizes, and tells on stderr what the function can run and what the account must allow
    assert result.returncode == 0, result.stderr
    assert (
        "items: at most 6 invocations at once (reservedConcurrency 6) x 1.66 calls/s = 9.96 requests/s <= quota 10"
        in result.stderr
    )
    assert "the account's regional quota must be at least 6 + 100 = 106" in result.stderr
    assert (tmp_path / "PersonalizeIngest.template.json").exists()
