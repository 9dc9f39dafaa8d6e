"""Converters of a record's field values to the types of the API's members (string, number, timestamp, list).

Each takes (raw value, the record's name for the field, bulk style) and returns the converted value, or None for
"absent"; a value that cannot be converted raises :class:`RecordRejected` naming the field and the rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from personalize_ingest.model import RecordRejected
from personalize_ingest.timestamps import to_epoch_seconds
from personalize_ingest.validation import INVALID_TYPE, describe

_NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")

Converter = Callable[[Any, str, bool], Any]
"""(raw value, the record's name for the field, bulk style) -> converted value, or None for "absent"."""


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


CONVERTERS: dict[str, Converter] = {
    "string": _as_string,
    "float": _as_number,
    "double": _as_number,
    "timestamp": _as_timestamp,
    "list": _as_string_list,
}


def converter_for(type_name: str) -> Converter:
    """The converter of a member of botocore's ``type_name`` (a value of any other type is passed as is)."""
    return CONVERTERS.get(type_name, _as_is)
