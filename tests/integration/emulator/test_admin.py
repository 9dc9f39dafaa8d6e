"""The admin API: filtered records, resources, and refusals of what it does not serve."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from emulator.config import DEFAULT_ACTION_TRACKING_ID, DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID
from emulator.testing import EmulatorAdminError, EmulatorHandle
from tests.integration.emulator.conftest import event


def test_records_filter_by_target_and_limit(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN items on the demo ITEMS dataset
    client.put_items(datasetArn=DEFAULT_DATASET_ARNS["ITEMS"], items=[{"itemId": f"i-{n}"} for n in range(5)])

    # WHEN records are read with a limit, and for another target
    first_two = emulator.records("items", limit=2)
    other_target = emulator.records("items", target=DEFAULT_DATASET_ARNS["USERS"])

    # THEN the limit keeps arrival order and the other target has none
    assert [row["element"]["itemId"] for row in first_two] == ["i-0", "i-1"]
    assert other_target == []


def test_resources_list_the_default_group(emulator: EmulatorHandle) -> None:
    # GIVEN the default configuration
    # WHEN the resources are read
    groups = emulator.resources()["datasetGroups"]

    # THEN the demo group carries the documented identifiers
    assert groups == [
        {
            "name": "demo",
            "trackingId": DEFAULT_TRACKING_ID,
            "actionTrackingId": DEFAULT_ACTION_TRACKING_ID,
            "datasets": DEFAULT_DATASET_ARNS,
            "schemas": [],
            "inUse": False,
        }
    ]


@pytest.mark.parametrize(
    ("route", "status"),
    [("records/movies", 404), ("records/items?limit=many", 400), ("nothing-here", 404)],
    ids=["unknown entity", "bad limit", "unknown route"],
)
def test_admin_refuses_what_it_does_not_serve(emulator: EmulatorHandle, route: str, status: int) -> None:
    # GIVEN a request the admin API does not serve
    # WHEN it is sent
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{emulator.url}/_emulator/{route}", timeout=10)

    # THEN it is refused with a JSON message
    assert refused.value.code == status
    assert "error" in json.loads(refused.value.read())


def test_operation_paths_accept_only_post(emulator: EmulatorHandle) -> None:
    # GIVEN the PutEvents path
    # WHEN it is read with GET
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{emulator.url}/events", timeout=10)

    # THEN no operation answers and nothing is logged as a call
    assert refused.value.code == 404
    assert emulator.calls() == []


def test_quota_for_unknown_operation_is_refused(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN a quota change for an operation that does not exist
    # WHEN it is sent, THEN it is refused and events still flow
    with pytest.raises(EmulatorAdminError):
        emulator.set_quota("PutMovies", 1)
    client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s", eventList=[event()])
    assert emulator.counts()["events"] == 1
