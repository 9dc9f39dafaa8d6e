"""The ``personalize`` configuration: the shipped sample parses and fits any account, the concurrency and rate
arithmetic holds, a file can hold it, and every invalid form fails naming key, form and what was received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from app import build_app, synth_report
from infrastructure.concurrency import UNRESERVED_FLOOR, fits_account
from infrastructure.config import IngestConfig
from infrastructure.config_loader import ConfigError, load, parse
from tests.infrastructure.conftest import sample_context

ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS"
TRACKING_ID = "0c6a2e4f-7d1b-4b8e-9a51-5f2d3c4b6a70"


def one_entity(name: str, body: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"entities": {name: body}, **top}


def test_sample_configuration_deploys_all_five_entities_with_all_their_sources() -> None:
    # GIVEN the context shipped in cdk.json
    context = sample_context()["personalize"]

    # WHEN it is parsed
    config = parse(context)

    # THEN every entity is there with every source, and each stays within its quota: callsPerSecond x the most
    # invocations its sources can run at once (Kinesis shards x parallelization factor + SQS maxConcurrency)
    assert [e.entity.name for e in config.entities] == [
        "events",
        "action_interactions",
        "items",
        "users",
        "actions",
    ]
    for entity in config.entities:
        assert entity.kinesis is not None and entity.sqs is not None and entity.s3 is not None, entity.entity.name
        budget = entity.budget
        assert entity.max_concurrent_invocations == budget.from_sources, entity.entity.name
        rate = entity.function.calls_per_second * budget.from_sources
        assert entity.quota_per_second is not None and 0 < rate <= entity.quota_per_second, entity.entity.name
    assert config.entities[1].sqs is not None and config.entities[1].sqs.fifo


def test_sample_fits_an_account_with_nothing_but_the_unreserved_floor() -> None:
    # GIVEN the context shipped in cdk.json
    config = parse(sample_context()["personalize"])

    # THEN it reserves no concurrency, so it deploys even where the regional quota is the 100 Lambda keeps
    # unreserved (new accounts may have less than the default 1,000)
    assert config.reserved_concurrency_total == 0
    assert fits_account(config.reserved_concurrency_total, regional_quota=UNRESERVED_FLOOR)
    # AND the synth report says so, with each function's arithmetic
    report = synth_report(config)
    assert "Reserved concurrency: none" in report
    assert (
        "items: at most 6 invocations at once (kinesis 4 on-demand shards (maxShards) x parallelizationFactor 1 "
        "= 4 + sqs maxConcurrency 2 = 6) x 1.66 calls/s = 9.96 requests/s <= quota 10" in report
    )


def test_reserving_concurrency_states_the_account_requirement() -> None:
    # GIVEN items reserving 6 (its sources can run 4 + 2 at once)
    config = parse(
        one_entity("items", {"datasetArn": ITEMS_ARN, "function": {"reservedConcurrency": 6}, "sources": {
            "kinesis": True, "sqs": True}})
    )  # fmt: skip

    # THEN the requirement is the reserved total + the unreserved floor, and smaller accounts do not fit
    assert config.reserved_concurrency_total == 6
    assert "regional quota must be at least 6 + 100 = 106" in synth_report(config)
    assert fits_account(6, regional_quota=106) and not fits_account(6, regional_quota=105)


def test_defaults_share_the_quota_among_the_most_invocations_that_can_run_at_once() -> None:
    # GIVEN items with nothing but its dataset and a Kinesis on-demand source
    config = parse(one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"kinesis": True}}))

    # WHEN the defaults are applied
    items = config.entities[0]

    # THEN no concurrency is reserved, the on-demand stream counts 4 shards x 1 poller, and the calls per second
    # share the documented 10 req/s quota among those 4 invocations
    assert items.function.reserved_concurrency is None
    assert items.kinesis is not None and items.kinesis.on_demand
    assert items.max_concurrent_invocations == 4
    assert items.function.calls_per_second == 2.5
    assert items.function.calls_per_second * items.max_concurrent_invocations == 10


def test_with_reserved_concurrency_the_rate_is_counted_on_the_reserved_number() -> None:
    # GIVEN items reserving 8 for sources that can run 4 + 2 = 6 at once
    config = parse(
        one_entity("items", {"datasetArn": ITEMS_ARN, "function": {"reservedConcurrency": 8}, "sources": {
            "kinesis": True, "sqs": True}})
    )  # fmt: skip

    # THEN the default rate shares the quota among the 8 (a hard cap), not the 6
    assert config.entities[0].function.calls_per_second == 1.25


def test_a_json_string_from_the_command_line_is_parsed() -> None:
    # GIVEN the context as `cdk synth -c personalize='{...}'` passes it: a string
    context = json.dumps(
        one_entity("users", {"datasetArn": ITEMS_ARN.replace("ITEMS", "USERS"), "sources": {"sqs": True}})
    )

    # WHEN it is parsed
    config = parse(context)

    # THEN it is the same as the object form
    assert isinstance(config, IngestConfig)
    assert config.entities[0].entity.name == "users"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN.replace("ITEMS", "USERS"), "sources": {"sqs": True}}),
            "personalize.entities.items.datasetArn: expected a dataset ARN of type ITEMS "
            "(arn:aws:personalize:<region>:<account>:dataset/<dataset group>/ITEMS), got a USERS dataset",
            id="dataset-of-the-wrong-type",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": "items", "sources": {"sqs": True}}),
            "personalize.entities.items.datasetArn: expected a dataset ARN of type ITEMS",
            id="not-an-arn",
        ),
        pytest.param(
            one_entity("events", {"sources": {"sqs": True}}),
            "personalize.entities.events.trackingId: missing",
            id="missing-tracking-id",
        ),
        pytest.param(
            one_entity("events", {"trackingId": "not a tracking id!", "sources": {"sqs": True}}),
            "personalize.entities.events.trackingId: expected an event tracker's tracking id",
            id="bad-tracking-id",
        ),
        pytest.param(
            one_entity("item", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}),
            "personalize.entities.item: unknown key; expected one of events, action_interactions, items, users, "
            "actions",
            id="unknown-entity",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"kafka": True}}),
            "personalize.entities.items.sources.kafka: unknown key; expected one of kinesis, sqs, s3",
            id="unknown-source",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {}}),
            "personalize.entities.items.sources: expected at least one of kinesis, sqs, s3",
            id="no-source",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": "yes"}}),
            'personalize.entities.items.sources.sqs: expected true, false or a JSON object, got "yes"',
            id="source-not-an-object",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}, iteratorAgeAlarmSeconds="42"),
            'personalize.iteratorAgeAlarmSeconds: expected an integer from 1 to 604800, got "42"',
            id="integer-given-as-a-string",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}, logRetentionDays=31),
            "personalize.logRetentionDays: expected one of CloudWatch Logs' retention values",
            id="log-retention-not-a-cloudwatch-value",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "function": {"callsPerSecond": 10}, "sources": {"sqs": True}},
            ),
            "personalize.entities.items.function.callsPerSecond: callsPerSecond (10) x maximum concurrent "
            "invocations (sqs maxConcurrency 2 = 2) = 20 requests/s exceeds quotaPerSecond (10); lower "
            "callsPerSecond (at most 5)",
            id="over-quota",
        ),
        pytest.param(
            one_entity(
                "items",
                {
                    "datasetArn": ITEMS_ARN,
                    "function": {"reservedConcurrency": 4, "callsPerSecond": 3},
                    "sources": {"kinesis": {"streamMode": "PROVISIONED", "shardCount": 2}},
                },
            ),
            "personalize.entities.items.function.callsPerSecond: callsPerSecond (3) x maximum concurrent "
            "invocations (reservedConcurrency 4) = 12 requests/s exceeds quotaPerSecond (10)",
            id="over-quota-counted-on-reserved",
        ),
        pytest.param(
            one_entity(
                "items",
                {
                    "datasetArn": ITEMS_ARN,
                    "function": {"reservedConcurrency": 2},
                    "sources": {"sqs": {"maxConcurrency": 3}},
                },
            ),
            "personalize.entities.items.function.reservedConcurrency: expected at least the invocations the "
            "sources can run at once (sqs maxConcurrency 3 = 3), got 2",
            id="sqs-concurrency-above-reserved",
        ),
        pytest.param(
            one_entity(
                "items",
                {
                    "datasetArn": ITEMS_ARN,
                    "sources": {"kinesis": {"retentionHours": 24, "maxRecordAgeSeconds": 90000}},
                },
            ),
            "personalize.entities.items.sources.kinesis.maxRecordAgeSeconds: expected at most the stream "
            "retention "
            "(86400 s",
            id="record-age-beyond-retention",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"kinesis": {"retryAttempts": -1}}}),
            "personalize.entities.items.sources.kinesis.retryAttempts: expected an integer from 0 to 10000, "
            "got -1",
            id="infinite-retries",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"kinesis": {"shardCount": 2}}}),
            "personalize.entities.items.sources.kinesis.shardCount: only for streamMode PROVISIONED (on-demand "
            "streams scale; bound them with maxShards)",
            id="shards-on-demand",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "sources": {"sqs": {"fifo": True, "maxBatchingWindowSeconds": 5}}},
            ),
            "personalize.entities.items.sources.sqs.maxBatchingWindowSeconds: expected 0 for a FIFO queue (Lambda "
            "takes no batching window from FIFO queues), got 5",
            id="fifo-with-window",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"s3": {"fifo": True}}}),
            "personalize.entities.items.sources.s3.fifo: unknown key; expected one of batchSize",
            id="s3-cannot-notify-fifo",
        ),
        pytest.param(
            one_entity(
                "items",
                {
                    "datasetArn": ITEMS_ARN,
                    "function": {"reservedConcurrency": 3},
                    "sources": {"sqs": {"fifo": True}, "s3": True},
                },
            ),
            "personalize.entities.items.function.reservedConcurrency: expected at least the invocations the "
            "sources can run at once (sqs maxConcurrency 2 + s3 maxConcurrency 2 (S3's own queue) = 4), got 3",
            id="two-queues-above-reserved",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True, "s3": {"batchSize": 5}}}),
            "personalize.entities.items.sources.s3: expected true when the sqs source is a standard queue (S3 "
            "then notifies that queue and the sqs settings apply)",
            id="s3-settings-that-a-shared-queue-would-ignore",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": {"maxReceiveCount": 3}}}),
            "personalize.entities.items.sources.sqs.maxReceiveCount: expected an integer from 5 to 1000, got 3",
            id="redrive-below-five",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": {"batchSize": 100}}}),
            "personalize.entities.items.sources.sqs.maxBatchingWindowSeconds: expected at least 1 when batchSize "
            "is "
            "above 10",
            id="large-batch-without-window",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "function": {"defaultEventType": "click"}, "sources": {"sqs": True}},
            ),
            "personalize.entities.items.function.defaultEventType: only the events entity has event types",
            id="event-type-for-items",
        ),
        pytest.param(
            one_entity(
                "items",
                {
                    "datasetArn": ITEMS_ARN,
                    "function": {"timeoutSeconds": 10, "deadlineMarginMs": 10000},
                    "sources": {"sqs": True},
                },
            ),
            "personalize.entities.items.function.deadlineMarginMs: expected less than the function timeout",
            id="margin-beyond-timeout",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}, alarmEmail="ops"),
            'personalize.alarmEmail: expected an e-mail address, got "ops"',
            id="bad-email",
        ),
        pytest.param(
            one_entity(
                "action_interactions",
                {
                    "trackingId": TRACKING_ID,
                    "function": {"reservedConcurrency": 4},
                    "sources": {
                        "kinesis": {"streamMode": "PROVISIONED", "shardCount": 1, "parallelizationFactor": 2},
                        "sqs": {"fifo": True, "maxConcurrency": 2},
                        "s3": True,
                    },
                },
            ),
            "personalize.entities.action_interactions.function.reservedConcurrency: expected at least the "
            "invocations the sources can run at once (kinesis 1 shard x parallelizationFactor 2 = 2 + sqs "
            "maxConcurrency 2 + s3 maxConcurrency 2 (S3's own queue) = 6), got 4; below it Lambda throttles the "
            "pollers",
            id="kinesis-pollers-and-queues-above-reserved",
        ),
        pytest.param(
            one_entity(
                "items",
                {
                    "datasetArn": ITEMS_ARN,
                    "function": {"reservedConcurrency": 2},
                    "sources": {"kinesis": {"maxShards": 2}, "sqs": True},
                },
            ),
            "personalize.entities.items.function.reservedConcurrency: expected at least the invocations the "
            "sources can run at once (kinesis 2 on-demand shards (maxShards) x parallelizationFactor 1 = 2 + sqs "
            "maxConcurrency 2 = 4), got 2",
            id="on-demand-bound-and-queue-above-reserved",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "sources": {"kinesis": {"streamMode": "PROVISIONED", "maxShards": 3}}},
            ),
            "personalize.entities.items.sources.kinesis.maxShards: only for streamMode ON_DEMAND",
            id="on-demand-bound-on-a-provisioned-stream",
        ),
        pytest.param(
            one_entity(
                "items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": {"contentBasedDeduplication": False}}}
            ),
            "personalize.entities.items.sources.sqs.contentBasedDeduplication: only for a FIFO queue",
            id="deduplication-on-a-standard-queue",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}, removalPolicy="SNAPSHOT"),
            'personalize.removalPolicy: expected one of RETAIN, DESTROY, got "SNAPSHOT"',
            id="unknown-removal-policy",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}},
                alarmTopicArn="arn:aws:sns:us-east-1:123456789012:ops",
                alarmEmail="ops@example.com",
            ),
            "personalize.alarmEmail: give alarmEmail or alarmTopicArn, not both",
            id="topic-and-email",
        ),
        pytest.param(
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}, alarmTopicArn="ops"),
            'personalize.alarmTopicArn: expected an SNS topic ARN, got "ops"',
            id="bad-topic-arn",
        ),
        pytest.param(
            {"entities": {"items": {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}}, "logRetention": 30},
            "personalize.logRetention: unknown key; expected one of entities, logRetentionDays",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "{not json",
            "personalize: expected a JSON object, got invalid JSON from -c personalize=... (Expecting property "
            "name enclosed in double quotes at line 1, column 2):\n    {not json\n     ^\nreceived 9 characters: "
            '"{not json"',
            id="invalid-json",
        ),
        pytest.param(None, "personalize: missing", id="missing"),
        pytest.param(
            {"entities": {}},
            "personalize.entities: expected at least one",
            id="no-entity",
        ),
    ],
)
def test_invalid_configuration_names_the_key_and_the_expected_form(context: object, message: str) -> None:
    # GIVEN an invalid personalize context
    # WHEN it is parsed
    with pytest.raises(ConfigError) as caught:
        parse(context)

    # THEN the message names the offending key and what was expected
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_app_refuses_an_invalid_context_before_building_anything() -> None:
    # GIVEN an app whose -c personalize names a USERS dataset for items
    app = cdk.App(
        context={
            "personalize": json.dumps(
                one_entity("items", {"datasetArn": ITEMS_ARN.replace("ITEMS", "USERS"), "sources": {"s3": True}})
            )
        }
    )

    # WHEN the app is built
    with pytest.raises(ConfigError, match=r"personalize\.entities\.items\.datasetArn: expected a dataset ARN"):
        build_app(app)

    # THEN no stack was added to it
    assert [child.node.id for child in app.node.children if isinstance(child, cdk.Stack)] == []


def test_a_pretty_printed_file_named_by_personalize_config_replaces_the_context(tmp_path: Path) -> None:
    # GIVEN the sample configuration written as an indented file, and a context naming another entity
    path = tmp_path / "my-config.json"
    path.write_text(json.dumps(sample_context()["personalize"], indent=2))
    inline = one_entity("users", {"datasetArn": ITEMS_ARN.replace("ITEMS", "USERS"), "sources": {"sqs": True}})

    # WHEN the configuration is loaded with -c personalizeConfig=my-config.json, relative to the project root
    config = load(inline, "my-config.json", base=tmp_path)

    # THEN the file is the configuration: the five entities of the sample, not the inline one
    assert [e.entity.name for e in config.entities] == [
        "events",
        "action_interactions",
        "items",
        "users",
        "actions",
    ]


def test_the_app_reads_the_file_named_in_its_context(tmp_path: Path) -> None:
    # GIVEN an app whose context names a configuration file (as `cdk synth -c personalizeConfig=...` does)
    path = tmp_path / "items.json"
    path.write_text(json.dumps(one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}), indent=4))
    app = cdk.App(context={"personalizeConfig": str(path), "personalize": sample_context()["personalize"]})

    # WHEN the app is built
    _, stack = build_app(app)

    # THEN its stack holds the file's one entity
    assert list(stack.pipelines) == ["items"]


def test_a_broken_file_shows_where_and_what_was_received(tmp_path: Path) -> None:
    # GIVEN a file with a trailing comma on its third line
    path = tmp_path / "broken.json"
    path.write_text('{\n  "entities": {},\n  "logRetentionDays": 30,\n}\n')

    # WHEN it is loaded
    with pytest.raises(ConfigError) as caught:
        load(None, str(path))

    # THEN the message names the file, the position and the line with a caret under the fault, and what came in
    assert str(caught.value) == (
        f"personalize: expected a JSON object, got invalid JSON from the file {path} (Expecting property name "
        "enclosed in double quotes at line 4, column 1):\n    }\n    ^\n"
        'received 48 characters: "{\\n  \\"entities\\": {},\\n  \\"logRetentionDays\\": 30,\\n}\\n"'
    )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^personalizeConfig: cannot read .*nowhere\.json \(No such file"):
        load(None, "nowhere.json", base=tmp_path)


def test_a_pretty_printed_value_cut_at_its_first_line_break_points_to_the_file_option() -> None:
    # GIVEN what the CDK CLI passes for -c personalize="$(cat my-config.json)" of an indented file: its first line
    received = "{"

    # WHEN it is parsed
    with pytest.raises(ConfigError) as caught:
        parse(received)

    # THEN the message shows what was received and suggests the file option
    message = str(caught.value)
    assert 'received 1 characters: "{"' in message
    assert message.endswith("use -c personalizeConfig=path/to/file.json")


def test_null_unsets_an_optional_key() -> None:
    # GIVEN a file that spells out the optional keys it leaves unset
    config = parse(
        one_entity(
            "items",
            {"datasetArn": ITEMS_ARN, "function": {"reservedConcurrency": None}, "sources": {"sqs": True}},
            alarmEmail=None,
        )
    )

    # THEN they are unset, exactly as if absent
    assert config.entities[0].function.reserved_concurrency is None and config.alarm_email is None
