"""One decoded input record -> one validated, wire-ready element, or a specific rejection.

A record comes in one of two styles, decided per record from its keys:

- camelCase: the API's member names of the entity's element (``itemId``, ``sentAt``, ``properties`` ...), plus
  for events the request-level ``sessionId`` and ``userId``;
- bulk: every key UPPER_SNAKE, as in Personalize bulk-import files. The entity's own fields use their column
  names (``USER_ID``, ``ITEM_ID``, ``TIMESTAMP``, ``IMPRESSION`` as ``a|b|c`` ...); every other column is a
  dataset schema field and goes into ``properties`` under its camelCase name (``NUMBER_OF_RATINGS`` ->
  ``numberOfRatings``).

The work, module by module: :mod:`~personalize_ingest.record_layout` maps the record's keys onto the entity's
members (cached per entity and key tuple), :mod:`~personalize_ingest.field_converters` converts each field's value,
:mod:`~personalize_ingest.record_properties` flattens and checks ``properties``, and :func:`prepare` puts them
together: per record, a dict lookup, one converter call per present field, one ``json.dumps`` of the properties
and the model checks. docs/records.md describes the contract for producers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from personalize_ingest.model import Prepared, Record, RecordRejected
from personalize_ingest.record_layout import BULK_COLUMNS, UPPER_SNAKE, plan_for
from personalize_ingest.record_properties import PROPERTIES, flat_properties, properties_object, property_where
from personalize_ingest.text import check_unicode
from personalize_ingest.validation import MISSING_FIELD, NOT_AN_OBJECT, describe

if TYPE_CHECKING:
    from personalize_ingest.entities import Entity
    from personalize_ingest.schema import DatasetSchema

__all__ = ["BULK_COLUMNS", "UPPER_SNAKE", "prepare"]


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
    plan = plan_for(entity)
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
            properties = properties_object(raw, key)
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
    flat = flat_properties(properties, layout.property_columns) if properties else {}
    if schema is not None:
        schema.check(flat, lambda key: property_where(key, layout.property_columns), bulk=bulk)
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
