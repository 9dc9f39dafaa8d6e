"""The runtime's settings the configuration sets: S3 fan-out and hops, the call path, the calls in flight and the
dataset schema (inline, by ARN, or the target dataset's) - their variables, their checks and their grants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cfnlint.api import ManualArgs, lint_file

from infrastructure.config_dataset_schema import INLINE_SCHEMA_MAX_CHARS
from infrastructure.config_loader import ConfigError, parse
from infrastructure.stack import PersonalizeIngestStack, RegionError
from personalize_ingest import contract
from personalize_ingest.config import ConfigurationError, Settings
from personalize_ingest.entities import ENTITIES, ITEMS
from tests.infrastructure.conftest import Synthesized, synthesize
from tests.support.schemas import SHOP_ITEMS_SCHEMA

REGION, ACCOUNT = "eu-west-1", "123456789012"
ITEMS_ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/shop/ITEMS"
USERS_ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/shop/USERS"
ACTIONS_ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/shop/ACTIONS"
USERS_SCHEMA_ARN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/shop-users"
TRACKING_ID = "0c6a2e4f-7d1b-4b8e-9a51-5f2d3c4b6a70"
ITEMS_SCHEMA = SHOP_ITEMS_SCHEMA
LONG_FIELDS = [{"name": f"FIELD_{i:04}", "type": "string"} for i in range(120)]
"""Enough fields to take the schema past what an environment variable can carry."""
ITEMS_FUNCTION = {
    "s3FanoutMinBytes": 32 * 1024 * 1024,
    "s3FanoutRangeBytes": 8 * 1024 * 1024,
    "s3FanoutMaxRanges": 16,
    "s3MaxHops": 200,
    "maxConcurrentCalls": 4,
    "callPath": "botocore",
}
CONFIG = {
    "entities": {
        "items": {
            "datasetArn": ITEMS_ARN,
            "schema": ITEMS_SCHEMA,
            "function": ITEMS_FUNCTION,
            "sources": {"s3": True},
        },
        "users": {"datasetArn": USERS_ARN, "schemaArn": USERS_SCHEMA_ARN, "sources": {"sqs": True, "s3": True}},
        "actions": {"datasetArn": ACTIONS_ARN, "schema": "fromDataset", "sources": {"sqs": True}},
        "events": {"trackingId": TRACKING_ID, "sources": {"sqs": True}},
    }
}
DESCRIBE_ACTIONS = {"personalize:DescribeSchema", "personalize:DescribeDataset"}
SCHEMA_VARIABLES = {contract.DATASET_SCHEMA, contract.DATASET_SCHEMA_FILE, contract.DATASET_SCHEMA_ARN}
S3_VARIABLES = {
    contract.S3_FANOUT_MIN_BYTES,
    contract.S3_FANOUT_RANGE_BYTES,
    contract.S3_FANOUT_MAX_RANGES,
    contract.S3_MAX_HOPS,
}
A_QUEUE_URL = (
    "https://sqs.eu-west-1.amazonaws.com/123456789012/PersonalizeIngest-RejectsQueue1A2B3C4D-AbCdEfGhIjKl"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """items (inline schema, S3 settings), users (schemaArn), actions (fromDataset), events (no schema)."""
    return synthesize(tmp_path_factory.mktemp("runtime-settings"), CONFIG)


def variables(synth: Synthesized, entity: str) -> dict[str, Any]:
    function_id = synth.logical_id("AWS::Lambda::Function", entity, "function")
    found: dict[str, Any] = synth.raw["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    return found


def resolved(synth: Synthesized, entity: str) -> dict[str, str]:
    """The environment as Lambda would see it (the rejects queue's Ref as a URL)."""
    return {k: v if isinstance(v, str) else A_QUEUE_URL for k, v in variables(synth, entity).items()}


def personalize_statements(synth: Synthesized, entity: str) -> list[dict[str, Any]]:
    role = synth.logical_id("AWS::IAM::Role", entity, "role")
    policies = [
        p for p in synth.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
    ]
    return [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("personalize:") for a in _list(s["Action"]))
    ]


def _list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


# -- environment --------------------------------------------------------------------------------------------------


