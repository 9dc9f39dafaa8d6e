"""Streaming rows out of S3 object bodies: CSV / JSON Lines, gzip, BOM, CRLF, line numbers, continuations."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from personalize_ingest.s3objects import (
    MAX_LINE_BYTES,
    ObjectFormatError,
    Position,
    Row,
    iter_rows,
    iter_rows_at,
    read_layout,
)

CSV = "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\nu-1,i-1,click,1764400000\nu-2,i-2,click,1764400001\n"


class CountingStream(io.RawIOBase):
    """A body that records the largest read asked of it (the reader must never ask for the whole object)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.largest_read = max(self.largest_read, size if size >= 0 else 1 << 62)
        return self._data.read(size)


def rows(data: bytes, key: str, start: Position | None = None) -> list[Row]:
    return list(iter_rows(io.BytesIO(data), key, start))


def test_csv_rows_are_header_value_objects_numbered_from_the_header() -> None:
    # GIVEN a CSV object with a header and two rows
    # WHEN its rows are read
    result = rows(CSV.encode(), "events/a.csv")

    # THEN each row is a header->value dict named by its line (header = line 1)
    assert [r.line for r in result] == [2, 3]
    assert result[0].value == {
        "USER_ID": "u-1",
        "ITEM_ID": "i-1",
        "EVENT_TYPE": "click",
        "TIMESTAMP": "1764400000",
    }
    assert all(r.error is None for r in result)


@pytest.mark.parametrize("key", ["events/a.csv.gz", "events/a.csv"])
def test_gzip_bom_and_crlf_are_read_like_plain_text(key: str) -> None:
    # GIVEN the same CSV with a BOM and CRLF line ends, gzip-compressed (by extension, or only by magic bytes)
    data = gzip.compress(b"\xef\xbb\xbf" + CSV.replace("\n", "\r\n").encode())

    # WHEN its rows are read
    result = rows(data, key)

    # THEN the header has no BOM and no value keeps a carriage return
    assert [r.line for r in result] == [2, 3]
    assert list(result[0].value) == ["USER_ID", "ITEM_ID", "EVENT_TYPE", "TIMESTAMP"]
    assert result[1].value["TIMESTAMP"] == "1764400001"


def test_json_lines_are_decoded_and_blank_lines_skipped() -> None:
    # GIVEN JSON Lines with a blank line, an invalid line and a non-object line
    data = b'{"itemId": "i-1"}\r\n\n{oops\n[1, 2]\n{"itemId": "i-2"}'

    # WHEN read as .jsonl
    result = rows(data, "items/a.jsonl")

    # THEN good lines are objects and bad lines carry a rejection naming their line
    assert [(r.line, r.error.code if r.error else None) for r in result] == [
        (1, None),
        (3, "invalid_json"),
        (4, "not_an_object"),
        (5, None),
    ]
    assert result[1].value == "{oops"
    assert result[3].value == {"itemId": "i-2"}


def test_format_is_sniffed_when_the_key_has_no_known_suffix() -> None:
    # GIVEN a JSON Lines body and a CSV body under keys without a known suffix
    # WHEN / THEN the first byte decides
    assert rows(b'{"userId": "u-1"}\n', "users/export")[0].value == {"userId": "u-1"}
    assert rows(b"USER_ID\nu-1\n", "users/export")[0].value == {"USER_ID": "u-1"}


def test_a_start_position_skips_rows_already_handled() -> None:
    # GIVEN a gzip CSV of 10 rows (lines 2-11), and the position where line 7 starts
    body = "ITEM_ID\n" + "".join(f"i-{n}\n" for n in range(2, 12))
    data = gzip.compress(body.encode())
    seventh = rows(data, "items/a.csv.gz")[5]
    assert seventh.line == 7

    # WHEN read from that position (a continuation)
    result = rows(data, "items/a.csv.gz", Position(seventh.offset, 7))

    # THEN rows start at line 7, none before
    assert [r.line for r in result] == [7, 8, 9, 10, 11]
    assert result[0].value == {"ITEM_ID": "i-7"}


