"""Planning byte ranges of a large plain object: boundaries at row ends, exact line numbers, quoted newlines."""

from __future__ import annotations

import io
import itertools

from personalize_ingest.s3objects import iter_rows, iter_rows_at, read_layout
from personalize_ingest.s3stage.fanout import plan_ranges, range_step


def csv_with_quoted_newlines(rows: int) -> bytes:
    lines = ["USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP,NOTE"]
    for n in range(rows):
        note = f'"said ""hi""\nover two lines {n}"' if n % 3 == 0 else f"plain {n}"
        lines.append(f"u-{n % 7},i-{n},click,{1764400000 + n},{note}")
    return ("\n".join(lines) + "\n").encode()


def test_ranges_start_at_row_boundaries_and_together_hold_every_row_once() -> None:
    # GIVEN a CSV whose every third row has a quoted field spanning two lines (and doubled quotes)
    data = csv_with_quoted_newlines(2_000)
    layout = read_layout(io.BytesIO(data), "events/a.csv")
    assert layout is not None

    # WHEN it is planned in ranges of ~8 KB
    planned = plan_ranges(io.BytesIO(data), len(data), layout, 8_000, lambda: True)

    # THEN the ranges are contiguous, and reading each from its start up to its end yields the rows of a whole
    # read, with the same line numbers, none split and none twice
    assert len(planned) >= 8
    assert planned[0].start == layout.body and planned[-1].end == len(data)
    assert all(a.end == b.start.offset for a, b in itertools.pairwise(planned))
    whole = list(iter_rows(io.BytesIO(data), "events/a.csv"))
    pieces = [
        row for p in planned for row in iter_rows_at(io.BytesIO(data[p.start.offset :]), layout, p.start, p.end)
    ]
    assert pieces == whole
    assert all(row.error is None for row in pieces)


def test_scanning_that_must_stop_early_leaves_the_rest_to_the_last_range() -> None:
    # GIVEN JSON Lines and a scan allowed for one read only
    data = b"".join(b'{"itemId": "i-%d"}\n' % n for n in range(200_000))
    layout = read_layout(io.BytesIO(data), "items/a.jsonl")
    assert layout is not None
    answers = iter([True, False])

    # WHEN planned in 100 KB ranges
    planned = plan_ranges(io.BytesIO(data), len(data), layout, 100_000, lambda: next(answers, False))

    # THEN the first MiB read gave ranges, and the last range covers everything not scanned
    assert 2 <= len(planned) <= 12
    assert planned[-1].end == len(data)
    assert planned[-1].start.line == data.count(b"\n", 0, planned[-1].start.offset) + 1


def test_the_range_size_grows_to_keep_the_number_of_ranges_bounded() -> None:
    assert range_step(100, 16, 64) == 16
    assert range_step(64 * 1000, 16, 64) == 1000
