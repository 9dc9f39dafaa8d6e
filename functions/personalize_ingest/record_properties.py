"""A record's ``properties``: decoded, flattened to schema fields, checked against what Personalize refuses.

Personalize takes ``properties`` as a JSON string of a flat object; this module accepts an object or a string
holding one (camelCase style) or the non-field columns (bulk style), and returns the flat object to serialise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from personalize_ingest.model import RecordRejected
from personalize_ingest.validation import FORBIDDEN_PROPERTY, INVALID_PROPERTIES, describe

PROPERTIES = "properties"

FORBIDDEN_PROPERTY_KEYS = ("userId", "sessionId", "eventType", "timestamp", "recommendationId", "impression")
"""Keys Personalize refuses inside ``properties``, compared case-insensitively."""
_FORBIDDEN_FOLDED = frozenset(key.lower() for key in FORBIDDEN_PROPERTY_KEYS)
_PROPERTY_VALUE_TYPES = (str, int, float, bool)


def properties_object(raw: Any, label: str) -> dict[str, Any]:
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


def flat_properties(properties: Mapping[str, Any], property_columns: Mapping[str, str]) -> dict[str, Any]:
    """Flatten and check properties (the caller serialises them compactly); empty when nothing is left.

    ``property_columns``: in bulk style, property name -> the column it came from (to name it in reasons).

    null, "" and [] values mean "no value" and their keys are left out; arrays of scalars become one
    ``|``-joined string (categorical fields); nested objects are refused (properties are flat schema fields).
    """
    flat: dict[str, Any] = {}
    for key, value in properties.items():
        if not key:
            raise RecordRejected(INVALID_PROPERTIES, "properties has an empty key")
        if value is None or value == "" or value == []:
            continue
        where = property_where(key, property_columns)
        if key.lower() in _FORBIDDEN_FOLDED:
            raise RecordRejected(
                FORBIDDEN_PROPERTY,
                f"{where} is reserved: Personalize refuses the keys {', '.join(FORBIDDEN_PROPERTY_KEYS)} "
                "(in any case) inside properties",
            )
        flat[key] = _property_value(value, where)
    return flat


def property_where(key: str, property_columns: Mapping[str, str]) -> str:
    """Name a property in a reason: its column in bulk style (from ``property_columns``), ``properties.<key>`` in
    camelCase style."""
    column = property_columns.get(key)
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
