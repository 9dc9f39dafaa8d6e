"""Turn prepared records into as few calls as the API allows (pure: no I/O, no clock).

- PutEvents: one call carries one ``sessionId``/``userId`` pair, so records are grouped by that pair, keep
  their source order inside a group, and are cut into calls of at most the model's list maximum.
- The other operations: calls of at most the list maximum, in source order.
- Items, users, actions (upserts): when several records carry the same id, only the latest in source order is
  sent; the others are *superseded*, so concurrent calls can never apply an older version last.

:class:`ChunkRule` decides when a chunk of an S3 object holds enough work to keep the delivery threads busy.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dateutil.tz import tzutc

from personalize_ingest.entities import Entity
from personalize_ingest.model import Prepared
from personalize_ingest.validation import service_model


@dataclass(slots=True)
class Batch:
    """The records of one call, in source order, and the lane it runs in."""

    prepared: list[Prepared]
    lane: str | None = None
    """Batches of the same lane are sent one after another in plan order (PutEvents: one lane per session);
    None = independent of every other batch."""
    session_id: str | None = None
    user_id: str | None = None

    def request(self, entity: Entity, target: str) -> dict[str, Any]:
        """Keyword arguments of the boto3 call for this batch."""
        member = entity.timestamp_member
        elements = [p.element for p in self.prepared]
        if member is not None:
            elements = [_with_wire_timestamp(element, member) for element in elements]
        params: dict[str, Any] = {entity.target_member: target, entity.list_member: elements}
        if self.session_id is not None:
            params["sessionId"] = self.session_id
        if self.user_id is not None:
            params["userId"] = self.user_id
        return params

    def halves(self) -> tuple[Batch, Batch]:
        """Split in two (first half first), keeping the lane and request members."""
        middle = len(self.prepared) // 2
        return (
            Batch(self.prepared[:middle], self.lane, self.session_id, self.user_id),
            Batch(self.prepared[middle:], self.lane, self.session_id, self.user_id),
        )


_BOTOCORE_UTC = tzutc()
"""The UTC instance botocore's serializer converts every timestamp to (dateutil's tzutc is a singleton)."""


def _with_wire_timestamp(element: dict[str, Any], member: str) -> dict[str, Any]:
    """The element with its epoch-seconds timestamp as an aware datetime in botocore's own UTC.

    # NOTE: botocore serialises a timestamp through ``parse_to_aware_datetime``: a number goes through
    # ``datetime.fromtimestamp(value, tzlocal())`` and a dateutil time-zone conversion (~0.2 ms of CPU per element,
    # ~14 % of a 10-event PutEvents call in the profile), while a datetime whose tzinfo *is* that tzutc instance is
    # used as is (``astimezone`` to the same tzinfo object returns it unchanged). The seconds and microseconds on
    # the wire are the same: both paths round the float to microseconds in ``fromtimestamp``.
    """
    value = element.get(member)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return element
    wire = datetime.fromtimestamp(value, UTC).replace(tzinfo=_BOTOCORE_UTC)
    return {**element, member: wire}


def lane_key(entity: Entity, prepared: Prepared) -> tuple[str | None, str | None] | None:
    """The lane ``prepared`` runs in: its ``(sessionId, userId)`` for PutEvents, None (independent) otherwise."""
    if entity.request_members:
        return (prepared.session_id, prepared.user_id)
    return None


@dataclass(frozen=True, slots=True)
class ChunkRule:
    """When a chunk of an S3 object is closed and delivered.

    A chunk closes at ``max_rows`` (memory stays bounded whatever the object), or from ``min_rows`` on once it
    holds ``lanes_wanted`` lanes. Calls of one lane run one after another, so a chunk of a file sorted by user
    (a few sessions per 500 rows) would keep one or two of the delivery threads busy; waiting for enough distinct
    sessions lets them all work. For entities without lanes every call is independent, and a chunk of
    ``min_rows`` rows already holds ``min_rows / max_per_call`` of them.
    """

    min_rows: int
    max_rows: int
    lanes_wanted: int

    def is_full(self, rows: int, lanes: int) -> bool:
        """True when a chunk of ``rows`` rows holding ``lanes`` distinct lanes (calls) should be delivered."""
        return rows >= self.max_rows or (rows >= self.min_rows and lanes >= self.lanes_wanted)


@dataclass(slots=True)
class Plan:
    batches: list[Batch] = field(default_factory=list)
    """In the order of their first record in the source."""
    superseded: list[Prepared] = field(default_factory=list)


@functools.cache
def max_per_call(entity: Entity) -> int:
    """Largest list a call of ``entity`` accepts, read from botocore's service model (10 today)."""
    model = service_model()
    input_shape = model.operation_model(entity.operation).input_shape
    assert input_shape is not None
    list_shape = input_shape.members[entity.list_member]
    return int(list_shape.metadata["max"])


def plan(entity: Entity, prepared: Sequence[Prepared]) -> Plan:
    """Group and cut ``prepared`` into batches; see the module docstring for the rules."""
    result = Plan()
    kept: Sequence[Prepared] = prepared
    if entity.id_member is not None:
        kept, result.superseded = _latest_per_id(entity, prepared)
    size = max_per_call(entity)
    if entity.request_members:
        groups: dict[tuple[str | None, str | None], list[Prepared]] = {}
        for item in kept:
            groups.setdefault((item.session_id, item.user_id), []).append(item)
        # NOTE: a batch's position is its first record's, so sessions start in the order they appear.
        positioned: list[tuple[int, Batch]] = []
        position = {id(item): index for index, item in enumerate(kept)}
        for (session_id, user_id), members in groups.items():
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                positioned.append((position[id(chunk[0])], Batch(chunk, session_id, session_id, user_id)))
        positioned.sort(key=lambda pair: pair[0])
        result.batches = [batch for _, batch in positioned]
    else:
        result.batches = [Batch(list(kept[start : start + size])) for start in range(0, len(kept), size)]
    return result


def _latest_per_id(entity: Entity, prepared: Sequence[Prepared]) -> tuple[list[Prepared], list[Prepared]]:
    last_index: dict[str, int] = {}
    for index, item in enumerate(prepared):
        last_index[upsert_id(entity, item)] = index
    kept: list[Prepared] = []
    superseded: list[Prepared] = []
    for index, item in enumerate(prepared):
        (kept if last_index[upsert_id(entity, item)] == index else superseded).append(item)
    return kept, superseded


def upsert_id(entity: Entity, item: Prepared) -> str:
    """The id an upsert replaces (``itemId`` / ``userId`` / ``actionId``)."""
    if item.entity_id is not None:
        return item.entity_id
    assert entity.id_member is not None
    return str(item.element[entity.id_member])
