"""prepare(): one decoded record -> a wire-ready element, or a rejection naming the field and the rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from personalize_ingest.entities import ACTION_INTERACTIONS, ACTIONS, ENTITIES, EVENTS, ITEMS, USERS, Entity
from personalize_ingest.model import KINESIS, S3, Prepared, Record, RecordRejected, Rejection, SourceRef
from personalize_ingest.records import prepare
from personalize_ingest.validation import rules_for

EXAMPLES = json.loads((Path(__file__).parents[2] / "schemas" / "examples" / "records.json").read_text())
KINESIS_SOURCE = SourceRef(
    KINESIS,
    arn="arn:aws:kinesis:us-east-1:123456789012:stream/interactions",
    sequence_number="49590338271490256608559692538361571095921575989136588898",
)
CSV_SOURCE = SourceRef(
    S3, bucket="ingest", key="events/ratings.csv", etag="9b2cf535f27731c974343645a3985328", line=2
)
ARRIVAL = 1764400123.25
DERIVED_ID = KINESIS_SOURCE.derived_event_id()
SECRET_USER = "user-secret-4242"


def record(value: Any, source: SourceRef = KINESIS_SOURCE) -> Record:
    return Record(item_id=source.sequence_number or "s3", source=source, value=value, arrival_time=ARRIVAL)


def rejection(entity: Entity, value: Any, **kwargs: Any) -> Rejection:
    with pytest.raises(RecordRejected) as raised:
        prepare(entity, record(value), **kwargs)
    return raised.value.rejection


# --- accepted: (case, entity, record value, keyword arguments, expected element, expected ids) ----------------

ACCEPTED: list[tuple[str, Entity, Any, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "issue example: events camelCase",
        EVENTS,
        {
            "sessionId": "s-1",
            "userId": "u-1",
            "eventType": "click",
            "itemId": "i-9",
            "sentAt": 1764400000,
            "properties": {"discount": "yes"},
        },
        {},
        {
            "eventType": "click",
            "itemId": "i-9",
            "sentAt": 1764400000.0,
            "properties": '{"discount":"yes"}',
            "eventId": DERIVED_ID,
        },
        {"session_id": "s-1", "user_id": "u-1", "entity_id": None},
    ),
    (
        "events bulk: MovieLens row, session from user, type from the default, value converted",
        EVENTS,
        {"USER_ID": "1", "ITEM_ID": "31", "EVENT_VALUE": "2.5", "TIMESTAMP": "1260759144"},
        {"default_event_type": "rating"},
        {"itemId": "31", "eventType": "rating", "eventValue": 2.5, "sentAt": 1260759144.0, "eventId": DERIVED_ID},
        {"session_id": "1", "user_id": "1"},
    ),
    (
        "events bulk: other columns become camelCase properties, strings kept, empty cells absent",
        EVENTS,
        {"USER_ID": "7", "EVENT_TYPE": "watch", "DEVICE_TYPE": "tv", "NUMBER_OF_PAUSES": "3", "PROMO": ""},
        {},
        {
            "eventType": "watch",
            "sentAt": ARRIVAL,
            "eventId": DERIVED_ID,
            "properties": '{"deviceType":"tv","numberOfPauses":"3"}',
        },
        {"session_id": "7", "user_id": "7"},
    ),
    (
        "events: given eventId, millisecond sentAt, anonymous session, numeric-string eventValue",
        EVENTS,
        {
            "sessionId": "anon-1",
            "eventType": "click",
            "eventId": "e-1",
            "sentAt": 1764400000123,
            "eventValue": "4",
        },
        {},
        {"eventType": "click", "eventId": "e-1", "sentAt": 1764400000.123, "eventValue": 4.0},
        {"session_id": "anon-1", "user_id": None},
    ),
    (
        "events: properties as a JSON string, arrays joined, null dropped, numbers kept",
        EVENTS,
        {
            "userId": "u-1",
            "eventType": "click",
            "properties": '{"genres": ["Horror", "Action"], "rank": 3, "promo": null, "new": true}',
        },
        {},
        {
            "eventType": "click",
            "sentAt": ARRIVAL,
            "eventId": DERIVED_ID,
            "properties": '{"genres":"Horror|Action","rank":3,"new":true}',
        },
        {"session_id": "u-1", "user_id": "u-1"},
    ),
    (
        "events: impression as a list and recommendation id; null and '' top-level values are absent",
        EVENTS,
        {
            "userId": "u-1",
            "eventType": "click",
            "impression": ["i-1", "i-2"],
            "recommendationId": "RID-1",
            "itemId": None,
            "eventValue": "",
            "metricAttribution": {"eventAttributionSource": "campaign-a"},
        },
        {},
        {
            "eventType": "click",
            "impression": ["i-1", "i-2"],
            "recommendationId": "RID-1",
            "metricAttribution": {"eventAttributionSource": "campaign-a"},
            "sentAt": ARRIVAL,
            "eventId": DERIVED_ID,
        },
        {"session_id": "u-1", "user_id": "u-1"},
    ),
    (
        "events bulk: IMPRESSION pipe-separated, numeric ids of bulk JSON become strings",
        EVENTS,
        {"USER_ID": 12, "ITEM_ID": 31, "EVENT_TYPE": "click", "IMPRESSION": "31|32|33", "TIMESTAMP": 1764400000},
        {},
        {
            "itemId": "31",
            "eventType": "click",
            "impression": ["31", "32", "33"],
            "sentAt": 1764400000.0,
            "eventId": DERIVED_ID,
        },
        {"session_id": "12", "user_id": "12"},
    ),
    (
        "action interactions camelCase: session and user stay in the element, ISO timestamp",
        ACTION_INTERACTIONS,
        {
            "actionId": "a-7",
            "userId": "u-1",
            "sessionId": "s-1",
            "eventType": "Taken",
            "timestamp": "2025-11-29T08:15:00Z",
        },
        {},
        {
            "actionId": "a-7",
            "userId": "u-1",
            "sessionId": "s-1",
            "eventType": "Taken",
            "timestamp": 1764404100.0,
            "eventId": DERIVED_ID,
        },
        {"session_id": None, "user_id": None, "entity_id": None},
    ),
    (
        "action interactions bulk: session from user, default event type, TIMESTAMP in microseconds",
        ACTION_INTERACTIONS,
        {"USER_ID": "u-1", "ACTION_ID": "a-7", "TIMESTAMP": "1764400000000000", "EVENT_VALUE": "1"},
        {"default_event_type": "Viewed"},
        {
            "actionId": "a-7",
            "userId": "u-1",
            "sessionId": "u-1",
            "eventType": "Viewed",
            "timestamp": 1764400000.0,
            "eventId": DERIVED_ID,
            "properties": '{"eventValue":"1"}',
        },
        {},
    ),
    (
        "items camelCase: entity id, no timestamp or eventId added",
        ITEMS,
        {"itemId": "i-9", "properties": {"genres": ["Comedy", "Drama"], "price": 12.5}},
        {},
        {"itemId": "i-9", "properties": '{"genres":"Comedy|Drama","price":12.5}'},
        {"entity_id": "i-9", "session_id": None, "user_id": None},
    ),
    (
        "items bulk: CREATION_TIMESTAMP is a schema field like any other",
        ITEMS,
        {
            "ITEM_ID": "1",
            "TITLE": "Toy Story (1995)",
            "GENRES": "Adventure|Animation",
            "CREATION_TIMESTAMP": "788918400",
        },
        {},
        {
            "itemId": "1",
            "properties": '{"title":"Toy Story (1995)","genres":"Adventure|Animation",'
            '"creationTimestamp":"788918400"}',
        },
        {"entity_id": "1"},
    ),
    (
        "items bulk: only empty property cells -> no properties member",
        ITEMS,
        {"ITEM_ID": "1", "GENRES": ""},
        {},
        {"itemId": "1"},
        {"entity_id": "1"},
    ),
    (
        "users camelCase: properties string re-serialised compactly, non-ASCII kept",
        USERS,
        {"userId": "u-1", "properties": '{ "membership" : "gold", "city": "Zürich" }'},
        {},
        {"userId": "u-1", "properties": '{"membership":"gold","city":"Zürich"}'},
        {"entity_id": "u-1"},
    ),
    (
        "users bulk",
        USERS,
        {"USER_ID": "u-1", "MEMBERSHIP": "gold", "AGE": "42"},
        {},
        {"userId": "u-1", "properties": '{"membership":"gold","age":"42"}'},
        {"entity_id": "u-1"},
    ),
    (
        "actions camelCase",
        ACTIONS,
        {"actionId": "a-7", "properties": {"value": 5}},
        {},
        {"actionId": "a-7", "properties": '{"value":5}'},
        {"entity_id": "a-7"},
    ),
    (
        "actions bulk",
        ACTIONS,
        {"ACTION_ID": "a-7", "ACTION_EXPIRATION_TIMESTAMP": "1767225600", "REPEAT_FREQUENCY": "30"},
        {},
        {"actionId": "a-7", "properties": '{"actionExpirationTimestamp":"1767225600","repeatFrequency":"30"}'},
        {"entity_id": "a-7"},
    ),
    (
        "items: an integer property beyond a double is kept as written (only floats can be infinite)",
        ITEMS,
        {"itemId": "i-1", "properties": {"views": 10**400, "ratio": 0.5}},
        {},
        {"itemId": "i-1", "properties": '{"views":1' + "0" * 400 + ',"ratio":0.5}'},
        {"entity_id": "i-1"},
    ),
]


@pytest.mark.parametrize(
    ("entity", "value", "kwargs", "element", "ids"),
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_accepted_record_becomes_the_wire_element(
    entity: Entity, value: Any, kwargs: dict[str, Any], element: dict[str, Any], ids: dict[str, Any]
) -> None:
    # GIVEN a valid record of the entity
    rec = record(value)
    # WHEN it is prepared
    prepared = prepare(entity, rec, **kwargs)
    # THEN the element is exactly what goes on the wire, and the request-level / upsert ids are set apart
    assert isinstance(prepared, Prepared)
    assert prepared.record is rec
    assert prepared.element == element
    for name, expected in ids.items():
        assert getattr(prepared, name) == expected, name


@pytest.mark.parametrize("entity_name", list(ENTITIES))
@pytest.mark.parametrize("style", ["camelCase", "bulk"])
def test_published_examples_are_accepted(entity_name: str, style: str) -> None:
    # GIVEN the example record of docs/records.md and schemas/examples/records.json
    value = EXAMPLES[entity_name][style]
    # WHEN it is prepared with a default event type (the bulk examples may omit EVENT_TYPE)
    prepared = prepare(ENTITIES[entity_name], record(value), default_event_type="click")
    # THEN it is accepted and its properties are a JSON object string
    if "properties" in prepared.element:
        assert isinstance(json.loads(prepared.element["properties"]), dict)


def test_the_same_row_gets_the_same_event_id_on_every_delivery() -> None:
    # GIVEN the same CSV row read twice (S3 notified twice) and another row of the same object
    row = {"USER_ID": "1", "ITEM_ID": "31", "EVENT_TYPE": "rating", "TIMESTAMP": "1260759144"}
    next_line = SourceRef(S3, bucket="ingest", key="events/ratings.csv", etag=CSV_SOURCE.etag, line=3)
    # WHEN each is prepared
    first = prepare(EVENTS, record(row, CSV_SOURCE))
    again = prepare(EVENTS, record(dict(row), CSV_SOURCE))
    other = prepare(EVENTS, record(dict(row), next_line))
    # THEN the derived eventId names the row, not the delivery
    assert first.element["eventId"] == again.element["eventId"] == CSV_SOURCE.derived_event_id()
    assert other.element["eventId"] != first.element["eventId"]


# --- rejected: (case, entity, record value, keyword arguments, code, words the reason must contain) ------------

BIG = "x" * 300
REJECTED: list[tuple[str, Entity, Any, dict[str, Any], str, tuple[str, ...]]] = [
    ("number", EVENTS, 42, {}, "not_an_object", ("expected a JSON object, got a number",)),
    ("array", ITEMS, [{"itemId": "i"}], {}, "not_an_object", ("got an array",)),
    ("string", USERS, "u-1", {}, "not_an_object", ("got a string",)),
    ("null", ACTIONS, None, {}, "not_an_object", ("got null",)),
    ("boolean", ACTION_INTERACTIONS, True, {}, "not_an_object", ("got a boolean",)),
    (
        "mixed styles",
        EVENTS,
        {"USER_ID": "1", "itemId": "9", "eventType": "click"},
        {},
        "mixed_styles",
        ("camelCase fields (itemId, eventType)", "UPPER_SNAKE columns (USER_ID)"),
    ),
    (
        "CSV row with more cells than columns",
        ITEMS,
        {"ITEM_ID": "i", None: ["x"]},
        {},
        "unknown_field",
        ("more cells than its header has columns",),
    ),
    ("unknown field, case", ITEMS, {"itemID": "i-1"}, {}, "unknown_field", ("'itemID'", "did you mean 'itemId'?")),
    (
        "properties string nested too deeply to parse",
        ITEMS,
        {"itemId": "i-1", "properties": '{"a":' * 5_000 + "1" + "}" * 5_000},
        {},
        "invalid_properties",
        ("properties is a string but not valid JSON",),
    ),
    (
        "event value beyond a double",
        EVENTS,
        {"userId": "u", "eventType": "rating", "eventValue": 10**400},
        {},
        "invalid_type",
        ("eventValue must be a finite number",),
    ),
    (
        "timestamp beyond a double",
        ACTION_INTERACTIONS,
        {"actionId": "a", "sessionId": "s", "eventType": "Taken", "timestamp": 10**400},
        {},
        "invalid_timestamp",
        ("timestamp is too large",),
    ),
    (
        "unknown field, snake",
        EVENTS,
        {"user_id": "u", "eventType": "x"},
        {},
        "unknown_field",
        ("'user_id'", "did you mean 'userId'?"),
    ),
    (
        "unknown field, typo",
        ACTIONS,
        {"actionId": "a", "propertes": {}},
        {},
        "unknown_field",
        ("'propertes'", "did you mean 'properties'?"),
    ),
    (
        "unknown field, no guess",
        USERS,
        {"userId": "u", "zzz": 1},
        {},
        "unknown_field",
        ("'zzz'", "known fields: userId, properties"),
    ),
    (
        "events without session or user",
        EVENTS,
        {"eventType": "click", "itemId": "i"},
        {},
        "missing_field",
        ("sessionId is missing", "no userId"),
    ),
    (
        "events bulk without session or user",
        EVENTS,
        {"ITEM_ID": "i", "EVENT_TYPE": "click"},
        {},
        "missing_field",
        ("SESSION_ID is missing", "no USER_ID"),
    ),
    (
        "action interactions without session or user",
        ACTION_INTERACTIONS,
        {"actionId": "a", "eventType": "Taken"},
        {},
        "missing_field",
        ("sessionId is missing",),
    ),
    (
        "events without type or default",
        EVENTS,
        {"userId": "u"},
        {},
        "missing_field",
        ("eventType is missing", "DEFAULT_EVENT_TYPE"),
    ),
    (
        "action interactions bulk without type or default",
        ACTION_INTERACTIONS,
        {"ACTION_ID": "a", "USER_ID": "u"},
        {},
        "missing_field",
        ("EVENT_TYPE is missing",),
    ),
    (
        "action interactions without actionId",
        ACTION_INTERACTIONS,
        {"userId": "u", "eventType": "Taken"},
        {},
        "missing_field",
        ("actionId is required",),
    ),
    ("items without id", ITEMS, {"properties": {"a": "b"}}, {}, "missing_field", ("itemId is required",)),
    (
        "items bulk with empty id",
        ITEMS,
        {"ITEM_ID": "", "GENRES": "a"},
        {},
        "missing_field",
        ("ITEM_ID is required",),
    ),
    ("users without id", USERS, {}, {}, "missing_field", ("userId is required",)),
    ("actions bulk without id", ACTIONS, {"VALUE": "5"}, {}, "missing_field", ("ACTION_ID is required",)),
    (
        "items id too long",
        ITEMS,
        {"itemId": BIG},
        {},
        "too_long",
        ("itemId is 300 characters; the maximum is 256",),
    ),
    ("users bulk id too long", USERS, {"USER_ID": BIG}, {}, "too_long", ("USER_ID is 300 characters",)),
    (
        "events user id too long (request member)",
        EVENTS,
        {"userId": BIG, "eventType": "x"},
        {},
        "too_long",
        ("userId is 300 characters; the maximum is 256",),
    ),
    (
        "recommendation id too long",
        EVENTS,
        {"userId": "u", "eventType": "x", "recommendationId": "r" * 41},
        {},
        "too_long",
        ("recommendationId is 41 characters; the maximum is 40",),
    ),
    (
        "event type too long",
        ACTION_INTERACTIONS,
        {"actionId": "a", "userId": "u", "eventType": BIG},
        {},
        "too_long",
        ("eventType is 300 characters",),
    ),
    (
        "too many impressions in a list",
        EVENTS,
        {"userId": "u", "eventType": "x", "impression": [f"i{n}" for n in range(26)]},
        {},
        "too_many_impressions",
        ("impression has 26 entries; the maximum is 25",),
    ),
    (
        "too many impressions in a pipe string",
        ACTION_INTERACTIONS,
        {"ACTION_ID": "a", "USER_ID": "u", "EVENT_TYPE": "x", "IMPRESSION": "|".join(f"a{n}" for n in range(30))},
        {},
        "too_many_impressions",
        ("IMPRESSION has 30 entries",),
    ),
    (
        "empty id inside impression",
        EVENTS,
        {"USER_ID": "u", "EVENT_TYPE": "x", "IMPRESSION": "a||b"},
        {},
        "too_short",
        ("IMPRESSION[1] is 0 characters; the minimum is 1",),
    ),
    (
        "impression of numbers in camelCase",
        EVENTS,
        {"userId": "u", "eventType": "x", "impression": [1, 2]},
        {},
        "invalid_type",
        ("impression[0] must be a string, got a number",),
    ),
    (
        "impression neither list nor string",
        EVENTS,
        {"userId": "u", "eventType": "x", "impression": {"a": 1}},
        {},
        "invalid_type",
        ("impression must be an array of strings",),
    ),
    (
        "non-numeric EVENT_VALUE",
        EVENTS,
        {"USER_ID": "u", "EVENT_TYPE": "x", "EVENT_VALUE": "four"},
        {},
        "invalid_type",
        ("EVENT_VALUE must be a number, got a non-numeric string",),
    ),
    (
        "boolean eventValue",
        EVENTS,
        {"userId": "u", "eventType": "x", "eventValue": True},
        {},
        "invalid_type",
        ("eventValue must be a number, got a boolean",),
    ),
    (
        "infinite eventValue",
        EVENTS,
        {"userId": "u", "eventType": "x", "eventValue": float("inf")},
        {},
        "invalid_type",
        ("eventValue must be a finite number",),
    ),
    (
        "numeric id in camelCase",
        ITEMS,
        {"itemId": 12},
        {},
        "invalid_type",
        ("itemId must be a string, got a number",),
    ),
    (
        "boolean id in bulk",
        USERS,
        {"USER_ID": True},
        {},
        "invalid_type",
        ("USER_ID must be a string, got a boolean",),
    ),
    (
        "metricAttribution not an object",
        EVENTS,
        {"userId": "u", "eventType": "x", "metricAttribution": "campaign"},
        {},
        "invalid_type",
        ("metricAttribution must be an object, got a string",),
    ),
    (
        "metricAttribution with an unknown member",
        EVENTS,
        {"userId": "u", "eventType": "x", "metricAttribution": {"eventAttributionSource": "a", "extra": 1}},
        {},
        "unknown_field",
        ("metricAttribution.extra",),
    ),
    (
        "metricAttribution without its required member",
        EVENTS,
        {"userId": "u", "eventType": "x", "metricAttribution": {}},
        {},
        "missing_field",
        ("metricAttribution.eventAttributionSource is required",),
    ),
    (
        "metricAttribution source not printable ASCII",
        EVENTS,
        {"userId": "u", "eventType": "x", "metricAttribution": {"eventAttributionSource": "tab\there"}},
        {},
        "pattern_mismatch",
        ("metricAttribution.eventAttributionSource does not match the pattern",),
    ),
    (
        "garbage sentAt",
        EVENTS,
        {"userId": "u", "eventType": "x", "sentAt": "yesterday"},
        {},
        "invalid_timestamp",
        ("sentAt is a 9-character string",),
    ),
    (
        "garbage TIMESTAMP",
        ACTION_INTERACTIONS,
        {"ACTION_ID": "a", "USER_ID": "u", "EVENT_TYPE": "x", "TIMESTAMP": "-5"},
        {},
        "invalid_timestamp",
        ("TIMESTAMP must be a positive epoch time",),
    ),
    (
        "object timestamp",
        ACTION_INTERACTIONS,
        {"actionId": "a", "userId": "u", "eventType": "x", "timestamp": {"s": 1}},
        {},
        "invalid_timestamp",
        ("timestamp must be a number or a string, got an object",),
    ),
    (
        "properties string not JSON",
        USERS,
        {"userId": "u", "properties": "{membership: gold}"},
        {},
        "invalid_properties",
        ("properties is a string but not valid JSON",),
    ),
    (
        "properties string holding an array",
        ITEMS,
        {"itemId": "i", "properties": "[1, 2]"},
        {},
        "invalid_properties",
        ("got a string holding an array",),
    ),
    (
        "properties encoded twice",
        ITEMS,
        {"itemId": "i", "properties": json.dumps(json.dumps({"a": "b"}))},
        {},
        "invalid_properties",
        ("holding a string (encoded twice?)",),
    ),
    (
        "properties a number",
        ACTIONS,
        {"actionId": "a", "properties": 5},
        {},
        "invalid_properties",
        ("properties must be an object or a string holding a JSON object, got a number",),
    ),
    (
        "nested object inside properties",
        ITEMS,
        {"itemId": "i", "properties": {"size": {"w": 1}}},
        {},
        "invalid_properties",
        ("properties.size is an object",),
    ),
    (
        "object inside a properties array",
        ITEMS,
        {"itemId": "i", "properties": {"tags": ["a", {"b": 1}]}},
        {},
        "invalid_properties",
        ("properties.tags is an array holding an object",),
    ),
    (
        "empty property key",
        USERS,
        {"userId": "u", "properties": {"": "x"}},
        {},
        "invalid_properties",
        ("empty key",),
    ),
    (
        "two columns with the same property name",
        ITEMS,
        {"ITEM_ID": "i", "FOO_BAR": "1", "FOO__BAR": "2"},
        {},
        "invalid_properties",
        ("FOO_BAR and FOO__BAR both become the property 'fooBar'",),
    ),
    (
        "forbidden property key, other case",
        EVENTS,
        {"userId": "u", "eventType": "x", "properties": {"USERID": "u"}},
        {},
        "forbidden_property",
        ("properties.USERID is reserved",),
    ),
    (
        "forbidden property key in a string",
        ACTION_INTERACTIONS,
        {"actionId": "a", "userId": "u", "eventType": "x", "properties": '{"Timestamp": 5}'},
        {},
        "forbidden_property",
        ("properties.Timestamp is reserved",),
    ),
    (
        "forbidden bulk column of another entity",
        ITEMS,
        {"ITEM_ID": "i", "USER_ID": "u"},
        {},
        "forbidden_property",
        ("column USER_ID (property 'userId') is reserved",),
    ),
    (
        "forbidden bulk column spelled without underscore",
        EVENTS,
        {"USER_ID": "u", "EVENT_TYPE": "x", "SESSIONID": "s"},
        {},
        "forbidden_property",
        ("column SESSIONID",),
    ),
    (
        "events properties too long",
        EVENTS,
        {"userId": "u", "eventType": "x", "properties": {"note": "n" * 1100}},
        {},
        "too_long",
        ("properties is 1111 characters; the maximum is 1024",),
    ),
    (
        "users bulk properties too long",
        USERS,
        {"USER_ID": "u", "BIO": "b" * 24000},
        {},
        "too_long",
        ("properties (the record's non-field columns) is 24010 characters; the maximum is 24000",),
    ),
]


@pytest.mark.parametrize(
    ("entity", "value", "kwargs", "code", "words"),
    [case[1:] for case in REJECTED],
    ids=[case[0] for case in REJECTED],
)
def test_invalid_record_is_rejected_with_a_specific_reason(
    entity: Entity, value: Any, kwargs: dict[str, Any], code: str, words: tuple[str, ...]
) -> None:
    # GIVEN an invalid record
    # WHEN it is prepared
    rejected = rejection(entity, value, **kwargs)
    # THEN the rejection carries the stable code and a reason naming the field and the rule
    assert rejected.code == code, rejected.reason
    for word in words:
        assert word in rejected.reason


def test_a_decode_error_is_raised_as_it_is() -> None:
    # GIVEN a record the source could not decode
    decode_error = Rejection("invalid_json", "the message body is not valid JSON (line 1, column 2)")
    rec = Record("m-1", KINESIS_SOURCE, "{not json", ARRIVAL, decode_error=decode_error)
    # WHEN it is prepared
    with pytest.raises(RecordRejected) as raised:
        prepare(EVENTS, rec)
    # THEN the source's rejection comes back unchanged
    assert raised.value.rejection == decode_error


def test_rows_of_a_bad_header_are_all_rejected_the_same_way() -> None:
    # GIVEN two rows of a file whose header mixes styles (the layout of a key set is cached)
    rows = [{"ITEM_ID": str(n), "title": "t"} for n in range(2)]
    # WHEN both are prepared
    reasons = [rejection(ITEMS, row) for row in rows]
    # THEN both carry the same rejection
    assert reasons[0] == reasons[1]
    assert reasons[0].code == "mixed_styles"


def test_default_event_type_does_not_override_the_records_own() -> None:
    # GIVEN an events record with its own type, and a configured default
    value = {"userId": "u", "eventType": "purchase"}
    # WHEN it is prepared
    prepared = prepare(EVENTS, record(value), default_event_type="click")
    # THEN the record's type wins
    assert prepared.element["eventType"] == "purchase"


def test_entities_without_event_type_ignore_the_default() -> None:
    # GIVEN an item record and a default event type
    # WHEN it is prepared
    prepared = prepare(ITEMS, record({"itemId": "i"}), default_event_type="click")
    # THEN no eventType is added to an element that has none
    assert prepared.element == {"itemId": "i"}


def test_the_input_value_is_not_modified() -> None:
    # GIVEN a record whose value will later go to the rejects queue as received
    value = {"USER_ID": "1", "ITEM_ID": "31", "EVENT_TYPE": "rating", "GENRES": ["a", "b"]}
    before = json.loads(json.dumps(value))
    # WHEN it is prepared
    prepare(EVENTS, record(value))
    # THEN the value is unchanged
    assert value == before


@pytest.mark.parametrize(
    "value",
    [
        {"userId": SECRET_USER, "eventType": "x", "recommendationId": SECRET_USER * 3},
        {"USER_ID": SECRET_USER, "EVENT_TYPE": "x", "TIMESTAMP": SECRET_USER},
        {"userId": SECRET_USER, "eventType": "x", "properties": {"note": SECRET_USER * 100}},
        {"userId": SECRET_USER, "eventType": "x", "properties": {"userid": SECRET_USER}},
        {"userId": SECRET_USER * 20, "eventType": "x"},
    ],
)
def test_reasons_never_carry_ids_or_property_values(value: dict[str, Any]) -> None:
    # GIVEN an invalid record full of a recognisable user id
    # WHEN it is rejected
    rejected = rejection(EVENTS, value)
    # THEN the reason names fields and rules only
    assert SECRET_USER not in rejected.reason


@pytest.mark.parametrize("entity_name", list(ENTITIES))
def test_every_entity_field_is_accepted_in_camel_case(entity_name: str) -> None:
    # GIVEN a record using every field the model gives the entity (nothing copied from the model by hand)
    entity = ENTITIES[entity_name]
    rules = rules_for(entity)
    samples = {
        "string": "v",
        "float": 1.5,
        "timestamp": 1764400000,
        "list": ["v"],
        "structure": {"eventAttributionSource": "src"},
    }
    value = {name: samples[rule.type_name] for name, rule in {**rules.request, **rules.element}.items()}
    value["properties"] = {"color": "red"}
    # WHEN it is prepared
    prepared = prepare(entity, record(value))
    # THEN every element member is on the element and request members are set apart
    assert set(prepared.element) == set(rules.element)
    assert set(rules.request) <= {"sessionId", "userId"}


@pytest.mark.parametrize(
    ("entity", "value", "where"),
    [
        (EVENTS, {"sessionId": "s-1", "eventType": "click\ud800", "sentAt": 1}, "eventType holds"),
        (ITEMS, {"itemId": "i-1", "properties": {"genre": "Hor\udfffror"}}, "properties.genre holds"),
        (USERS, {"userId": "u-1", "properties": {"tags": ["a", "\ud83d"]}}, "properties.tags[1] holds"),
        (ACTIONS, {"actionId": "a-1", "properties": {"x\udc00": "v"}}, "a key of properties holds"),
    ],
    ids=["field", "property", "list-member", "key"],
)
def test_a_lone_surrogate_is_rejected_locally_naming_the_field(entity: Entity, value: Any, where: str) -> None:
    # GIVEN a record whose JSON held half of a surrogate pair (json.loads keeps it as a lone surrogate)
    decoded = json.loads(json.dumps(value))

    # WHEN prepared
    refused = rejection(entity, decoded)

    # THEN it is rejected before any call, naming the field, without quoting the text
    assert refused.code == "invalid_unicode"
    assert refused.reason.startswith(where)
    assert "surrogate" in refused.reason


def test_a_surrogate_pair_is_valid_text() -> None:
    # GIVEN an emoji written as a JSON surrogate pair
    decoded = json.loads('{"itemId": "i-1", "properties": {"mood": "\\ud83d\\ude00"}}')

    # WHEN prepared THEN it is accepted with the character intact
    prepared = prepare(ITEMS, record(decoded))
    assert json.loads(prepared.element["properties"]) == {"mood": "\U0001f600"}
