"""Batching: grouping, source order, call sizes from the service model, and superseded upserts."""

from __future__ import annotations

from typing import Any

import botocore.serialize
import botocore.session
import pytest

from personalize_ingest.batching import ChunkRule, lane_key, max_per_call, plan
from personalize_ingest.entities import ACTION_INTERACTIONS, ACTIONS, ENTITIES, EVENTS, ITEMS, USERS, Entity
from personalize_ingest.model import Prepared, Record, SourceRef

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/events"


def _record(position: int) -> Record:
    return Record(
        item_id=f"4959{position:08d}",
        source=SourceRef("aws:kinesis", arn=STREAM_ARN, sequence_number=f"4959{position:08d}"),
        value={},
        arrival_time=1_764_400_000.0,
    )


def event(position: int, session_id: str, user_id: str | None = None) -> Prepared:
    element = {"eventType": "click", "itemId": f"i-{position}", "sentAt": 1_764_400_000.0 + position}
    return Prepared(_record(position), element, session_id=session_id, user_id=user_id)


def upsert(entity: Entity, position: int, entity_id: str) -> Prepared:
    assert entity.id_member is not None
    element = {entity.id_member: entity_id, "properties": f'{{"version": "{position}"}}'}
    return Prepared(_record(position), element, entity_id=entity_id)


def positions(prepared: list[Prepared]) -> list[int]:
    return [int(p.record.item_id[4:]) for p in prepared]


@pytest.mark.parametrize("entity", list(ENTITIES.values()), ids=list(ENTITIES))
def test_call_size_comes_from_the_service_model(entity: Entity) -> None:
    # GIVEN the list member's maximum in botocore's model of the operation
    model = botocore.session.get_session().get_service_model("personalize-events")
    input_shape = model.operation_model(entity.operation).input_shape
    assert input_shape is not None
    model_max = input_shape.members[entity.list_member].metadata["max"]

    # WHEN / THEN
    assert max_per_call(entity) == model_max == 10


def test_events_are_grouped_by_session_and_user_in_source_order() -> None:
    # GIVEN events of three (session, user) pairs, interleaved
    prepared = [
        event(0, "s-1", "u-1"),
        event(1, "s-2", "u-2"),
        event(2, "s-1", "u-1"),
        event(3, "s-3", None),
        event(4, "s-2", "u-2"),
        event(5, "s-1", "u-1"),
    ]

    # WHEN
    result = plan(EVENTS, prepared)

    # THEN one batch per pair, in the order each pair first appears, records in source order inside
    assert [(b.session_id, b.user_id) for b in result.batches] == [("s-1", "u-1"), ("s-2", "u-2"), ("s-3", None)]
    assert [positions(b.prepared) for b in result.batches] == [[0, 2, 5], [1, 4], [3]]
    assert result.superseded == []


def test_the_same_session_with_another_user_is_another_call_in_the_same_lane() -> None:
    # GIVEN an anonymous session whose user logs in halfway
    prepared = [event(0, "s-1", None), event(1, "s-1", "u-1"), event(2, "s-1", None)]

    # WHEN
    result = plan(EVENTS, prepared)

    # THEN userId differs per call, so two calls; both run in the session's lane
    assert [(b.user_id, positions(b.prepared)) for b in result.batches] == [(None, [0, 2]), ("u-1", [1])]
    assert {b.lane for b in result.batches} == {"s-1"}


def test_a_long_session_is_cut_into_calls_of_ten_in_order() -> None:
    # GIVEN 23 events of one session
    prepared = [event(i, "s-1", "u-1") for i in range(23)]

    # WHEN
    result = plan(EVENTS, prepared)

    # THEN 10 + 10 + 3, in source order
    assert [positions(b.prepared) for b in result.batches] == [
        list(range(0, 10)),
        list(range(10, 20)),
        list(range(20, 23)),
    ]


def test_batch_request_carries_session_user_and_the_elements() -> None:
    # GIVEN
    batch = plan(EVENTS, [event(0, "s-1", "u-1"), event(1, "s-1", "u-1")]).batches[0]

    # WHEN
    request = batch.request(EVENTS, "tracking-id")

    # THEN every member but the timestamp is the prepared element's; the timestamp is the same instant
    assert {k: v for k, v in request.items() if k != "eventList"} == {
        "trackingId": "tracking-id",
        "sessionId": "s-1",
        "userId": "u-1",
    }
    sent = request["eventList"]
    assert [{k: v for k, v in e.items() if k != "sentAt"} for e in sent] == [
        {k: v for k, v in p.element.items() if k != "sentAt"} for p in batch.prepared
    ]
    assert [e["sentAt"].timestamp() for e in sent] == [p.element["sentAt"] for p in batch.prepared]


def _wire_body(entity: Entity, params: dict[str, Any]) -> bytes:
    model = botocore.session.get_session().get_service_model("personalize-events")
    serializer = botocore.serialize.create_serializer(model.metadata["protocol"], include_validation=False)
    body = serializer.serialize_to_request(params, model.operation_model(entity.operation))["body"]
    return body if isinstance(body, bytes) else body.encode()


@pytest.mark.parametrize("entity", [EVENTS, ACTION_INTERACTIONS], ids=["events", "action_interactions"])
@pytest.mark.parametrize("seconds", [1_764_400_000.0, 1_764_400_000.5, 1_764_400_000.123456, 1_700_000_000.999999])
def test_the_request_body_is_the_one_botocore_sends_for_epoch_seconds(entity: Entity, seconds: float) -> None:
    # GIVEN a prepared element whose timestamp is epoch seconds, as prepare() makes it
    assert entity.timestamp_member is not None
    candidates = {"eventType": "click", "sessionId": "s-1", "actionId": "a-1", "itemId": "i-1"}
    element: dict[str, Any] = {k: v for k, v in candidates.items() if k in _members(entity)}
    element[entity.timestamp_member] = seconds
    prepared = Prepared(_record(0), element, session_id="s-1", user_id="u-1")
    batch = plan(entity, [prepared]).batches[0]

    # WHEN the batch's request is serialised, and the same element with the number botocore would convert itself
    sent = _wire_body(entity, batch.request(entity, "tracking-id"))
    reference = _wire_body(entity, {**batch.request(entity, "tracking-id"), entity.list_member: [element]})

    # THEN the bytes on the wire are the same
    assert sent == reference


