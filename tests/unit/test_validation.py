"""Validation against botocore's model: limits come from the shapes, and the rules agree with ParamValidator."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.model import ListShape, StructureShape
from botocore.validate import ParamValidator

from personalize_ingest.entities import ACTION_INTERACTIONS, ENTITIES, EVENTS, ITEMS, USERS, Entity
from personalize_ingest.model import RecordRejected
from personalize_ingest.validation import MemberRule, rules_for, service_model

TRACKING_ID = "0c6a2e4f-7d1b-4b8e-9a51-5f2d3c4b6a70"
DATASET_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/{}"


def input_shape_of(entity: Entity) -> StructureShape:
    shape = service_model().operation_model(entity.operation).input_shape
    assert shape is not None
    return shape


def rejection_of(entity: Entity, element: dict[str, Any], request: dict[str, Any] | None = None) -> Any:
    try:
        rules_for(entity).check(element, request)
    except RecordRejected as rejected:
        return rejected.rejection
    return None


@pytest.mark.parametrize("entity_name", list(ENTITIES))
def test_compiled_rules_mirror_every_shape_of_the_model(entity_name: str) -> None:
    # GIVEN the entity's element shape, read straight from botocore
    entity = ENTITIES[entity_name]
    shape = service_model().shape_for(entity.element_shape)
    assert isinstance(shape, StructureShape)
    # WHEN its rules are compiled
    rules = rules_for(entity)
    # THEN every member, type, limit, pattern and required flag is the model's
    assert set(rules.element) == set(shape.members)
    assert set(rules.element_required) == set(shape.required_members)
    pending: list[tuple[MemberRule, Any]] = [
        (rules.element[name], member) for name, member in shape.members.items()
    ]
    while pending:
        rule, member = pending.pop()
        assert rule.type_name == member.type_name
        assert rule.minimum == member.metadata.get("min")
        assert rule.maximum == member.metadata.get("max")
        assert (rule.pattern.pattern if rule.pattern else None) == member.metadata.get("pattern")
        if isinstance(member, ListShape):
            assert rule.item is not None
            pending.append((rule.item, member.member))
        if isinstance(member, StructureShape):
            assert rule.required == tuple(member.required_members)
            pending.extend((rule.members[name], sub) for name, sub in member.members.items())


def test_events_request_members_come_from_the_put_events_input() -> None:
    # GIVEN PutEvents' input shape
    input_shape = input_shape_of(EVENTS)
    # WHEN the events rules are compiled
    rules = rules_for(EVENTS)
    # THEN sessionId / userId carry the request's limits, and sessionId is required there
    assert set(rules.request) == {"sessionId", "userId"}
    assert rules.request["userId"].maximum == input_shape.members["userId"].metadata["max"]
    assert rules.request_required == ("sessionId",)


CHECKS = [
    (
        "string too long",
        MemberRule("itemId", "string", 1, 256),
        "x" * 257,
        "too_long",
        "id is 257 characters; the maximum is 256",
    ),
    (
        "string too short",
        MemberRule("itemId", "string", 1, 256),
        "",
        "too_short",
        "id is 0 characters; the minimum is 1",
    ),
    (
        "string of wrong type",
        MemberRule("itemId", "string"),
        5,
        "invalid_type",
        "id must be a string, got a number",
    ),
    ("float given a string", MemberRule("v", "float"), "5", "invalid_type", "id must be a number, got a string"),
    ("float given a boolean", MemberRule("v", "float"), False, "invalid_type", "got a boolean"),
    ("float not finite", MemberRule("v", "float"), float("nan"), "invalid_type", "id must be a finite number"),
    (
        "number below the range",
        MemberRule("v", "integer", 1, 10),
        0,
        "out_of_range",
        "id is below the minimum of 1",
    ),
    (
        "number above the range",
        MemberRule("v", "integer", 1, 10),
        11,
        "out_of_range",
        "id is above the maximum of 10",
    ),
    ("integer given a float", MemberRule("v", "integer"), 1.5, "invalid_type", "id must be an integer"),
    ("boolean given a string", MemberRule("v", "boolean"), "true", "invalid_type", "id must be a boolean"),
    ("timestamp given a string", MemberRule("t", "timestamp"), "now", "invalid_type", "id must be a timestamp"),
    ("list given a string", MemberRule("impression", "list", 1, 25), "a", "invalid_type", "id must be an array"),
    (
        "impression list too long",
        MemberRule("impression", "list", 1, 25, item=MemberRule("i", "string", 1, 256)),
        ["a"] * 26,
        "too_many_impressions",
        "id has 26 entries; the maximum is 25",
    ),
    ("other list too long", MemberRule("tags", "list", 0, 2), ["a"] * 3, "too_many_values", "id has 3 entries"),
    ("empty list", MemberRule("impression", "list", 1, 25), [], "too_short", "id has 0 entries; the minimum is 1"),
    (
        "list entry too long",
        MemberRule("impression", "list", 1, 25, item=MemberRule("i", "string", 1, 3)),
        ["abc", "abcd"],
        "too_long",
        "id[1] is 4 characters",
    ),
    (
        "structure given a list",
        MemberRule("m", "structure"),
        [],
        "invalid_type",
        "id must be an object, got an array",
    ),
]


@pytest.mark.parametrize(("rule", "value", "code", "reason"), [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS])
def test_a_rule_names_the_field_and_the_limit(rule: MemberRule, value: Any, code: str, reason: str) -> None:
    # GIVEN a rule and a value that breaks it
    # WHEN the value is checked under the label "id"
    with pytest.raises(RecordRejected) as raised:
        rule.check(value, "id")
    # THEN the rejection names the label and the limit
    assert raised.value.rejection.code == code
    assert reason in raised.value.rejection.reason


def test_labels_name_fields_as_the_record_does() -> None:
    # GIVEN an item element built from a bulk row
    element = {"itemId": "x" * 300}
    # WHEN it is checked with the row's column names as labels
    with pytest.raises(RecordRejected) as raised:
        rules_for(ITEMS).check(element, labels={"itemId": "ITEM_ID"})
    # THEN the reason uses the column name
    assert raised.value.rejection.reason == "ITEM_ID is 300 characters; the maximum is 256"


def test_an_element_member_the_model_does_not_have_is_unknown() -> None:
    # GIVEN a user element with a member that User lacks
    # WHEN it is checked
    rejected = rejection_of(USERS, {"userId": "u", "itemId": "i"})
    # THEN it is refused as an unknown field
    assert rejected.code == "unknown_field"
    assert "itemId" in rejected.reason


# --- agreement with botocore's ParamValidator (what the client runs before every call) ---------------------------

SESSION = {"sessionId": "s-1", "userId": "u-1"}
AGREEMENT: list[tuple[str, Entity, dict[str, Any], dict[str, Any] | None, bool]] = [
    ("valid event", EVENTS, {"eventType": "click", "sentAt": 1764400000.0, "itemId": "i"}, SESSION, True),
    (
        "valid event, every optional member",
        EVENTS,
        {
            "eventType": "click",
            "sentAt": 1764400000.5,
            "eventId": "e",
            "eventValue": 1.0,
            "itemId": "i",
            "properties": '{"a":"b"}',
            "recommendationId": "r",
            "impression": ["i", "j"],
            "metricAttribution": {"eventAttributionSource": "src"},
        },
        SESSION,
        True,
    ),
    ("event without type", EVENTS, {"sentAt": 1764400000.0}, SESSION, False),
    ("event without session", EVENTS, {"eventType": "click", "sentAt": 1764400000.0}, {"userId": "u"}, False),
    ("event value as string", EVENTS, {"eventType": "c", "sentAt": 1.0, "eventValue": "x"}, SESSION, False),
    ("impression as string", EVENTS, {"eventType": "c", "sentAt": 1.0, "impression": "a|b"}, SESSION, False),
    ("empty item id", EVENTS, {"eventType": "c", "sentAt": 1.0, "itemId": ""}, SESSION, False),
    ("empty impression list", EVENTS, {"eventType": "c", "sentAt": 1.0, "impression": []}, SESSION, False),
    (
        "valid action interaction",
        ACTION_INTERACTIONS,
        {"actionId": "a", "sessionId": "s", "userId": "u", "timestamp": 1.0, "eventType": "Taken"},
        None,
        True,
    ),
    (
        "action interaction without session",
        ACTION_INTERACTIONS,
        {"actionId": "a", "timestamp": 1.0, "eventType": "T"},
        None,
        False,
    ),
    ("valid item", ITEMS, {"itemId": "i", "properties": '{"a":1}'}, None, True),
    ("item id as number", ITEMS, {"itemId": 5}, None, False),
    ("item with empty properties", ITEMS, {"itemId": "i", "properties": ""}, None, False),
    ("user without id", USERS, {"properties": "{}"}, None, False),
]


def _request(entity: Entity, element: dict[str, Any], request: dict[str, Any] | None) -> dict[str, Any]:
    target = TRACKING_ID if entity.uses_tracker else DATASET_ARN.format(entity.dataset_type)
    return {entity.target_member: target, entity.list_member: [element], **(request or {})}


@pytest.mark.parametrize(
    ("entity", "element", "request_fields", "valid"), [c[1:] for c in AGREEMENT], ids=[c[0] for c in AGREEMENT]
)
def test_rules_agree_with_botocores_param_validator(
    entity: Entity, element: dict[str, Any], request_fields: dict[str, Any] | None, valid: bool
) -> None:
    # GIVEN an element within botocore's own checks (required, types, minimums) or breaking one of them
    input_shape = input_shape_of(entity)
    # WHEN both validators judge it
    botocore_report = ParamValidator().validate(_request(entity, element, request_fields), input_shape)
    ours = rejection_of(entity, element, request_fields)
    # THEN they agree
    assert (not botocore_report.has_errors()) == valid, botocore_report.generate_report()
    assert (ours is None) is valid, ours


@pytest.mark.parametrize(
    ("entity", "element"),
    [
        (ITEMS, {"itemId": "x" * 257}),
        (EVENTS, {"eventType": "c", "sentAt": 1.0, "recommendationId": "r" * 41}),
        (EVENTS, {"eventType": "c", "sentAt": 1.0, "impression": ["i"] * 26}),
        (EVENTS, {"eventType": "c", "sentAt": 1.0, "metricAttribution": {"eventAttributionSource": "\t"}}),
    ],
    ids=["max length", "recommendationId max", "list max", "pattern"],
)
def test_rules_also_enforce_the_limits_botocore_leaves_to_the_service(
    entity: Entity, element: dict[str, Any]
) -> None:
    # GIVEN an element that breaks a max or pattern constraint of the model
    request_fields = SESSION if entity is EVENTS else None
    input_shape = input_shape_of(entity)
    # WHEN both validators judge it
    botocore_report = ParamValidator().validate(_request(entity, element, request_fields), input_shape)
    ours = rejection_of(entity, element, request_fields)
    # THEN botocore lets it through (the service would refuse the whole call) and the rules catch it
    assert not botocore_report.has_errors()
    assert ours is not None and ours.code in {"too_long", "too_many_impressions", "pattern_mismatch"}