def test_configured_s3_and_call_settings_reach_the_function_and_the_runtime_reads_them(stack: Synthesized) -> None:
    # GIVEN the items function, configured with S3 fan-out and hop settings, a call path and a ceiling of calls
    env = variables(stack, "items")

    # THEN each is set, under the contract's name, to the configured value
    assert env[contract.S3_FANOUT_MIN_BYTES] == str(ITEMS_FUNCTION["s3FanoutMinBytes"])
    assert env[contract.S3_FANOUT_RANGE_BYTES] == str(ITEMS_FUNCTION["s3FanoutRangeBytes"])
    assert env[contract.S3_FANOUT_MAX_RANGES] == str(ITEMS_FUNCTION["s3FanoutMaxRanges"])
    assert env[contract.S3_MAX_HOPS] == str(ITEMS_FUNCTION["s3MaxHops"])
    assert env[contract.PERSONALIZE_CALL_PATH] == "botocore"
    assert env[contract.MAX_CONCURRENT_CALLS] == "4"
    # AND the runtime's own parser reads them back as configured
    settings = Settings.from_env(ITEMS, resolved(stack, "items"))
    assert (settings.s3_fanout_min_bytes, settings.s3_fanout_range_bytes) == (32 * 1024**2, 8 * 1024**2)
    assert (settings.s3_fanout_max_ranges, settings.s3_max_hops) == (16, 200)
    assert settings.call_path == "botocore"
    assert settings.max_concurrent_calls == 4 and settings.concurrency_configured


def test_unset_keys_leave_the_concurrency_to_the_runtime_and_set_its_own_defaults(stack: Synthesized) -> None:
    # GIVEN users (S3 source, no S3 settings) and events (no S3 source), neither setting maxConcurrentCalls
    users, events = resolved(stack, "users"), resolved(stack, "events")

    # THEN no ceiling of calls is set: the runtime sizes the calls in flight to the work
    assert contract.MAX_CONCURRENT_CALLS not in users and contract.MAX_CONCURRENT_CALLS not in events
    assert not Settings.from_env(ENTITIES["users"], users).concurrency_configured
    # AND the S3 settings of users are the runtime's own defaults, read back unchanged
    defaults = Settings.from_env(ENTITIES["users"], {contract.DATASET_ARN_VARIABLE: USERS_ARN})
    configured = Settings.from_env(ENTITIES["users"], users)
    assert {k: users[k] for k in S3_VARIABLES} == {
        contract.S3_FANOUT_MIN_BYTES: str(defaults.s3_fanout_min_bytes),
        contract.S3_FANOUT_RANGE_BYTES: str(defaults.s3_fanout_range_bytes),
        contract.S3_FANOUT_MAX_RANGES: str(defaults.s3_fanout_max_ranges),
        contract.S3_MAX_HOPS: str(defaults.s3_max_hops),
    }
    assert configured.call_path == defaults.call_path == "direct"
    # AND a function without an S3 source gets no S3 settings at all
    assert not S3_VARIABLES & set(events)


def test_each_schema_source_sets_its_one_variable(stack: Synthesized) -> None:
    # GIVEN the four functions: inline schema, schemaArn, fromDataset, none
    schema_variables = {
        entity: {k: v for k, v in variables(stack, entity).items() if k in SCHEMA_VARIABLES}
        for entity in ("items", "users", "actions", "events")
    }

    # THEN each gets exactly its variable, and events none
    assert schema_variables == {
        "items": {contract.DATASET_SCHEMA: json.dumps(ITEMS_SCHEMA, separators=(",", ":"))},
        "users": {contract.DATASET_SCHEMA_ARN: USERS_SCHEMA_ARN},
        "actions": {contract.DATASET_SCHEMA_ARN: contract.SCHEMA_FROM_DATASET},
        "events": {},
    }
    # AND the runtime accepts each (it parses the inline schema and checks the ARN's form)
    assert Settings.from_env(ITEMS, resolved(stack, "items")).schema_source == (
        "inline",
        json.dumps(ITEMS_SCHEMA, separators=(",", ":")),
    )
    assert Settings.from_env(ENTITIES["users"], resolved(stack, "users")).schema_source == (
        "arn",
        USERS_SCHEMA_ARN,
    )
    assert Settings.from_env(ENTITIES["actions"], resolved(stack, "actions")).schema_source == ("arn", "dataset")


def test_the_largest_inline_schema_fits_lambdas_4_kb_of_environment(stack: Synthesized) -> None:
    # GIVEN the items function's environment with its inline schema (the rejects queue URL at a realistic length)
    env = resolved(stack, "items")
    schema_chars = len(env[contract.DATASET_SCHEMA])

    # WHEN the schema grows to the most the configuration accepts
    total = sum(len(k) + len(v) for k, v in env.items()) - schema_chars + INLINE_SCHEMA_MAX_CHARS

    # THEN every variable together stays within Lambda's 4 KB
    assert total <= 4096, total


# -- grants -------------------------------------------------------------------------------------------------------


def test_schema_arn_grants_describe_schema_on_that_schema_only(stack: Synthesized) -> None:
    describe = [s for s in personalize_statements(stack, "users") if set(_list(s["Action"])) & DESCRIBE_ACTIONS]
    assert [(s["Action"], s["Resource"]) for s in describe] == [("personalize:DescribeSchema", USERS_SCHEMA_ARN)]


