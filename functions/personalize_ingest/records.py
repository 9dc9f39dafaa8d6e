"""One decoded input record -> one validated, wire-ready element, or a specific rejection.

A record comes in one of two styles, decided per record from its keys:

- camelCase: the API's member names of the entity's element (``itemId``, ``sentAt``, ``properties`` ...), plus
  for events the request-level ``sessionId`` and ``userId``;
- bulk: every key UPPER_SNAKE, as in Personalize bulk-import files. The entity's own fields use their column
  names (``USER_ID``, ``ITEM_ID``, ``TIMESTAMP``, ``IMPRESSION`` as ``a|b|c`` ...); every other column is a
  dataset schema field and goes into ``properties`` under its camelCase name (``NUMBER_OF_RATINGS`` ->
  ``numberOfRatings``).

Everything that depends only on the entity or on a record's set of keys is computed once and cached
(:func:`_plan_for`, :meth:`_Plan.layout`): CSV rows of one file share their keys, so the per-record work is a dict
lookup, one converter call per present field, one ``json.dumps`` of the properties and the model checks.
docs/records.md describes the contract for producers.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from personalize_ingest.entities import Entity
from personalize_ingest.model import Prepared, Record, RecordRejected
from personalize_ingest.text import check_unicode
from personalize_ingest.timestamps import to_epoch_seconds
from personalize_ingest.validation import (
    FORBIDDEN_PROPERTY,
    INVALID_PROPERTIES,
    INVALID_TYPE,
    MISSING_FIELD,
    MIXED_STYLES,
    NOT_AN_OBJECT,
    UNKNOWN_FIELD,
    ElementRules,
    describe,
    rules_for,
)

if TYPE_CHECKING:
    from personalize_ingest.schema import DatasetSchema

PROPERTIES = "properties"

FORBIDDEN_PROPERTY_KEYS = ("userId", "sessionId", "eventType", "timestamp", "recommendationId", "impression")
"""Keys Personalize refuses inside ``properties``, compared case-insensitively."""
_FORBIDDEN_FOLDED = frozenset(key.lower() for key in FORBIDDEN_PROPERTY_KEYS)

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

_NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_LAYOUT_CACHE_SIZE = 512
_PROPERTY_VALUE_TYPES = (str, int, float, bool)

Converter = Callable[[Any, str, bool], Any]
"""(raw value, the record's name for the field, bulk style) -> converted value, or None for "absent"."""


def prepare(
    entity: Entity,
    record: Record,
    *,
    default_event_type: str | None = None,
    schema: DatasetSchema | None = None,
) -> Prepared:
    """Normalise and validate one record of ``entity``.

    Parameters
    ----------
    entity
        The entity the function ingests.
    record
        The decoded record; ``record.value`` is a JSON value or a CSV row (header -> cell).
    default_event_type
        Event type for events / action interactions records that carry none (``DEFAULT_EVENT_TYPE``).
    schema
        The dataset's schema, when known: properties are also checked against it (see the schema module).

    Returns
    -------
    Prepared
        The element for the API list (``properties`` a compact JSON string, timestamps epoch seconds as float),
        with PutEvents' ``session_id`` / ``user_id`` or the upserted ``entity_id``.

    Raises
    ------
    RecordRejected
        With a stable code and a reason naming the field and the rule; never the record's ids or properties.
    """
    if record.decode_error is not None:
        raise RecordRejected(record.decode_error.code, record.decode_error.reason)
    value = record.value
    if not isinstance(value, dict):
        raise RecordRejected(NOT_AN_OBJECT, f"expected a JSON object, got {describe(value)}")
    check_unicode(value)
    plan = _plan_for(entity)
    layout = plan.layout(value)
    bulk = layout.bulk

    fields: dict[str, Any] = {}
    properties: dict[str, Any] | None = None
    for key, member in layout.columns:
        raw = value[key]
        if raw is None or raw == "":
            continue
        if member is None:
            if properties is None:
                properties = {}
            properties[layout.property_names[key]] = raw
        elif member == PROPERTIES:
            properties = _properties_object(raw, key)
        else:
            converted = plan.converters[member](raw, key, bulk)
            if converted is not None:
                fields[member] = converted

    if plan.timestamp_member is not None and plan.timestamp_member not in fields:
        fields[plan.timestamp_member] = float(record.arrival_time)
    if plan.has_event_type and "eventType" not in fields:
        if default_event_type is None:
            raise RecordRejected(
                MISSING_FIELD,
                f"{layout.label('eventType')} is missing and no default event type is configured "
                "(DEFAULT_EVENT_TYPE)",
            )
        fields["eventType"] = default_event_type
    if plan.has_session_id and "sessionId" not in fields:
        user_id = fields.get("userId")
        if user_id is None:
            raise RecordRejected(
                MISSING_FIELD,
                f"{layout.label('sessionId')} is missing and there is no {layout.label('userId')} to use as "
                "the session id",
            )
        fields["sessionId"] = user_id
    if plan.derives_event_id and "eventId" not in fields:
        fields["eventId"] = record.source.derived_event_id()
    flat = _flat_properties(properties, layout) if properties else {}
    if schema is not None:
        schema.check(flat, lambda key: _property_where(key, layout), bulk=bulk)
    if flat:
        fields[PROPERTIES] = json.dumps(flat, separators=(",", ":"), ensure_ascii=False)

    request: dict[str, Any] | None = None
    if plan.request_members:
        # In the record's order, so a too-long userId is named before the sessionId defaulted from it.
        request = {name: fields.pop(name) for name in list(fields) if name in plan.request_members}
    plan.rules.check(fields, request, layout.labels)

    if request is not None:
        return Prepared(record, fields, session_id=request.get("sessionId"), user_id=request.get("userId"))
    entity_id = fields.get(entity.id_member) if entity.id_member else None
    return Prepared(record, fields, entity_id=entity_id)


# --- per-entity plan ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
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


class _Plan:
    """Everything about one entity that does not depend on the record: fields, converters, rules."""

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.rules: ElementRules = rules_for(entity)
        self.request_members = tuple(self.rules.request)
        members = {**self.rules.request, **self.rules.element}
        self.camel_fields = tuple(members)
        self.converters: dict[str, Converter] = {
            name: _CONVERTERS.get(rule.type_name, _as_is) for name, rule in members.items() if name != PROPERTIES
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
        self._layouts: dict[tuple[str, ...], _Layout | RecordRejected] = {}

    def layout(self, value: dict[str, Any]) -> _Layout:
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

    def _build_layout(self, keys: tuple[str, ...]) -> _Layout:
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
        return _Layout(
            bulk=False,
            columns=tuple((key, key) for key in keys),
            property_names={},
            labels={},
            property_columns={},
        )

    def _bulk_layout(self, keys: tuple[str, ...]) -> _Layout:
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
        return _Layout(
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
def _plan_for(entity: Entity) -> _Plan:
    return _Plan(entity)


def camel_case(column: str) -> str:
    """Schema field name in UPPER_SNAKE -> the camelCase key Personalize expects in properties."""
    parts = [part for part in column.lower().split("_") if part]
    if not parts:
        return column.lower()
    return parts[0] + "".join(part[:1].upper() + part[1:] for part in parts[1:])


def _sample(keys: list[str]) -> str:
    shown = ", ".join(key if len(key) <= 40 else key[:37] + "..." for key in keys[:3])
    return shown + (", ..." if len(keys) > 3 else "")


# --- converters: raw field value -> the member's model type ---------------------------------------------------


def _as_string(raw: Any, label: str, bulk: bool) -> str:
    if isinstance(raw, str):
        return raw
    # NOTE: bulk-style JSON often carries numeric ids (MovieLens USER_ID 1); in a CSV they are text anyway.
    if bulk and isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise RecordRejected(INVALID_TYPE, f"{label} must be a string, got {describe(raw)}")


def _as_number(raw: Any, label: str, bulk: bool) -> float:
    if isinstance(raw, str):
        if not _NUMERIC.match(raw):
            raise RecordRejected(INVALID_TYPE, f"{label} must be a number, got a non-numeric string")
        number = float(raw)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            number = float(raw)
        except OverflowError:
            # NOTE: JSON integers have no size limit; one beyond a double's range must reject its record, not
            # crash the invocation (which would fail every record of the batch).
            raise RecordRejected(INVALID_TYPE, f"{label} must be a finite number") from None
    else:
        raise RecordRejected(INVALID_TYPE, f"{label} must be a number, got {describe(raw)}")
    if not math.isfinite(number):
        raise RecordRejected(INVALID_TYPE, f"{label} must be a finite number")
    return number


def _as_timestamp(raw: Any, label: str, bulk: bool) -> float:
    return to_epoch_seconds(raw, label)


def _as_string_list(raw: Any, label: str, bulk: bool) -> list[str] | None:
    # NOTE: IMPRESSION is pipe-separated in bulk-import files; the API wants a list. Either form is accepted.
    if isinstance(raw, str):
        return raw.split("|")
    if not isinstance(raw, list):
        raise RecordRejected(INVALID_TYPE, f"{label} must be an array of strings or a '|'-separated string")
    if not raw:
        return None
    return [_as_string(entry, f"{label}[{index}]", bulk) for index, entry in enumerate(raw)]


def _as_is(raw: Any, label: str, bulk: bool) -> Any:
    return raw


_CONVERTERS: dict[str, Converter] = {
    "string": _as_string,
    "float": _as_number,
    "double": _as_number,
    "timestamp": _as_timestamp,
    "list": _as_string_list,
}


# --- properties ------------------------------------------------------------------------------------------------


def _properties_object(raw: Any, label: str) -> dict[str, Any]:
    """camelCase ``properties``: an object, or a string holding a JSON object."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError):
            raise RecordRejected(INVALID_PROPERTIES, f"{label} is a string but not valid JSON") from None
        if isinstance(decoded, dict):
            return decoded
        hint = " (encoded twice?)" if isinstance(decoded, str) else ""
        raise RecordRejected(
            INVALID_PROPERTIES, f"{label} must hold a JSON object, got a string holding {describe(decoded)}{hint}"
        )
    raise RecordRejected(
        INVALID_PROPERTIES, f"{label} must be an object or a string holding a JSON object, got {describe(raw)}"
    )


def _flat_properties(properties: Mapping[str, Any], layout: _Layout) -> dict[str, Any]:
    """Flatten and check properties (the caller serialises them compactly); empty when nothing is left.

    null, "" and [] values mean "no value" and their keys are left out; arrays of scalars become one
    ``|``-joined string (categorical fields); nested objects are refused (properties are flat schema fields).
    """
    flat: dict[str, Any] = {}
    for key, value in properties.items():
        if not key:
            raise RecordRejected(INVALID_PROPERTIES, "properties has an empty key")
        if value is None or value == "" or value == []:
            continue
        where = _property_where(key, layout)
        if key.lower() in _FORBIDDEN_FOLDED:
            raise RecordRejected(
                FORBIDDEN_PROPERTY,
                f"{where} is reserved: Personalize refuses the keys {', '.join(FORBIDDEN_PROPERTY_KEYS)} "
                "(in any case) inside properties",
            )
        flat[key] = _property_value(value, where)
    return flat


def _property_where(key: str, layout: _Layout) -> str:
    """Name a property in a reason: its column in bulk style, ``properties.<key>`` in camelCase style."""
    column = layout.property_columns.get(key)
    if column is not None:
        return f"column {column} (property {key!r})"
    shown = key if len(key) <= 64 else key[:61] + "..."
    return f"properties.{shown}"


def _property_value(value: Any, where: str) -> Any:
    if isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        # NOTE: only floats can be NaN or infinite; math.isfinite() of a huge JSON integer raises OverflowError.
        if isinstance(value, float) and not math.isfinite(value):
            raise RecordRejected(INVALID_PROPERTIES, f"{where} must be a finite number")
        return value
    if isinstance(value, list):
        parts = []
        for entry in value:
            if not isinstance(entry, _PROPERTY_VALUE_TYPES):
                raise RecordRejected(
                    INVALID_PROPERTIES,
                    f"{where} is an array holding {describe(entry)}; only scalars can be joined",
                )
            parts.append(entry if isinstance(entry, str) else json.dumps(entry))
        return "|".join(parts)
    raise RecordRejected(
        INVALID_PROPERTIES,
        f"{where} is {describe(value)}; property values are strings, numbers, booleans or arrays of them",
    )
