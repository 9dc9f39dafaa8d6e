"""How a record's keys map onto its entity's members: the two styles, cached per entity and per key tuple.

A record comes in one of two styles, decided per record from its keys:

- camelCase: the API's member names of the entity's element (``itemId``, ``sentAt``, ``properties`` ...), plus
  for events the request-level ``sessionId`` and ``userId``;
- bulk: every key UPPER_SNAKE, as in Personalize bulk-import files. The entity's own fields use their column
  names (``USER_ID``, ``ITEM_ID``, ``TIMESTAMP``, ``IMPRESSION`` as ``a|b|c`` ...); every other column is a
  dataset schema field and goes into ``properties`` under its camelCase name (``NUMBER_OF_RATINGS`` ->
  ``numberOfRatings``).

Everything that depends only on the entity or on a record's set of keys is computed once and cached
(:func:`plan_for`, :meth:`Plan.layout`): CSV rows of one file share their keys, so the per-record work is a dict
lookup.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from personalize_ingest.entities import Entity
from personalize_ingest.field_converters import Converter, converter_for
from personalize_ingest.model import RecordRejected
from personalize_ingest.record_properties import PROPERTIES
from personalize_ingest.validation import INVALID_PROPERTIES, MIXED_STYLES, UNKNOWN_FIELD, ElementRules, rules_for

BULK_COLUMNS: dict[str, str | None] = {
    "USER_ID": "userId",
    "ITEM_ID": "itemId",
    "ACTION_ID": "actionId",
    "SESSION_ID": "sessionId",
    "EVENT_TYPE": "eventType",
    "EVENT_VALUE": "eventValue",
    "TIMESTAMP": None,  # the entity's timestamp member: sentAt (events) or timestamp (action interactions)
    "IMPRESSION": "impression",
    "RECOMMENDATION_ID": "recommendationId",
    "EVENT_ID": "eventId",
}
"""Bulk-import columns of entity fields and the member they fill; a column is used only when the entity has it."""

UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9_]*$")
"""A bulk-style key. A record whose keys all match is bulk style; one whose keys all do not is camelCase."""

_LAYOUT_CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Layout:
    """How the keys of one record map onto the entity: computed once per distinct key tuple."""

    bulk: bool
    columns: tuple[tuple[str, str | None], ...]
    """(key in the record, member it fills); member None = a bulk column that goes into properties."""
    property_names: Mapping[str, str]
    """Bulk column -> its camelCase property name."""
    labels: Mapping[str, str]
    """Member -> the record's own name for it, for reasons (``ITEM_ID`` for ``itemId``)."""
    property_columns: Mapping[str, str]
    """Bulk style: property name -> the column it came from (``numberOfRatings`` -> ``NUMBER_OF_RATINGS``)."""

    def label(self, member: str) -> str:
        return self.labels.get(member, member)


