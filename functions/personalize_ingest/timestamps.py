"""Interaction times as epoch seconds: the one conversion ``sentAt`` / ``timestamp`` / ``TIMESTAMP`` go through.

Accepted forms (number or numeric string): epoch seconds, milliseconds, microseconds or nanoseconds, told apart by
magnitude; or an ISO-8601 date / date-time (no zone = UTC). The result is a float of epoch seconds.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from personalize_ingest.model import RecordRejected
from personalize_ingest.validation import INVALID_TIMESTAMP, describe

# NOTE: magnitude bands. Epoch seconds now are ~1.8e9 and stay below 1e11 until the year 5138; a millisecond value
# of any date after 1973 is above 1e11, and so on for micro- and nanoseconds. Values at or above 1e20 ns (year
# 5138) are refused rather than guessed.
_BANDS: tuple[tuple[float, float], ...] = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_TOO_LARGE = "{field} is too large for epoch seconds, milliseconds, microseconds or nanoseconds"


def to_epoch_seconds(value: object, field: str) -> float:
    """Convert one timestamp value to epoch seconds.

    Parameters
    ----------
    value
        A number, a numeric string or an ISO-8601 string, as found in the record.
    field
        The record's name for the field, used in the rejection reason.

    Raises
    ------
    RecordRejected
        ``invalid_timestamp`` naming ``field`` and the form of the value (never the value itself).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordRejected(INVALID_TIMESTAMP, f"{field} must be a number or a string, got {describe(value)}")
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC.match(text):
            return _from_number(float(text), field)
        if _ISO_DATE.match(text):
            return _from_iso(text, field)
        raise RecordRejected(
            INVALID_TIMESTAMP,
            f"{field} is a {len(value)}-character string that is neither an epoch number nor an ISO-8601 "
            "date-time",
        )
    try:
        number = float(value)
    except OverflowError:
        # NOTE: JSON integers have no size limit; one beyond a double's range rejects its record instead of
        # crashing the invocation (which would fail every record of the batch).
        raise RecordRejected(INVALID_TIMESTAMP, _TOO_LARGE.format(field=field)) from None
    return _from_number(number, field)


def _from_number(number: float, field: str) -> float:
    if not math.isfinite(number) or number <= 0:
        raise RecordRejected(INVALID_TIMESTAMP, f"{field} must be a positive epoch time, got {_sign(number)}")
    for upper, per_second in _BANDS:
        if number < upper:
            return number / per_second
    raise RecordRejected(INVALID_TIMESTAMP, _TOO_LARGE.format(field=field))


def _from_iso(text: str, field: str) -> float:
    # NOTE: datetime.fromisoformat accepts the ISO-8601 forms in general use since Python 3.11, including "Z".
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RecordRejected(
            INVALID_TIMESTAMP, f"{field} looks like an ISO-8601 date but is not a valid date-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    if seconds <= 0:
        raise RecordRejected(INVALID_TIMESTAMP, f"{field} must be after 1970-01-01T00:00:00Z")
    return seconds


def _sign(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "an infinite number"
    return "zero" if number == 0 else "a negative number"
