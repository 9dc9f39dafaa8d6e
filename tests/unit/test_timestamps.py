"""Timestamps: epoch seconds / ms / us / ns told apart by magnitude, ISO-8601 (no zone = UTC), garbage refused."""

from __future__ import annotations

import pytest

from personalize_ingest.model import RecordRejected
from personalize_ingest.timestamps import to_epoch_seconds

SECONDS = 1764400000.0  # 2025-11-29T07:06:40Z

CONVERTED = [
    ("seconds, integer", 1764400000, SECONDS),
    ("seconds, float", 1764400000.5, SECONDS + 0.5),
    ("seconds, string", "1764400000", SECONDS),
    ("seconds, decimal string with spaces", " 1764400000.25 ", SECONDS + 0.25),
    ("seconds, exponent string", "1.7644e9", SECONDS),
    ("seconds, MovieLens 1996", 835000000, 835000000.0),
    ("milliseconds", 1764400000123, SECONDS + 0.123),
    ("milliseconds, string", "1764400000123", SECONDS + 0.123),
    ("microseconds", 1764400000123456, SECONDS + 0.123456),
    ("nanoseconds", 1764400000123456789, SECONDS + 0.123456789),
    ("nanoseconds, string", "1764400000000000000", SECONDS),
    ("ISO-8601 with Z", "2025-11-29T07:06:40Z", SECONDS),
    ("ISO-8601 without zone is UTC", "2025-11-29T07:06:40", SECONDS),
    ("ISO-8601 with offset", "2025-11-29T08:06:40+01:00", SECONDS),
    ("ISO-8601 with fraction", "2025-11-29T07:06:40.5Z", SECONDS + 0.5),
    ("ISO-8601 with a space", "2025-11-29 07:06:40", SECONDS),
    ("ISO-8601 date only", "2025-11-29", SECONDS - 7 * 3600 - 6 * 60 - 40),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in CONVERTED], ids=[c[0] for c in CONVERTED])
def test_timestamp_forms_become_epoch_seconds(value: object, expected: float) -> None:
    # GIVEN a timestamp in one of the accepted forms
    # WHEN it is converted
    seconds = to_epoch_seconds(value, "sentAt")
    # THEN it is epoch seconds as a float
    assert isinstance(seconds, float)
    assert seconds == pytest.approx(expected, abs=1e-6)


REFUSED = [
    ("word", "yesterday", "sentAt is a 9-character string that is neither an epoch number nor an ISO-8601"),
    ("empty", "", "sentAt is a 0-character string"),
    ("bad calendar date", "2025-13-45T00:00:00Z", "sentAt looks like an ISO-8601 date but is not a valid"),
    ("zero", 0, "sentAt must be a positive epoch time, got zero"),
    ("negative", -1764400000, "got a negative number"),
    ("negative string", "-5", "got a negative number"),
    ("NaN", float("nan"), "got NaN"),
    ("infinite", float("inf"), "got an infinite number"),
    ("beyond nanoseconds", 1e21, "sentAt is too large"),
    ("integer beyond a double", 10**400, "sentAt is too large"),
    ("before 1970", "1969-12-31T23:00:00Z", "sentAt must be after 1970"),
    ("boolean", True, "sentAt must be a number or a string, got a boolean"),
    ("null", None, "got null"),
    ("array", [1764400000], "got an array"),
]


@pytest.mark.parametrize(("value", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_garbage_is_refused_naming_the_field_and_the_form(value: object, reason: str) -> None:
    # GIVEN a value that is not a timestamp
    # WHEN it is converted
    with pytest.raises(RecordRejected) as raised:
        to_epoch_seconds(value, "sentAt")
    # THEN it is refused as invalid_timestamp with a reason that describes the value's form
    assert raised.value.rejection.code == "invalid_timestamp"
    assert reason in raised.value.rejection.reason


def test_the_reason_never_repeats_the_value() -> None:
    # GIVEN a string timestamp that holds something private
    secret = "user-4242@example.com"
    # WHEN it is refused
    with pytest.raises(RecordRejected) as raised:
        to_epoch_seconds(secret, "TIMESTAMP")
    # THEN only its length and the field name are reported
    assert secret not in raised.value.rejection.reason
    assert raised.value.rejection.reason.startswith("TIMESTAMP is a 21-character string")
