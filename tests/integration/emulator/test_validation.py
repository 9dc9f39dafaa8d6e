"""Every rule of the service model and of the documentation is enforced: InvalidInputException, nothing stored.

``raw_client`` skips botocore's own parameter validation so the emulator sees what a careless producer (or another
SDK) would send.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.config import DEFAULT_ACTION_TRACKING_ID, DEFAULT_DATASET_ARNS, DEFAULT_TRACKING_ID
from emulator.testing import EmulatorHandle
from tests.integration.emulator.conftest import event, raw_post

ITEMS = DEFAULT_DATASET_ARNS["ITEMS"]
USERS = DEFAULT_DATASET_ARNS["USERS"]
ACTIONS = DEFAULT_DATASET_ARNS["ACTIONS"]


def _put_events(client: Any, *events: dict[str, Any]) -> None:
    client.put_events(trackingId=DEFAULT_TRACKING_ID, sessionId="s-1", eventList=list(events))


def _interaction(**overrides: Any) -> dict[str, Any]:
    return {"actionId": "a-1", "sessionId": "s-1", "timestamp": 1_700_000_000, "eventType": "Taken", **overrides}


# Each case: (id, method, request, text the message must contain). Limits are the model's.
EVENT_CASES = [
    ("eventType too long", {"eventList": [event(eventType="x" * 257)]}, "eventList[0].eventType"),
    ("eventId too long", {"eventList": [event(eventId="x" * 257)]}, "eventList[0].eventId"),
    ("itemId too long", {"eventList": [event(itemId="x" * 257)]}, "eventList[0].itemId"),
    ("recommendationId too long", {"eventList": [event(recommendationId="r" * 41)]}, "recommendationId"),
    ("impression over 25 ids", {"eventList": [event(impression=[f"i{n}" for n in range(26)])]}, "impression"),
    ("impression empty", {"eventList": [event(impression=[])]}, "eventList[0].impression"),
    ("impression id empty", {"eventList": [event(impression=[""])]}, "eventList[0].impression[0]"),
    ("more than 10 events", {"eventList": [event() for _ in range(11)]}, "eventList: must have at most 10"),
    ("no events", {"eventList": []}, "eventList: must have at least 1"),
    ("sessionId too long", {"sessionId": "s" * 257, "eventList": [event()]}, "sessionId"),
    ("userId empty", {"userId": "", "eventList": [event()]}, "userId"),
    ("properties too long", {"eventList": [event(properties=json.dumps({"k": "v" * 1100}))]}, "properties"),
    ("properties not JSON", {"eventList": [event(properties="{not json")]}, "not valid JSON"),
    ("properties a JSON array", {"eventList": [event(properties="[1, 2]")]}, "is a JSON list"),
    (
        "properties double-encoded",
        {"eventList": [event(properties=json.dumps(json.dumps({"rating": 5})))]},
        "double-encoded",
    ),
    # NOTE: Python's json module would accept NaN; JSON (RFC 8259) has no such value.
    ("properties with NaN", {"eventList": [event(properties='{"rating": NaN}')]}, "not valid JSON"),
    ("forbidden key userId", {"eventList": [event(properties='{"userId": "u"}')]}, "reserved"),
    ("forbidden key any case", {"eventList": [event(properties='{"EVENTTYPE": "x"}')]}, "EVENTTYPE"),
    ("forbidden key impression", {"eventList": [event(properties='{"Impression": "i"}')]}, "reserved"),
    (
        "attribution source not printable",
        {"eventList": [event(metricAttribution={"eventAttributionSource": "\t"})]},
        "eventAttributionSource",
    ),
    (
        # The model's pattern ends in $, which (ECMAScript) does not match before a final newline.
        "attribution source ends in a newline",
        {"eventList": [event(metricAttribution={"eventAttributionSource": "source 1\n"})]},
        "eventAttributionSource: must match pattern",
    ),
    (
        "attribution source too long",
        {"eventList": [event(metricAttribution={"eventAttributionSource": "s" * 1025})]},
        "eventAttributionSource",
    ),
    ("missing sentAt", {"eventList": [{"eventType": "click"}]}, "eventList[0].sentAt: required"),
    ("missing eventType", {"eventList": [{"sentAt": 1_700_000_000}]}, "eventList[0].eventType: required"),
    ("missing sessionId", {"sessionId": None, "eventList": [event()]}, "sessionId: required"),
    (
        "event over 10 KB",
        # NOTE: multi-byte ids stay within every length limit (characters) while the event exceeds 10 KB (bytes).
        {"eventList": [event(impression=["\u00e9" * 256] * 25)]},
        "bytes, the maximum is 10240",
    ),
]


@pytest.mark.parametrize(
    ("members", "expected"), [case[1:] for case in EVENT_CASES], ids=[c[0] for c in EVENT_CASES]
)
def test_invalid_put_events_is_refused(
    emulator: EmulatorHandle, raw_client: Any, members: dict[str, Any], expected: str
) -> None:
    # GIVEN a PutEvents request that breaks one rule
    request = {"trackingId": DEFAULT_TRACKING_ID, "sessionId": "s-1", **members}
    request = {name: value for name, value in request.items() if value is not None}

    # WHEN it is sent
    with pytest.raises(raw_client.exceptions.InvalidInputException) as refused:
        raw_client.put_events(**request)

    # THEN the message names the element and field, and nothing is stored
    assert expected in refused.value.response["Error"]["Message"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert emulator.counts()["events"] == 0


OTHER_CASES = [
    (
        "item properties over 32,000",
        "put_items",
        {"datasetArn": ITEMS, "items": [{"itemId": "i", "properties": json.dumps({"d": "x" * 32000})}]},
        "items[0].properties: must have at most 32000",
    ),
    (
        "user properties over 24,000",
        "put_users",
        {"datasetArn": USERS, "users": [{"userId": "u", "properties": json.dumps({"d": "x" * 24000})}]},
        "users[0].properties: must have at most 24000",
    ),
    (
        "action properties empty",
        "put_actions",
        {"datasetArn": ACTIONS, "actions": [{"actionId": "a", "properties": ""}]},
        "actions[0].properties: must have at least 1",
    ),
    (
        "item id too long",
        "put_items",
        {"datasetArn": ITEMS, "items": [{"itemId": "i" * 257}]},
        "items[0].itemId",
    ),
    (
        "more than 10 users",
        "put_users",
        {"datasetArn": USERS, "users": [{"userId": "u"}] * 11},
        "users: must have",
    ),
    ("dataset ARN malformed", "put_items", {"datasetArn": "items-dataset", "items": [{"itemId": "i"}]}, "pattern"),
    (
        "dataset of another type",
        "put_items",
        {"datasetArn": USERS, "items": [{"itemId": "i"}]},
        "of type USERS; PutItems needs ITEMS",
    ),
    (
        "action interaction impression over 25",
        "put_action_interactions",
        {
            "trackingId": DEFAULT_ACTION_TRACKING_ID,
            "actionInteractions": [_interaction(impression=[f"a{n}" for n in range(26)])],
        },
        "actionInteractions[0].impression",
    ),
    (
        "action interaction without timestamp",
        "put_action_interactions",
        {
            "trackingId": DEFAULT_ACTION_TRACKING_ID,
            "actionInteractions": [{"actionId": "a", "sessionId": "s", "eventType": "Taken"}],
        },
        "actionInteractions[0].timestamp: required",
    ),
    (
        "action interaction forbidden property",
        "put_action_interactions",
        {
            "trackingId": DEFAULT_ACTION_TRACKING_ID,
            "actionInteractions": [_interaction(properties='{"sessionid": "s"}')],
        },
        "reserved",
    ),
    (
        "second item invalid",
        "put_items",
        {"datasetArn": ITEMS, "items": [{"itemId": "ok"}, {"itemId": "bad", "properties": '"{}"'}]},
        "items[1].properties",
    ),
]


@pytest.mark.parametrize(
    ("method", "request_members", "expected"), [case[1:] for case in OTHER_CASES], ids=[c[0] for c in OTHER_CASES]
)
def test_invalid_request_of_other_operations_is_refused(
    emulator: EmulatorHandle, raw_client: Any, method: str, request_members: dict[str, Any], expected: str
) -> None:
    # GIVEN a request that breaks one rule (possibly beside valid elements)
    # WHEN it is sent
    with pytest.raises(raw_client.exceptions.InvalidInputException) as refused:
        getattr(raw_client, method)(**request_members)

    # THEN it is refused as a whole, naming the element and field
    assert expected in refused.value.response["Error"]["Message"]
    assert sum(emulator.counts().values()) == 0


def test_message_names_each_invalid_element(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN three events of which the second and third are invalid
    events = [event(), event(eventType="x" * 300), event(properties="[]")]

    # WHEN they are put together
    with pytest.raises(client.exceptions.InvalidInputException) as refused:
        _put_events(client, *events)

    # THEN the whole call is refused and the message names both invalid elements and no valid one
    message = refused.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected")
    assert "eventList[1].eventType" in message
    assert "eventList[2].properties" in message
    assert "eventList[0]" not in message
    assert emulator.counts()["events"] == 0
    assert [(call["status"], call["errorCode"]) for call in emulator.calls()] == [(400, "InvalidInputException")]


def test_values_at_the_limits_are_accepted(emulator: EmulatorHandle, client: Any) -> None:
    # GIVEN an event with every member at its maximum size
    longest = event(
        eventId="e" * 256,
        eventType="t" * 256,
        itemId="i" * 256,
        recommendationId="r" * 40,
        impression=[f"{n:0>256}" for n in range(25)],
        properties=json.dumps({"note": "n" * (1024 - len('{"note": ""}'))}),
        metricAttribution={"eventAttributionSource": "source 1"},
    )

    # WHEN it is put
    _put_events(client, longest)

    # THEN it is stored unchanged
    assert emulator.elements("events") == [longest]


# botocore's serializer would convert or drop these before they reach the wire; other SDKs or hand-made requests
# can send them, so they go out as raw signed JSON.
WIRE_CASES = [
    ("sentAt not a number", {"eventList": [event(sentAt="yesterday")]}, "eventList[0].sentAt"),
    ("sentAt negative", {"eventList": [event(sentAt=-1)]}, "eventList[0].sentAt"),
    ("eventValue a string", {"eventList": [event(eventValue="1.5")]}, "eventList[0].eventValue"),
    ("eventValue a boolean", {"eventList": [event(eventValue=True)]}, "eventList[0].eventValue"),
    ("unknown member", {"eventList": [event(itemID="i-1")]}, "eventList[0].itemID: unknown member"),
    ("element not an object", {"eventList": ["click"]}, "eventList[0]: must be an object"),
    ("properties an object", {"eventList": [event(properties={"rating": 5})]}, "eventList[0].properties"),
]


@pytest.mark.parametrize(
    ("members", "expected"), [case[1:] for case in WIRE_CASES], ids=[c[0] for c in WIRE_CASES]
)
def test_invalid_wire_values_are_refused(emulator: EmulatorHandle, members: dict[str, Any], expected: str) -> None:
    # GIVEN a request body no botocore client would produce
    body = {"trackingId": DEFAULT_TRACKING_ID, "sessionId": "s-1", **members}

    # WHEN it is posted, correctly signed
    answer = raw_post(emulator.url, "/events", body)

    # THEN it is refused with InvalidInputException naming the element and field
    assert (answer.status, answer.error_code) == (400, "InvalidInputException")
    assert expected in answer.body["message"]
    assert emulator.counts()["events"] == 0


def test_body_that_is_not_json_is_refused(emulator: EmulatorHandle) -> None:
    # GIVEN a body that is not JSON
    # WHEN it is posted, correctly signed
    answer = raw_post(emulator.url, "/items", b"itemId=i-1")

    # THEN it is refused as a serialization error
    assert (answer.status, answer.error_code) == (400, "SerializationException")


def test_javascript_sdk_style_request_is_accepted(emulator: EmulatorHandle) -> None:
    # GIVEN what the JavaScript SDK v2 sends: fractional epoch seconds and properties it JSON-encoded itself
    body = {
        "trackingId": DEFAULT_TRACKING_ID,
        "sessionId": "s-1",
        "eventList": [{"eventType": "click", "sentAt": 1795978246.729, "properties": '{"rating":5}'}],
    }

    # WHEN it is posted
    answer = raw_post(emulator.url, "/events", body)

    # THEN it is accepted with an empty body and stored
    assert (answer.status, answer.body) == (200, None)
    assert emulator.elements("events") == body["eventList"]
