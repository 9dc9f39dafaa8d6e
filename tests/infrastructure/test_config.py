"""The ``personalize`` context: the shipped sample parses, and every invalid form fails naming key and form."""

from __future__ import annotations

import json
import math
from typing import Any

import aws_cdk as cdk
import pytest

from app import build_app
from infrastructure.config import ConfigError, IngestConfig, parse
from tests.infrastructure.conftest import sample_context

ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS"
TRACKING_ID = "0c6a2e4f-7d1b-4b8e-9a51-5f2d3c4b6a70"


def one_entity(name: str, body: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"powertoolsLayerVersion": 42, "entities": {name: body}, **top}


def test_sample_configuration_deploys_all_five_entities_with_all_their_sources() -> None:
    # GIVEN the context shipped in cdk.json
    context = sample_context()["personalize"]

    # WHEN it is parsed
    config = parse(context)

    # THEN every entity is there with every source, and each stays within its quota
    assert [e.entity.name for e in config.entities] == [
        "events",
        "action_interactions",
        "items",
        "users",
        "actions",
    ]
    for entity in config.entities:
        assert entity.kinesis is not None and entity.sqs is not None and entity.s3 is not None, entity.entity.name
        rate = entity.function.calls_per_second * entity.max_concurrent_invocations
        assert 0 < rate <= entity.quota_per_second, entity.entity.name
    assert config.entities[1].sqs is not None and config.entities[1].sqs.fifo


def test_defaults_keep_items_within_ten_requests_per_second() -> None:
    # GIVEN items with nothing but its dataset and a Kinesis on-demand source
    config = parse(one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"kinesis": True}}))

    # WHEN the defaults are applied
    items = config.entities[0]

    # THEN calls per second x reserved concurrency is the documented 10 req/s quota
    assert items.function.calls_per_second == 5
    assert items.function.reserved_concurrency == 2
    assert items.function.calls_per_second * items.max_concurrent_invocations == 10
    assert (
        items.kinesis is not None
        and items.kinesis.on_demand
        and math.isinf(items.kinesis.max_concurrent_invocations)
    )


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
            one_entity("items", {"datasetArn": ITEMS_ARN, "sources": {"sqs": True}}, powertoolsLayerVersion="42"),
            'personalize.powertoolsLayerVersion: expected an integer from 1 to 10000, got "42"',
            id="layer-version-not-an-integer",
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
            "invocations (2) = 20 requests/s exceeds quotaPerSecond (10)",
            id="over-quota",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "function": {"reservedConcurrency": None}, "sources": {"kinesis": True}},
            ),
            "personalize.entities.items.function.reservedConcurrency: expected a number when callsPerSecond is "
            "set "
            "and a source has no concurrency bound (on-demand Kinesis)",
            id="unbounded-concurrency",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "sources": {"sqs": {"maxConcurrency": 3}}},
            ),
            "personalize.entities.items.sources.sqs.maxConcurrency: expected at most "
            "function.reservedConcurrency (2)",
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
            "personalize.entities.items.sources.kinesis.shardCount: only for streamMode PROVISIONED",
            id="shards-on-demand",
        ),
        pytest.param(
            one_entity(
                "items",
                {"datasetArn": ITEMS_ARN, "sources": {"sqs": {"fifo": True, "maxBatchingWindowSeconds": 5}}},
            ),
            "personalize.entities.items.sources.sqs.maxBatchingWindowSeconds: expected an integer from 0 to 0, "
            "got 5",
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
                {"datasetArn": ITEMS_ARN, "sources": {"sqs": {"fifo": True}, "s3": True}},
            ),
            "personalize.entities.items.function.reservedConcurrency: expected at least the sum of the SQS "
            "mappings' maxConcurrency (sqs 2 + s3 2 = 4: S3 has its own queue), got 2",
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
        pytest.param("{not json", "personalize: expected a JSON object, got invalid JSON", id="invalid-json"),
        pytest.param(None, "personalize: missing", id="missing"),
        pytest.param(
            {"powertoolsLayerVersion": 42, "entities": {}},
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
