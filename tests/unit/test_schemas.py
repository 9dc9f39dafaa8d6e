"""The published JSON Schemas: up to date with the model, and in agreement with prepare() where they can be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from personalize_ingest.entities import ACTION_INTERACTIONS, ACTIONS, ENTITIES, EVENTS, ITEMS, USERS, Entity
from personalize_ingest.model import KINESIS, S3, SQS, Record, RecordRejected, SourceRef
from personalize_ingest.records import prepare
from schemas.generate import rendered

SCHEMAS = Path(__file__).parents[2] / "schemas"
EXAMPLES = json.loads((SCHEMAS / "examples" / "records.json").read_text())
SOURCE = SourceRef(
    SQS, arn="arn:aws:sqs:us-east-1:123456789012:events", message_id="059f36b4-87a3-44ab-83d2-661975830a7d"
)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()))


RECORD_VALIDATORS = {name: validator(f"records/{name}.schema.json") for name in ENTITIES}


def prepare_accepts(entity: Entity, value: Any) -> bool:
    try:
        prepare(entity, Record("m-1", SOURCE, value, 1764400000.0), default_event_type="click")
    except RecordRejected:
        return False
    return True


def test_schema_files_are_what_the_generator_writes() -> None:
    # GIVEN the generator's output for the installed botocore model
    expected = rendered()
    # WHEN it is compared with the files in the repository
    stale = [str(path) for path, text in expected.items() if not path.exists() or path.read_text() != text]
    # THEN none is stale (regenerate with `.venv/bin/python -m schemas.generate`)
    assert stale == []


@pytest.mark.parametrize("path", sorted(SCHEMAS.rglob("*.schema.json")), ids=lambda path: path.name)
def test_every_schema_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize("entity_name", list(ENTITIES))
@pytest.mark.parametrize("style", ["camelCase", "bulk"])
def test_examples_satisfy_their_schema(entity_name: str, style: str) -> None:
    # GIVEN the published example of the entity in one style
    example = EXAMPLES[entity_name][style]
    # WHEN it is validated against the entity's schema
    errors = [error.message for error in RECORD_VALIDATORS[entity_name].iter_errors(example)]
    # THEN it is valid
    assert errors == []


# (case, entity, record, valid): each sample must be judged the same way by the schema and by prepare().
AGREEMENT: list[tuple[str, Entity, Any, bool]] = [
    ("issue example", EVENTS, EXAMPLES["events"]["camelCase"], True),
    ("events: user only", EVENTS, {"userId": "u", "itemId": "i"}, True),
    ("events: session only", EVENTS, {"sessionId": "s", "eventType": "c"}, True),
    ("events: no session, no user", EVENTS, {"eventType": "c", "itemId": "i"}, False),
    ("events: empty user id is absent", EVENTS, {"userId": "", "eventType": "c"}, False),
    (
        "events: null top-level values are absent",
        EVENTS,
        {"userId": "u", "itemId": None, "eventValue": None},
        True,
    ),
    ("events: ms timestamp", EVENTS, {"userId": "u", "sentAt": 1764400000123}, True),
    ("events: ISO timestamp", EVENTS, {"userId": "u", "sentAt": "2025-11-29T07:06:40Z"}, True),
    ("events: garbage timestamp", EVENTS, {"userId": "u", "sentAt": "yesterday"}, False),
    ("events: negative timestamp", EVENTS, {"userId": "u", "sentAt": -1}, False),
    ("events: boolean timestamp", EVENTS, {"userId": "u", "sentAt": True}, False),
    ("events: numeric-string value", EVENTS, {"userId": "u", "eventValue": "4.5"}, True),
    ("events: non-numeric value", EVENTS, {"userId": "u", "eventValue": "four"}, False),
    ("events: id too long", EVENTS, {"userId": "u", "itemId": "x" * 257}, False),
    ("events: user id too long", EVENTS, {"userId": "u" * 257}, False),
    ("events: recommendation id too long", EVENTS, {"userId": "u", "recommendationId": "r" * 41}, False),
    ("events: numeric id", EVENTS, {"userId": "u", "itemId": 5}, False),
    ("events: 25 impressions", EVENTS, {"userId": "u", "impression": [f"i{n}" for n in range(25)]}, True),
    ("events: 26 impressions", EVENTS, {"userId": "u", "impression": [f"i{n}" for n in range(26)]}, False),
    ("events: 25 piped impressions", EVENTS, {"userId": "u", "impression": "|".join("i" * 25)}, True),
    ("events: 26 piped impressions", EVENTS, {"userId": "u", "impression": "|".join("i" * 26)}, False),
    ("events: empty piped impression", EVENTS, {"userId": "u", "impression": "a||b"}, False),
    ("events: empty impression list", EVENTS, {"userId": "u", "impression": []}, True),
    (
        "events: metric attribution",
        EVENTS,
        {"userId": "u", "metricAttribution": {"eventAttributionSource": "a"}},
        True,
    ),
    ("events: metric attribution empty", EVENTS, {"userId": "u", "metricAttribution": {}}, False),
    (
        "events: metric attribution tab",
        EVENTS,
        {"userId": "u", "metricAttribution": {"eventAttributionSource": "\t"}},
        False,
    ),
    ("events: unknown field", EVENTS, {"userId": "u", "itemID": "i"}, False),
    ("events: mixed styles", EVENTS, {"userId": "u", "ITEM_ID": "i"}, False),
    ("events: properties object", EVENTS, {"userId": "u", "properties": {"a": ["x", 1, True], "b": None}}, True),
    ("events: nested property", EVENTS, {"userId": "u", "properties": {"a": {"b": 1}}}, False),
    ("events: null inside a property array", EVENTS, {"userId": "u", "properties": {"a": ["x", None]}}, False),
    ("events: forbidden property", EVENTS, {"userId": "u", "properties": {"EventType": "x"}}, False),
    ("events: forbidden property left empty", EVENTS, {"userId": "u", "properties": {"eventType": ""}}, True),
    ("events: empty property key", EVENTS, {"userId": "u", "properties": {"": None}}, False),
    ("events: properties a number", EVENTS, {"userId": "u", "properties": 5}, False),
    ("events bulk: MovieLens row", EVENTS, EXAMPLES["events"]["bulk"], True),
    ("events bulk: numeric ids", EVENTS, {"USER_ID": 1, "ITEM_ID": 31, "TIMESTAMP": 1260759144}, True),
    ("events bulk: boolean id", EVENTS, {"USER_ID": True}, False),
    ("events bulk: no user, no session", EVENTS, {"ITEM_ID": "i", "EVENT_TYPE": "c"}, False),
    ("events bulk: empty cells", EVENTS, {"USER_ID": "u", "ITEM_ID": "", "EVENT_VALUE": "", "GENRE": ""}, True),
    ("events bulk: bad value", EVENTS, {"USER_ID": "u", "EVENT_VALUE": "n/a"}, False),
    ("events bulk: bad timestamp", EVENTS, {"USER_ID": "u", "TIMESTAMP": "29/11/2025"}, False),
    ("events bulk: forbidden column", EVENTS, {"USER_ID": "u", "SESSIONID": "s"}, False),
    ("events bulk: forbidden column left empty", EVENTS, {"USER_ID": "u", "SESSIONID": ""}, True),
    ("events bulk: nested column value", EVENTS, {"USER_ID": "u", "SIZE": {"w": 1}}, False),
    ("events bulk: lowercase key", EVENTS, {"USER_ID": "u", "Genre": "x"}, False),
    ("action interactions: example", ACTION_INTERACTIONS, EXAMPLES["action_interactions"]["camelCase"], True),
    ("action interactions: user only", ACTION_INTERACTIONS, {"actionId": "a", "userId": "u"}, True),
    ("action interactions: no action", ACTION_INTERACTIONS, {"userId": "u"}, False),
    ("action interactions: no session, no user", ACTION_INTERACTIONS, {"actionId": "a"}, False),
    (
        "action interactions: eventValue is not a member",
        ACTION_INTERACTIONS,
        {"actionId": "a", "userId": "u", "eventValue": 1},
        False,
    ),
    ("action interactions bulk: example", ACTION_INTERACTIONS, EXAMPLES["action_interactions"]["bulk"], True),
    (
        "action interactions bulk: EVENT_VALUE is a property",
        ACTION_INTERACTIONS,
        {"ACTION_ID": "a", "USER_ID": "u", "EVENT_VALUE": "1"},
        True,
    ),
    (
        "action interactions bulk: ITEM_ID is a property",
        ACTION_INTERACTIONS,
        {"ACTION_ID": "a", "USER_ID": "u", "ITEM_ID": "i"},
        True,
    ),
    ("items: example", ITEMS, EXAMPLES["items"]["camelCase"], True),
    ("items: no id", ITEMS, {"properties": {"a": "b"}}, False),
    ("items: empty id", ITEMS, {"itemId": ""}, False),
    ("items: user id is not an item field", ITEMS, {"itemId": "i", "userId": "u"}, False),
    ("items bulk: example", ITEMS, EXAMPLES["items"]["bulk"], True),
    ("items bulk: empty id", ITEMS, {"ITEM_ID": "", "TITLE": "t"}, False),
    ("items bulk: USER_ID column is reserved", ITEMS, {"ITEM_ID": "i", "USER_ID": "u"}, False),
    ("items bulk: TIMESTAMP column is reserved", ITEMS, {"ITEM_ID": "i", "TIMESTAMP": "1"}, False),
    ("items bulk: CREATION_TIMESTAMP is a field", ITEMS, {"ITEM_ID": "i", "CREATION_TIMESTAMP": "1"}, True),
    ("users: example", USERS, EXAMPLES["users"]["camelCase"], True),
    ("users: id too long", USERS, {"userId": "u" * 257}, False),
    ("users bulk: example", USERS, EXAMPLES["users"]["bulk"], True),
    ("users bulk: ITEM_ID column is a property", USERS, {"USER_ID": "u", "ITEM_ID": "i"}, True),
    ("actions: example", ACTIONS, EXAMPLES["actions"]["camelCase"], True),
    ("actions: numeric id", ACTIONS, {"actionId": 7}, False),
    ("actions bulk: example", ACTIONS, EXAMPLES["actions"]["bulk"], True),
    ("actions bulk: numeric id", ACTIONS, {"ACTION_ID": 7}, True),
    ("actions bulk: no id", ACTIONS, {"VALUE": "5"}, False),
    ("not an object", ITEMS, ["i"], False),
]


@pytest.mark.parametrize(("entity", "value", "valid"), [c[1:] for c in AGREEMENT], ids=[c[0] for c in AGREEMENT])
def test_schema_and_prepare_agree(entity: Entity, value: Any, valid: bool) -> None:
    # GIVEN a sample record whose validity the schema can express
    # WHEN the entity's schema and prepare() judge it (a default event type configured, as the schema assumes)
    by_schema = RECORD_VALIDATORS[entity.name].is_valid(value)
    by_prepare = prepare_accepts(entity, value)
    # THEN both give the expected answer
    assert (by_schema, by_prepare) == (valid, valid)


@pytest.mark.parametrize(
    ("entity", "value"),
    [
        (USERS, {"userId": "u", "properties": "not json"}),
        (EVENTS, {"userId": "u", "properties": {"note": "n" * 2000}}),
        (ITEMS, {"ITEM_ID": "i", "FOO_BAR": "1", "FOO__BAR": "2"}),
    ],
    ids=["properties string content", "serialised properties length", "duplicate property names"],
)
def test_rules_the_schema_cannot_express_are_left_to_prepare(entity: Entity, value: Any) -> None:
    # GIVEN a record that breaks a rule JSON Schema cannot state
    # WHEN both judge it
    # THEN the schema lets it through and prepare() rejects it
    assert RECORD_VALIDATORS[entity.name].is_valid(value)
    assert not prepare_accepts(entity, value)


REJECT_SOURCES = [
    SourceRef(
        KINESIS,
        arn="arn:aws:kinesis:us-east-1:123456789012:stream/s",
        sequence_number="4959",
        sub_sequence_number=2,
    ),
    SourceRef(SQS, arn="arn:aws:sqs:us-east-1:123456789012:q", message_id="m-1", index=3),
    SourceRef(S3, bucket="ingest", key="items/a.csv", version_id="v1", etag="e", line=7),
    SourceRef(S3, bucket="ingest", key="items/a.csv", etag="e", line=2),
]


@pytest.mark.parametrize("source", REJECT_SOURCES, ids=["kinesis", "sqs", "s3 version", "s3 etag"])
def test_reject_messages_built_from_a_rejection_satisfy_the_schema(source: SourceRef) -> None:
    # GIVEN a record rejected by prepare() and the source it came from
    value = {"itemID": "i-1"}
    with pytest.raises(RecordRejected) as raised:
        prepare(ITEMS, Record("x", source, value, 1764400000.0))
    rejection = raised.value.rejection
    # WHEN the reject message is assembled as the contract says
    message = {
        "entity": ITEMS.name,
        "code": rejection.code,
        "reason": rejection.reason,
        "source": source.as_reject_source(),
        "record": value,
    }
    # THEN it satisfies the published schema, with and without the truncation flag
    reject_schema = validator("reject-message.schema.json")
    assert [error.message for error in reject_schema.iter_errors(message)] == []
    assert reject_schema.is_valid({**message, "record": '{"itemID": "i-', "truncated": True})


@pytest.mark.parametrize(
    "change",
    [
        {"entity": "orders"},
        {"code": "Missing Field"},
        {"reason": ""},
        {"source": {"arn": "arn:aws:sqs:us-east-1:123456789012:q"}},
        {"source": {"eventSource": "aws:sqs", "queue": "q"}},
        {"source": {"eventSource": "aws:s3", "line": 0}},
        {"truncated": False},
        {"extra": 1},
    ],
    ids=[
        "unknown entity",
        "code not snake_case",
        "empty reason",
        "no eventSource",
        "unknown source key",
        "line 0",
        "truncated false",
        "unknown key",
    ],
)
def test_malformed_reject_messages_fail_the_schema(change: dict[str, Any]) -> None:
    # GIVEN a valid reject message with one thing wrong
    message = {
        "entity": "items",
        "code": "unknown_field",
        "reason": "unknown field 'itemID'",
        "source": {"eventSource": "aws:sqs", "arn": "arn:aws:sqs:us-east-1:123456789012:q", "messageId": "m"},
        "record": {"itemID": "i"},
        **change,
    }
    # WHEN it is validated
    # THEN the schema refuses it
    assert not validator("reject-message.schema.json").is_valid(message)


def test_a_reject_message_needs_the_record() -> None:
    message = {"entity": "items", "code": "too_long", "reason": "r", "source": {"eventSource": "aws:s3"}}
    assert not validator("reject-message.schema.json").is_valid(message)