def test_from_dataset_grants_describe_dataset_on_the_target_and_schemas_of_its_account(stack: Synthesized) -> None:
    describe = [s for s in personalize_statements(stack, "actions") if set(_list(s["Action"])) & DESCRIBE_ACTIONS]
    assert sorted((s["Action"], s["Resource"]) for s in describe) == [
        ("personalize:DescribeDataset", ACTIONS_ARN),
        ("personalize:DescribeSchema", f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/*"),
    ]


@pytest.mark.parametrize("entity", ["items", "events"])
def test_no_describe_grant_without_a_schema_from_the_service(stack: Synthesized, entity: str) -> None:
    # GIVEN items (inline schema) and events (no schema): THEN their roles may only put
    assert [s["Action"] for s in personalize_statements(stack, entity)] == [
        f"personalize:{ENTITIES[entity].operation}"
    ]


def test_stack_passes_cdk_nag_with_the_schema_wildcard_acknowledged_and_cfn_lint(stack: Synthesized) -> None:
    # GIVEN the synth's AwsSolutions report (the synth fails on unacknowledged errors) and cfn-lint's findings
    (report,) = stack.validation_report["pluginReports"]
    template = next(Path(stack.outdir).glob("*.template.json"))
    matches = lint_file(template, config=ManualArgs(ignore_checks=["W3005"]))

    # THEN nothing is left, and the schemas wildcard of fromDataset is acknowledged with its reason
    assert report["violations"] == []
    assert [str(m) for m in matches] == []
    wildcard = [
        f for f in report["suppressedViolations"] if "schema/*" in json.dumps(f) and "IAM5" in f["ruleName"]
    ]
    assert wildcard and all("DescribeDataset" in f["reason"] for f in wildcard)


def test_a_schema_of_another_region_is_refused_at_synth() -> None:
    # GIVEN a stack bound to eu-west-1 whose users schema is in us-east-1
    users = {**CONFIG["entities"]["users"], "schemaArn": USERS_SCHEMA_ARN.replace(REGION, "us-east-1")}
    config = parse({"entities": {"users": users}})

    # WHEN the stack is built
    with pytest.raises(RegionError) as caught:
        PersonalizeIngestStack(cdk.App(), "Bound", config=config, env=cdk.Environment(region=REGION))

    # THEN the key and both regions are named
    assert str(caught.value) == (
        f"the stack deploys to {REGION} but personalize.entities.users.schemaArn is in us-east-1"
    )


# -- refused configurations ---------------------------------------------------------------------------------------


def items(**body: Any) -> dict[str, Any]:
    return {"entities": {"items": {"datasetArn": ITEMS_ARN, "sources": {"s3": True}, **body}}}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        pytest.param(
            items(schemaArn="arn:aws:personalize:eu-west-1:123456789012:dataset/shop/ITEMS"),
            "personalize.entities.items.schemaArn: expected a schema ARN "
            "(arn:aws:personalize:<region>:<account>:schema/<name>), got",
            id="schema-arn-of-a-dataset",
        ),
        pytest.param(
            items(schema="dataset"),
            "personalize.entities.items.schema: expected the dataset's Avro schema as a JSON object, or "
            '"fromDataset"',
            id="schema-neither-object-nor-fromDataset",
        ),
        pytest.param(
            items(schema={"type": "record", "name": "Items"}),
            "personalize.entities.items.schema: expected the dataset's Avro record schema: the schema is not an "
            "Avro record schema with a 'fields' list",
            id="schema-without-fields",
        ),
        pytest.param(
            items(schema={"type": "record", "fields": [{"type": "string"}]}),
            "personalize.entities.items.schema: expected the dataset's Avro record schema: every field of the "
            "dataset schema needs a 'name'",
            id="schema-field-without-a-name",
        ),
        pytest.param(
            items(schema={**ITEMS_SCHEMA, "fields": [*ITEMS_SCHEMA["fields"], *LONG_FIELDS]}),
            f"personalize.entities.items.schema: expected at most {INLINE_SCHEMA_MAX_CHARS} characters of compact "
            "JSON",
            id="schema-too-large-for-the-environment",
        ),
        pytest.param(
            items(schema={**ITEMS_SCHEMA, "fields": [{"name": "USER_ID", "type": "string"}]}),
            "personalize.entities.items.schema: expected the ITEMS dataset's schema, with a field ITEM_ID; got "
            "one with the fields USER_ID",
            id="schema-of-another-dataset",
        ),
        pytest.param(
            items(schema=ITEMS_SCHEMA, schemaArn=USERS_SCHEMA_ARN),
            "personalize.entities.items.schemaArn: give schema or schemaArn, not both",
            id="schema-and-schema-arn",
        ),
        pytest.param(
            {
                "entities": {
                    "events": {"trackingId": TRACKING_ID, "schema": "fromDataset", "sources": {"sqs": True}}
                }
            },
            'personalize.entities.events.schema: "fromDataset" needs a dataset target',
            id="fromDataset-for-a-tracker",
        ),
        pytest.param(
            {
                "entities": {
                    "items": {"datasetArn": ITEMS_ARN, "function": {"s3MaxHops": 50}, "sources": {"sqs": True}}
                }
            },
            "personalize.entities.items.function.s3MaxHops: only with an s3 source",
            id="s3-setting-without-s3",
        ),
        pytest.param(
            items(function={"s3FanoutMinBytes": 1_000_000, "s3FanoutRangeBytes": 1_000_000}),
            "personalize.entities.items.function.s3FanoutRangeBytes: expected less than s3FanoutMinBytes "
            "(1000000)",
            id="range-not-below-the-threshold",
        ),
        pytest.param(
            items(function={"s3FanoutMaxRanges": 1}),
            "personalize.entities.items.function.s3FanoutMaxRanges: expected an integer from 2 to 1000, got 1",
            id="one-range",
        ),
        pytest.param(
            items(function={"s3FanoutMinBytes": -1}),
            "personalize.entities.items.function.s3FanoutMinBytes: expected an integer from 0 to",
            id="negative-threshold",
        ),
        pytest.param(
            items(function={"s3MaxHops": 0}),
            "personalize.entities.items.function.s3MaxHops: expected an integer from 1 to 100000, got 0",
            id="no-hops",
        ),
        pytest.param(
            items(function={"callPath": "boto3"}),
            'personalize.entities.items.function.callPath: expected one of direct, botocore, got "boto3"',
            id="unknown-call-path",
        ),
        pytest.param(
            items(function={"maxConcurrentCalls": 0}),
            "personalize.entities.items.function.maxConcurrentCalls: expected an integer from 1 to 64, got 0",
            id="no-calls-in-flight",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(context: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(context)
    assert str(caught.value).startswith(message), str(caught.value)


def test_fan_out_can_be_turned_off_whatever_the_range_size() -> None:
    # GIVEN fan-out off (0) with a range size above it
    config = parse(items(function={"s3FanoutMinBytes": 0, "s3FanoutRangeBytes": 64 * 1024 * 1024}))

    # THEN it is accepted: no object is ever split
    assert config.entities[0].function.s3_fanout_min_bytes == 0


def test_the_schema_check_is_the_runtimes_own() -> None:
    # GIVEN a schema the runtime's parser refuses (its fields are not a list)
    broken = {"type": "record", "fields": {"name": "ITEM_ID"}}
    with pytest.raises(ConfigurationError) as runtime_error:
        Settings.from_env(
            ITEMS, {contract.DATASET_ARN_VARIABLE: ITEMS_ARN, contract.DATASET_SCHEMA: json.dumps(broken)}
        )

    # WHEN the configuration gives it inline
    with pytest.raises(ConfigError) as caught:
        parse(items(schema=broken))

    # THEN the synth refuses it, naming the key, for the reason the function would have failed
    assert str(caught.value).startswith("personalize.entities.items.schema: ")
    assert "is not an Avro record schema with a 'fields' list" in str(runtime_error.value)
    assert "is not an Avro record schema with a 'fields' list" in str(caught.value)


@pytest.mark.parametrize(
    "schema_arn",
    [
        USERS_SCHEMA_ARN,
        f"arn:aws-cn:personalize:cn-north-1:{ACCOUNT}:schema/a_b-9",
        f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/",
        f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/-leading-dash",
        f"arn:aws:personalize:{REGION}:12345:schema/short-account",
        f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/shop/USERS",
        f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/a/b",
    ],
)
def test_the_stack_accepts_exactly_the_schema_arns_the_runtime_accepts(schema_arn: str) -> None:
    # GIVEN what the runtime makes of the ARN in DATASET_SCHEMA_ARN
    environ = {contract.DATASET_ARN_VARIABLE: USERS_ARN, contract.DATASET_SCHEMA_ARN: schema_arn}
    try:
        Settings.from_env(ENTITIES["users"], environ)
        runtime_accepts = True
    except ConfigurationError:
        runtime_accepts = False

    # WHEN the configuration gives it as schemaArn
    try:
        parse(
            {"entities": {"users": {"datasetArn": USERS_ARN, "schemaArn": schema_arn, "sources": {"sqs": True}}}}
        )
        stack_accepts = True
    except ConfigError as error:
        assert str(error).startswith("personalize.entities.users.schemaArn: expected a schema ARN"), str(error)
        stack_accepts = False

    # THEN both agree: nothing the synth lets through fails every invocation, nothing good is refused
    assert stack_accepts == runtime_accepts