def test_quoted_newlines_keep_the_row_on_its_first_line() -> None:
    # GIVEN a CSV whose second row has a quoted value spanning two lines
    data = b'ITEM_ID,DESCRIPTION\ni-1,"two\nlines"\ni-2,plain\n'

    # WHEN read
    result = rows(data, "items/a.csv")

    # THEN the multi-line row is named by its first line and the next row by its own line
    assert [(r.line, r.value["ITEM_ID"]) for r in result] == [(2, "i-1"), (4, "i-2")]
    assert result[0].value["DESCRIPTION"] == "two\nlines"


def test_bad_rows_are_rejected_one_by_one() -> None:
    # GIVEN a CSV with a row of too many columns and a row that is not UTF-8
    data = b"ITEM_ID,TITLE\ni-1,a\ni-2,b,extra\ni-3,\xff\xfe\ni-4,d\n"

    # WHEN read
    result = rows(data, "items/a.csv")

    # THEN only those rows carry rejections, with their line numbers
    assert [(r.line, r.error.code if r.error else None) for r in result] == [
        (2, None),
        (3, "invalid_csv"),
        (4, "invalid_encoding"),
        (5, None),
    ]
    assert result[1].error is not None and "line 3" in result[1].error.reason


def test_an_oversized_line_is_rejected_without_being_held() -> None:
    # GIVEN JSON Lines where the middle line is longer than the line limit
    huge = b'{"itemId": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n'
    stream = CountingStream(b'{"itemId": "i-1"}\n' + huge + b'{"itemId": "i-3"}\n')

    # WHEN read
    result = list(iter_rows(stream, "items/a.jsonl"))  # type: ignore[arg-type]

    # THEN the long line is rejected, its neighbours are read, and no read asked for more than a buffer
    assert [(r.line, r.error.code if r.error else None) for r in result] == [(1, None), (2, "too_long"), (3, None)]
    assert stream.largest_read <= 1024 * 1024


@pytest.mark.parametrize(
    ("header", "message"),
    [(b"ITEM_ID,,TITLE\n", "empty column"), (b"ITEM_ID,TITLE,ITEM_ID\n", r"repeats column\(s\) ITEM_ID")],
)
def test_unusable_header_refuses_the_object(header: bytes, message: str) -> None:
    # GIVEN a CSV whose header cannot name the columns
    # WHEN / THEN reading refuses the object with the reason
    with pytest.raises(ObjectFormatError, match=message):
        rows(header + b"i-1,a,b\n", "items/a.csv")


def test_empty_object_has_no_rows() -> None:
    # GIVEN empty objects of both formats
    # WHEN / THEN they yield nothing
    assert rows(b"", "items/a.csv") == []
    assert rows(b"", "items/a.jsonl") == []


def test_large_gzip_object_is_streamed_in_order() -> None:
    # GIVEN a 20,000-row gzip JSON Lines object
    data = gzip.compress(b"".join(json.dumps({"itemId": f"i-{n}"}).encode() + b"\n" for n in range(20_000)))
    stream = CountingStream(data)

    # WHEN read
    result = iter_rows(stream, "items/big.ndjson.gz")  # type: ignore[arg-type]

    # THEN every row comes in order, and the body was read in bounded chunks
    assert [r.line for r in result] == list(range(1, 20_001))
    assert stream.largest_read <= 1024 * 1024


def test_a_truncated_gzip_object_yields_its_rows_then_one_rejected_row() -> None:
    # GIVEN a gzip CSV cut in the middle (an upload that stopped early)
    data = gzip.compress(("ITEM_ID,X\n" + "".join(f"i-{n},{n}\n" for n in range(20_000))).encode())

    # WHEN read
    result = rows(data[: len(data) // 2], "items/cut.csv.gz")

    # THEN every complete row comes in order, and the first line that cannot be read is one rejected row
    *good, last = result
    assert [r.line for r in good] == list(range(2, len(good) + 2))
    assert all(r.error is None for r in good) and len(good) > 1_000
    assert last.line == good[-1].line + 1
    assert last.error is not None and last.error.code == "invalid_gzip"
    assert f"line {last.line}" in last.error.reason


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (b"ITEM_ID\ni-1\n", "items/not-really.csv.gz"),
        (gzip.compress(b"ITEM_ID\ni-1\n")[:12] + b"\x00" * 40, "items/corrupt.csv.gz"),
        (gzip.compress(b'{"itemId": "i-1"}\n')[:15], "items/corrupt"),
    ],
    ids=["not gzip at all", "corrupt deflate data", "sniffed format, truncated"],
)
def test_a_body_that_is_not_readable_gzip_is_one_rejected_row(data: bytes, key: str) -> None:
    # GIVEN a body named or sniffed as gzip that cannot be decompressed
    # WHEN read
    (row,) = rows(data, key)

    # THEN it is one rejected row at line 1, not an exception that would fail the whole batch
    assert (row.line, row.value) == (1, None)
    assert row.error is not None and row.error.code == "invalid_gzip"