def _members(entity: Entity) -> set[str]:
    model = botocore.session.get_session().get_service_model("personalize-events")
    input_shape = model.operation_model(entity.operation).input_shape
    assert input_shape is not None
    list_shape: Any = input_shape.members[entity.list_member]
    return set(list_shape.member.members)


def test_anonymous_events_carry_no_user_id() -> None:
    batch = plan(EVENTS, [event(0, "s-9")]).batches[0]

    assert "userId" not in batch.request(EVENTS, "tracking-id")


def test_other_operations_are_cut_in_source_order_without_grouping() -> None:
    # GIVEN 25 action interactions of different sessions
    prepared = [
        Prepared(_record(i), {"actionId": f"a-{i}", "sessionId": f"s-{i % 3}", "eventType": "Taken"})
        for i in range(25)
    ]

    # WHEN
    result = plan(ACTION_INTERACTIONS, prepared)

    # THEN 10 + 10 + 5 in source order, each an independent lane
    assert [positions(b.prepared) for b in result.batches] == [
        list(range(0, 10)),
        list(range(10, 20)),
        list(range(20, 25)),
    ]
    assert all(b.lane is None for b in result.batches)
    assert result.batches[0].request(ACTION_INTERACTIONS, "t") == {
        "trackingId": "t",
        "actionInteractions": [p.element for p in result.batches[0].prepared],
    }


@pytest.mark.parametrize("entity", [ITEMS, USERS, ACTIONS], ids=["items", "users", "actions"])
def test_only_the_latest_version_of_an_upsert_is_sent(entity: Entity) -> None:
    # GIVEN three versions of "a", two of "b" and one of "c", interleaved
    prepared = [
        upsert(entity, 0, "a"),
        upsert(entity, 1, "b"),
        upsert(entity, 2, "a"),
        upsert(entity, 3, "c"),
        upsert(entity, 4, "b"),
        upsert(entity, 5, "a"),
    ]

    # WHEN
    result = plan(entity, prepared)

    # THEN the last of each id is sent, in source order; the others are superseded, in source order
    assert [positions(b.prepared) for b in result.batches] == [[3, 4, 5]]
    assert positions(result.superseded) == [0, 1, 2]
    request = result.batches[0].request(entity, "arn:aws:personalize:us-east-1:123456789012:dataset/demo/X")
    assert [element[entity.id_member] for element in request[entity.list_member]] == ["c", "b", "a"]


def test_superseding_falls_back_to_the_element_id() -> None:
    # GIVEN prepared items whose entity_id was not filled in
    prepared = [Prepared(_record(i), {"itemId": "same"}) for i in range(3)]

    # WHEN
    result = plan(ITEMS, prepared)

    # THEN the element's itemId decides
    assert [positions(b.prepared) for b in result.batches] == [[2]]
    assert positions(result.superseded) == [0, 1]


def test_distinct_upserts_are_cut_into_calls_of_ten() -> None:
    prepared = [upsert(USERS, i, f"u-{i}") for i in range(21)]

    result = plan(USERS, prepared)

    assert [len(b.prepared) for b in result.batches] == [10, 10, 1]
    assert result.superseded == []


def test_interactions_are_never_superseded() -> None:
    # GIVEN the same item clicked twice in one session
    prepared = [event(0, "s-1", "u-1"), event(1, "s-1", "u-1")]
    prepared[1].element["itemId"] = prepared[0].element["itemId"]

    # WHEN / THEN both are sent
    assert positions(plan(EVENTS, prepared).batches[0].prepared) == [0, 1]


def test_halves_keep_order_and_request_members() -> None:
    # GIVEN a call of 5 events
    batch = plan(EVENTS, [event(i, "s-1", "u-1") for i in range(5)]).batches[0]

    # WHEN it is split
    first, second = batch.halves()

    # THEN first half first, both still in the session's lane with its session and user
    assert (positions(first.prepared), positions(second.prepared)) == ([0, 1], [2, 3, 4])
    assert {(b.lane, b.session_id, b.user_id) for b in (first, second)} == {("s-1", "s-1", "u-1")}


def test_nothing_to_send_plans_no_call() -> None:
    assert plan(EVENTS, []).batches == []


@pytest.mark.parametrize(
    "rows, lanes, full",
    [
        (499, 100, False),  # enough lanes, but fewer rows than the minimum
        (500, 31, False),  # the minimum of rows, too few lanes to keep the threads busy
        (500, 32, True),  # the minimum of rows and enough lanes
        (4_999, 1, False),  # one long session: keeps reading ...
        (5_000, 1, True),  # ... up to the row cap, which bounds memory
    ],
)
def test_a_chunk_closes_at_the_row_cap_or_once_it_holds_enough_lanes(rows: int, lanes: int, full: bool) -> None:
    rule = ChunkRule(min_rows=500, max_rows=5_000, lanes_wanted=32)

    assert rule.is_full(rows, lanes) is full


def test_only_putevents_records_have_a_lane() -> None:
    assert lane_key(EVENTS, event(0, "s-1", "u-1")) == ("s-1", "u-1")
    assert lane_key(ITEMS, upsert(ITEMS, 0, "i-1")) is None
