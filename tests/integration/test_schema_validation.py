"""Schema-aware validation end to end: a record that breaks the dataset schema is rejected locally and its call
is not split; the schema comes from configuration or, by ARN, from the Personalize control plane (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest

from emulator.config import EmulatorConfig, default_group
from emulator.testing import EmulatorHandle, running_emulator
from personalize_ingest import schema as schema_module
from tests.integration.test_handlers import Stack, build_stack
from tests.support import factories as f
from tests.unit.test_schema_validation import INTERACTIONS_SCHEMA


@pytest.fixture
def schema_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    """An emulator whose demo group has an interactions schema with a DEVICE field (the service's own check)."""
    config = EmulatorConfig(groups=[replace(default_group(), schemas={"INTERACTIONS": INTERACTIONS_SCHEMA})])
    with running_emulator(config) as emulator:
        monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", emulator.url)
        yield emulator


@pytest.fixture
def stack(moto_env: str, schema_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Stack:
    # NOTE: a schema fetched by ARN is remembered per container; each test starts without it.
    monkeypatch.setattr(schema_module, "_fetched", {})
    monkeypatch.setattr(schema_module, "_schemas", {})
    return build_stack(schema_emulator, monkeypatch)


def two_sessions_with_one_typo() -> dict[str, Any]:
    """20 events in two sessions of ten; the 14th has a property the schema does not have (``devise``)."""
    events = [
        {
            "userId": f"u-{index // 10}",
            "sessionId": f"s-{index // 10}",
            "eventType": "click",
            "itemId": f"i-{index}",
            "sentAt": 1_795_978_246 + index,
            "properties": {"devise" if index == 13 else "device": "ios"},
        }
        for index in range(20)
    ]
    return f.kinesis_event(events)


def run(stack: Stack, **settings: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    handler = stack.configure("events", **settings)
    response = handler(two_sessions_with_one_typo(), f.FakeLambdaContext())
    return response, stack.rejects()


def test_with_the_schema_the_bad_record_is_rejected_locally_and_no_call_is_split(stack: Stack) -> None:
    # GIVEN the interactions schema in the function's configuration
    # WHEN the batch is handled
    response, rejects = run(stack, DATASET_SCHEMA=json.dumps(INTERACTIONS_SCHEMA))

    # THEN one call per session, the 19 good events stored, the typo set aside naming the field and the fix
    calls = stack.emulator.calls("PutEvents")
    assert [call["status"] for call in calls] == [200, 200]
    assert len(stack.emulator.records("events")) == 19
    assert response == {"batchItemFailures": []}
    ((reject,),) = [rejects]
    assert reject["code"] == "unknown_field"
    assert "properties.devise is not a field of the dataset schema; did you mean 'device'?" in reject["reason"]


def test_without_the_schema_the_service_refuses_the_call_and_it_is_split(stack: Stack) -> None:
    # GIVEN no schema configured: the same batch, the same service
    # WHEN handled
    response, rejects = run(stack)

    # THEN the service's refusal split the second session's call until the record stood alone (the waste the
    # schema avoids), and the record was still set aside, as refused by the service
    calls = stack.emulator.calls("PutEvents")
    assert len(calls) > 2
    assert len(stack.emulator.records("events")) == 19
    assert response == {"batchItemFailures": []}
    assert [reject["code"] for reject in rejects] == ["service_rejected"]


def test_the_schema_is_read_once_by_arn_from_the_control_plane(stack: Stack) -> None:
    # GIVEN the schema registered in Personalize (moto's control plane) and its ARN in the configuration
    personalize = boto3.client("personalize")
    arn = personalize.create_schema(name="interactions-with-device", schema=json.dumps(INTERACTIONS_SCHEMA))[
        "schemaArn"
    ]

    # WHEN the batch is handled twice (a warm container)
    first, first_rejects = run(stack, DATASET_SCHEMA_ARN=arn)
    personalize.delete_schema(schemaArn=arn)
    second, second_rejects = run(stack, DATASET_SCHEMA_ARN=arn)

    # THEN the typo was rejected locally both times (the second time from the schema kept by the container)
    assert [call["status"] for call in stack.emulator.calls("PutEvents")] == [200] * 4
    assert [r["code"] for r in first_rejects + second_rejects] == ["unknown_field", "unknown_field"]
    assert first == second == {"batchItemFailures": []}


def test_a_schema_that_cannot_be_read_sets_no_good_record_aside(stack: Stack) -> None:
    # GIVEN a schema ARN that does not exist (or a role without personalize:DescribeSchema)
    missing = "arn:aws:personalize:us-east-1:123456789012:schema/missing"

    # WHEN the batch is handled
    response, rejects = run(stack, DATASET_SCHEMA_ARN=missing)

    # THEN the function validated without the schema: every good event stored, only the service's refusal set aside
    assert len(stack.emulator.records("events")) == 19
    assert response == {"batchItemFailures": []}
    assert [reject["code"] for reject in rejects] == ["service_rejected"]