class Plan:
    """Everything about one entity that does not depend on the record: fields, converters, rules."""

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.rules: ElementRules = rules_for(entity)
        self.request_members = tuple(self.rules.request)
        members = {**self.rules.request, **self.rules.element}
        self.camel_fields = tuple(members)
        self.converters: dict[str, Converter] = {
            name: converter_for(rule.type_name) for name, rule in members.items() if name != PROPERTIES
        }
        self.bulk_columns: dict[str, str] = {}
        for column, member in BULK_COLUMNS.items():
            target = entity.timestamp_member if member is None else member
            if target is not None and target in members:
                self.bulk_columns[column] = target
        self.timestamp_member = entity.timestamp_member if entity.timestamp_member in members else None
        self.has_event_type = "eventType" in members
        self.has_session_id = "sessionId" in members
        self.derives_event_id = entity.derives_event_id and "eventId" in members
        self._layouts: dict[tuple[str, ...], Layout | RecordRejected] = {}

    def layout(self, value: dict[str, Any]) -> Layout:
        """The layout of ``value``'s keys, from the cache when this key tuple was seen before.

        Raises
        ------
        RecordRejected
            ``mixed_styles`` or ``unknown_field`` (cached too: every row of a bad file fails the same way).
        """
        keys = tuple(value)
        found = self._layouts.get(keys)
        if found is None:
            try:
                found = self._build_layout(keys)
            except RecordRejected as rejected:
                found = rejected
            if len(self._layouts) >= _LAYOUT_CACHE_SIZE:
                self._layouts.clear()
            self._layouts[keys] = found
        if isinstance(found, RecordRejected):
            code, reason = found.rejection.code, found.rejection.reason
            raise RecordRejected(code, reason)
        return found

    def _build_layout(self, keys: tuple[str, ...]) -> Layout:
        if not all(isinstance(key, str) for key in keys):
            # NOTE: csv.DictReader files the cells beyond the header under the key None (its default restkey).
            raise RecordRejected(
                UNKNOWN_FIELD,
                "the row has more cells than its header has columns"
                if None in keys
                else "the record has a key that is not a string",
            )
        upper = [key for key in keys if UPPER_SNAKE.match(key)]
        if upper and len(upper) < len(keys):
            camel = [key for key in keys if not UPPER_SNAKE.match(key)]
            raise RecordRejected(
                MIXED_STYLES,
                f"the record mixes camelCase fields ({_sample(camel)}) with UPPER_SNAKE columns "
                f"({_sample(upper)}); use one style per record",
            )
        if upper:
            return self._bulk_layout(keys)
        for key in keys:
            if key not in self.converters and key != PROPERTIES:
                raise RecordRejected(UNKNOWN_FIELD, self._unknown_field_reason(key))
        return Layout(
            bulk=False,
            columns=tuple((key, key) for key in keys),
            property_names={},
            labels={},
            property_columns={},
        )

    def _bulk_layout(self, keys: tuple[str, ...]) -> Layout:
        columns: list[tuple[str, str | None]] = []
        property_names: dict[str, str] = {}
        labels = {member: column for column, member in self.bulk_columns.items()}
        taken: dict[str, str] = {}
        for key in keys:
            member = self.bulk_columns.get(key)
            if member is not None:
                columns.append((key, member))
                continue
            name = camel_case(key)
            if name in taken:
                raise RecordRejected(
                    INVALID_PROPERTIES,
                    f"columns {taken[name]} and {key} both become the property {name!r}; rename one of them",
                )
            taken[name] = key
            columns.append((key, None))
            property_names[key] = name
        labels[PROPERTIES] = "properties (the record's non-field columns)"
        return Layout(
            bulk=True,
            columns=tuple(columns),
            property_names=property_names,
            labels=labels,
            property_columns=taken,
        )

    def _unknown_field_reason(self, key: str) -> str:
        known = (*self.camel_fields, PROPERTIES) if PROPERTIES not in self.camel_fields else self.camel_fields
        folded = key.replace("_", "").replace("-", "").lower()
        guess = next((name for name in known if name.lower() == folded), None)
        if guess is None:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            guess = close[0] if close else None
        hint = f"did you mean {guess!r}? " if guess else ""
        shown = key if len(key) <= 64 else key[:61] + "..."
        return f"unknown field {shown!r} for {self.entity.name} records; {hint}known fields: {', '.join(known)}"


@cache
def plan_for(entity: Entity) -> Plan:
    """The entity's :class:`Plan`, built once per container."""
    return Plan(entity)


def camel_case(column: str) -> str:
    """Schema field name in UPPER_SNAKE -> the camelCase key Personalize expects in properties."""
    parts = [part for part in column.lower().split("_") if part]
    if not parts:
        return column.lower()
    return parts[0] + "".join(part[:1].upper() + part[1:] for part in parts[1:])


def _sample(keys: list[str]) -> str:
    shown = ", ".join(key if len(key) <= 40 else key[:37] + "..." for key in keys[:3])
    return shown + (", ..." if len(keys) > 3 else "")