def test_a_json_line_nested_too_deeply_to_parse_is_rejected_alone() -> None:
    # GIVEN a JSON Lines object whose second line is nested 5,000 deep
    data = b'{"itemId": "i-1"}\n' + b"[" * 5_000 + b"]" * 5_000 + b'\n{"itemId": "i-3"}\n'

    # WHEN read
    result = rows(data, "items/a.jsonl")

    # THEN that line is rejected as invalid JSON and its neighbours are read
    assert [(r.line, r.error.code if r.error else None) for r in result] == [
        (1, None),
        (2, "invalid_json"),
        (3, None),
    ]


def test_a_row_the_csv_reader_refuses_is_rejected_alone() -> None:
    # GIVEN a CSV whose third line holds a cell above the csv module's field limit (128 KiB)
    data = b"ITEM_ID,X\ni-1,a\ni-2," + b"y" * 200_000 + b"\ni-3,c\n"

    # WHEN read
    result = rows(data, "items/a.csv")

    # THEN that row is rejected by its line and the next row keeps its own line number
    assert [(r.line, r.error.code if r.error else None) for r in result] == [
        (2, None),
        (3, "invalid_csv"),
        (4, None),
    ]
    assert result[1].error is not None and "line 3 is not valid CSV" in result[1].error.reason


def test_each_row_names_where_the_next_one_starts_so_a_ranged_read_resumes_exactly() -> None:
    # GIVEN a CSV with a BOM, CRLF, a quoted newline, a blank line and a bad row
    data = b'\xef\xbb\xbfITEM_ID,X\r\ni-1,"a\nb"\r\n\r\ni-2,\xff\r\ni-3,c\r\n'
    every = rows(data, "items/a.csv")

    # WHEN the body is read again from each row's end, as a ranged GET would hand it over
    layout = read_layout(io.BytesIO(data), "items/a.csv")
    assert layout is not None and layout.header == ("ITEM_ID", "X")
    for index, row in enumerate(every[:-1]):
        assert row.end is not None
        tail = list(iter_rows_at(io.BytesIO(data[row.end.offset :]), layout, row.end))

        # THEN the rows after it come back with the same lines, values, offsets and reasons
        assert tail == every[index + 1 :]
    assert [r.line for r in every] == [2, 5, 6]
    assert every[-1].end == Position(len(data), 7)


def test_a_range_end_stops_before_the_row_that_starts_there() -> None:
    # GIVEN JSON Lines and the offset where its third row starts
    data = b"".join(json.dumps({"itemId": f"i-{n}"}).encode() + b"\n" for n in range(5))
    third = rows(data, "items/a.jsonl")[2]

    # WHEN read up to that offset / from it
    before = list(iter_rows(io.BytesIO(data), "items/a.jsonl", end=third.offset))
    layout = read_layout(io.BytesIO(data), "items/a.jsonl")
    assert layout is not None
    after = list(iter_rows_at(io.BytesIO(data[third.offset :]), layout, Position(third.offset, 3)))

    # THEN the two halves hold every row once
    assert [r.line for r in before] == [1, 2]
    assert [r.line for r in after] == [3, 4, 5]


def test_problems_of_bad_lines_are_forgotten_once_their_rows_are_read() -> None:
    # GIVEN a CSV of 5,000 lines that are not UTF-8
    data = b"ITEM_ID,X\n" + b"".join(b"i-%d,\xff\n" % n for n in range(5_000))
    from personalize_ingest import s3objects

    lines, lowered, compressed = s3objects._lines_of(io.BytesIO(data), "items/a.csv")
    layout = s3objects._layout(lines, lowered, compressed)
    assert layout is not None

    # WHEN every row is read
    result = list(s3objects._rows(lines, layout, None))

    # THEN each is rejected by its line and no problem is held afterwards
    assert len(result) == 5_000 and all(r.error is not None and r.error.code == "invalid_encoding" for r in result)
    assert lines.problems == {}
