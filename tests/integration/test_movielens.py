"""The first 10,000 MovieLens ratings through the events function from S3: every row once, grouped by user.

The data set stays in ``../shared/data`` beside the repository (its licence keeps it out of the project): without
it the test skips, unless ``REQUIRE_SHARED_DATA`` is set (``.ci/run`` sets it when the folder exists). The
ratings (userId,movieId,rating,timestamp) are converted on the fly to the bulk-import layout
(USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP) in a gzip object announced through an SQS S3 notification.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter, defaultdict
from itertools import islice

import pytest

from emulator.testing import EmulatorHandle
from tests.integration.test_handlers import build_stack
from tests.support import factories as f
from tests.support.datasets import movielens_file

ROWS = 10_000


def bulk_layout(rows: int) -> tuple[bytes, list[tuple[str, str, str, int]]]:
    """The first ``rows`` ratings as a gzip bulk-import CSV, and the (user, item, value, timestamp) expected."""
    ratings_file = movielens_file("ratings.csv.gz")
    expected: list[tuple[str, str, str, int]] = []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["USER_ID", "ITEM_ID", "EVENT_TYPE", "EVENT_VALUE", "TIMESTAMP"])
    with gzip.open(ratings_file, "rt", newline="") as ratings:
        for rating in islice(csv.DictReader(ratings), rows):
            writer.writerow([rating["userId"], rating["movieId"], "rating", rating["rating"], rating["timestamp"]])
            expected.append((rating["userId"], rating["movieId"], rating["rating"], int(rating["timestamp"])))
    return gzip.compress(out.getvalue().encode()), expected


@pytest.mark.slow
def test_first_10000_ratings_are_delivered_exactly_once_grouped_by_user(
    moto_env: str, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the first 10,000 ratings as a bulk-layout gzip object and its S3 notification in an SQS message
    body, expected = bulk_layout(ROWS)
    stack = build_stack(emulator, monkeypatch)
    handler = stack.configure("events")
    key = "events/movielens/ratings-10k.csv.gz"
    put = stack.put(key, body)
    notification = f.s3_notification(f.s3_record(stack.bucket, key, etag=put["ETag"].strip('"'), size=len(body)))

    # WHEN the events function handles the notification
    response = handler(f.sqs_event([f.sqs_message(notification, "movielens")]), f.FakeLambdaContext())

    # THEN every row was stored exactly once, with its user, item, rating and timestamp
    assert response == {"batchItemFailures": []}
    stored = emulator.records("events")
    assert len(stored) == ROWS
    assert not any(row["duplicate"] for row in stored)
    assert len({row["element"]["eventId"] for row in stored}) == ROWS
    delivered = Counter(
        (
            row["request"]["userId"],
            row["element"]["itemId"],
            f"{row['element']['eventValue']:.1f}",
            int(row["element"]["sentAt"]),
        )
        for row in stored
    )
    assert delivered == Counter(expected)
    assert {row["element"]["eventType"] for row in stored} == {"rating"}

    # AND each PutEvents call held the events of one user only (session = user for bulk files)
    users_per_call: dict[str, set[str]] = defaultdict(set)
    for row in stored:
        users_per_call[row["requestId"]].add(row["request"]["userId"])
        assert row["request"]["sessionId"] == row["request"]["userId"]
    assert all(len(users) == 1 for users in users_per_call.values())
    assert max(Counter(row["requestId"] for row in stored).values()) == 10

    # AND the result file counts the whole object
    result = stack.result(key)
    assert (result["status"], result["delivered"], result["rejected"], result["failed"]) == (
        "complete",
        ROWS,
        0,
        0,
    )
    assert result["lastLine"] == ROWS + 1
