"""Resources: unknown trackers and datasets, dataset groups from a config file, Avro schemas, groups in use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from emulator.config import DEFAULT_ACTION_TRACKING_ID, DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID, load_config
from emulator.testing import EmulatorHandle, running_emulator
from tests.integration.emulator.conftest import event

UNKNOWN_TRACKER = "00000000-0000-0000-0000-000000000000"
UNKNOWN_DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/other/ITEMS"

UNKNOWN_CASES = [
    ("put_events", {"trackingId": UNKNOWN_TRACKER, "sessionId": "s", "eventList": [event()]}),
    (
        "put_action_interactions",
        {
            "trackingId": UNKNOWN_TRACKER,
            "actionInteractions": [{"actionId": "a", "sessionId": "s", "timestamp": 1, "eventType": "Taken"}],
        },
    ),
    # An event tracker is not an action-interactions tracker.
    (
        "put_action_interactions",
        {
            "trackingId": DEFAULT_TRACKING_ID,
            "actionInteractions": [{"actionId": "a", "sessionId": "s", "timestamp": 1, "eventType": "Taken"}],
        },
    ),
    ("put_events", {"trackingId": DEFAULT_ACTION_TRACKING_ID, "sessionId": "s", "eventList": [event()]}),
    ("put_items", {"datasetArn": UNKNOWN_DATASET, "items": [{"itemId": "i"}]}),
    ("put_users", {"datasetArn": UNKNOWN_DATASET.replace("ITEMS", "USERS"), "users": [{"userId": "u"}]}),
    ("put_actions", {"datasetArn": UNKNOWN_DATASET.replace("ITEMS", "ACTIONS"), "actions": [{"actionId": "a"}]}),
]


@pytest.mark.parametrize(
    ("method", "request_members"),
    UNKNOWN_CASES,
    ids=[
        "events",
        "action interactions",
        "event tracker for actions",
        "action tracker for events",
        "items",
        "users",
        "actions",
    ],
)
def test_unknown_target_is_resource_not_found(
    emulator: EmulatorHandle, client: Any, method: str, request_members: dict[str, Any]
) -> None:
    # GIVEN a tracking id or dataset ARN the emulator does not know
    # WHEN a call targets it
    with pytest.raises(client.exceptions.ResourceNotFoundException) as refused:
        getattr(client, method)(**request_members)

    # THEN it is answered 404 ResourceNotFoundException (for PutEvents too: an assumption, see docs/emulator.md)
    # with a message naming the target botocore parsed
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    target = request_members.get("trackingId") or request_members["datasetArn"]
    assert refused.value.response["Error"]["Message"].startswith("Could not find")
    assert target in refused.value.response["Error"]["Message"]
    assert sum(emulator.counts().values()) == 0


@pytest.fixture(scope="module")
def shop_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """An emulator from a config file: the demo group plus a ``shop`` group with schemas and a group in use."""
    folder = tmp_path_factory.mktemp("config")
    (folder / "items.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Items",
                "namespace": "com.amazonaws.personalize.schema",
                "fields": [
                    {"name": "ITEM_ID", "type": "string"},
                    {"name": "GENRES", "type": "string", "categorical": True},
                    {"name": "NUMBER_OF_RATINGS", "type": "int"},
                ],
                "version": "1.0",
            }
        )
    )
    config = {
        "includeDemoGroup": True,
        "datasetGroups": [
            {
                "name": "shop",
                "trackingId": "shop-tracker",
                "datasets": ["ITEMS", "USERS"],
                "schemas": {
                    "ITEMS": "items.avsc",
                    "INTERACTIONS": {
                        "type": "record",
                        "name": "I",
                        "fields": [{"name": "DEVICE", "type": "string"}],
                    },
                },
            },
            {"name": "building", "inUse": True},
        ],
    }
    (folder / "emulator.json").write_text(json.dumps(config))
    with running_emulator(load_config(folder / "emulator.json")) as handle:
        yield handle


@pytest.fixture
def shop(shop_emulator: EmulatorHandle, boto3_session: boto3.session.Session) -> tuple[EmulatorHandle, Any]:
    shop_emulator.reset()
    client = boto3_session.client(
        "personalize-events", endpoint_url=shop_emulator.url, config=Config(retries={"total_max_attempts": 1})
    )
    return shop_emulator, client


SHOP_ITEMS = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


def test_config_file_adds_groups_beside_the_demo_group(shop: tuple[EmulatorHandle, Any]) -> None:
    # GIVEN the emulator started from the config file
    emulator, client = shop

    # WHEN items go to both groups' datasets
    client.put_items(datasetArn=SHOP_ITEMS, items=[{"itemId": "i-1", "properties": '{"genres": "Horror|Action"}'}])
    client.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": "i-2"}])

    # THEN both are stored, each under its own dataset
    assert {row["target"]: row["element"]["itemId"] for row in emulator.records("items")} == {
        SHOP_ITEMS: "i-1",
        DEFAULT_DATASET_ARNS["ITEMS"]: "i-2",
    }
    groups = {group["name"]: group for group in emulator.resources()["datasetGroups"]}
    assert set(groups) == {"demo", "shop", "building"}
    assert set(groups["shop"]["datasets"]) == {"ITEMS", "USERS"}


def test_dataset_not_configured_for_a_group_is_not_found(shop: tuple[EmulatorHandle, Any]) -> None:
    # GIVEN the shop group, configured without an ACTIONS dataset
    _, client = shop

    # WHEN actions are put on what would be its ACTIONS dataset
    # THEN it is not found
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_actions(datasetArn=SHOP_ITEMS.replace("ITEMS", "ACTIONS"), actions=[{"actionId": "a"}])


def test_properties_must_be_schema_fields(shop: tuple[EmulatorHandle, Any]) -> None:
    # GIVEN the shop items schema (ITEM_ID, GENRES, NUMBER_OF_RATINGS)
    emulator, client = shop

    # WHEN an item carries a key that is no field's camelCase name
    with pytest.raises(client.exceptions.InvalidInputException) as refused:
        client.put_items(
            datasetArn=SHOP_ITEMS,
            items=[{"itemId": "i-1", "properties": json.dumps({"numberOfRatings": 3, "NUMBER_OF_RATINGS": 3})}],
        )

    # THEN the call is refused, naming the key (the camelCase key itself is fine)
    message = refused.value.response["Error"]["Message"]
    assert "items[0].properties" in message
    assert "['NUMBER_OF_RATINGS']" in message
    assert emulator.counts()["items"] == 0


def test_interactions_schema_governs_event_properties(shop: tuple[EmulatorHandle, Any]) -> None:
    # GIVEN the shop interactions schema with a DEVICE field
    emulator, client = shop

    # WHEN one event has a schema field and another an unknown key
    client.put_events(trackingId="shop-tracker", sessionId="s", eventList=[event(properties='{"device": "tv"}')])
    with pytest.raises(client.exceptions.InvalidInputException) as refused:
        client.put_events(
            trackingId="shop-tracker", sessionId="s", eventList=[event(properties='{"colour": "red"}')]
        )

    # THEN only the first is accepted
    assert "colour" in refused.value.response["Error"]["Message"]
    assert emulator.counts()["events"] == 1


def test_dataset_group_in_use_answers_resource_in_use(shop: tuple[EmulatorHandle, Any]) -> None:
    # GIVEN a dataset group configured as still being created
    _, client = shop

    # WHEN users are put on its dataset
    # THEN the modelled ResourceInUseException (409) answers
    with pytest.raises(client.exceptions.ResourceInUseException) as refused:
        client.put_users(
            datasetArn="arn:aws:personalize:us-east-1:123456789012:dataset/building/USERS", users=[{"userId": "u"}]
        )
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert refused.value.response["Error"]["Message"] == "Dataset group building is not ACTIVE"


def test_toml_config_with_quota_override(tmp_path: Path) -> None:
    # GIVEN a TOML config with one group and its own PutItems quota, and no clock-skew check
    path = tmp_path / "emulator.toml"
    path.write_text(
        "maxClockSkewSeconds = 0\n\n"
        '[[datasetGroups]]\nname = "solo"\ntrackingId = "solo-tracker"\n\n[datasetGroups.quotas]\nPutItems = 2.5\n'
    )

    # WHEN it is loaded
    config = load_config(path)

    # THEN only that group is served (no demo group unless asked) with its quota override
    assert [group.name for group in config.groups] == ["solo"]
    assert config.groups[0].tracking_id == "solo-tracker"
    assert config.groups[0].quotas == {"PutItems": 2.5}
    assert config.max_clock_skew_s == 0
