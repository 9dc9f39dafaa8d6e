"""Stream the rows of an S3 object: CSV with a header row (bulk-import layout) or JSON Lines, optionally gzip.

Memory stays bounded whatever the object's size: the body is read line by line (gzip decompressed on the fly),
and a physical line longer than :data:`MAX_LINE_BYTES` is skipped and reported instead of being held. Line numbers
count physical lines from 1 (the CSV header is line 1); a CSV row spanning several lines (quoted newlines) is
named by its first line. UTF-8 with or without BOM, LF or CRLF.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from personalize_ingest.model import Rejection

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from personalize_ingest.sources import ObjectRef

MAX_LINE_BYTES = 1024 * 1024
"""Longest physical line read; the largest valid record (an item with 32,000 characters of properties) is far
below it."""
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)
_GZIP_SUFFIXES = (".gz", ".gzip")
_READ_CHUNK = 64 * 1024
_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "PreconditionFailed", "412", "404"})
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
"""What a truncated or corrupt gzip body raises while it is read (not network errors: those are botocore's)."""
INVALID_GZIP = "invalid_gzip"


class ObjectFormatError(ValueError):
    """The object cannot be read as rows at all (e.g. a CSV header with empty or repeated column names)."""


class ObjectGone(Exception):
    """The announced object (or that version of it) no longer exists; a later notification covers its successor."""


@dataclass(frozen=True, slots=True)
class Row:
    """One record of an object: its first physical line, its value, and why it cannot be read, if so."""

    line: int
    value: Any
    """A CSV row as a header->value dict, a decoded JSON value, or the raw text when it is not JSON."""
    error: Rejection | None = None


def iter_rows(stream: IO[bytes], key: str, start_line: int = 1) -> Iterator[Row]:
    """Yield the rows of an object body, skipping rows that start before ``start_line``.

    Parameters
    ----------
    stream
        The object body (anything with ``read(n)``); gzip is recognised by the key's suffix or magic bytes.
    key
        Object key: its suffix picks the format (``.csv`` / ``.jsonl``, ``.ndjson``, ``.json``; otherwise the
        first byte decides: ``{`` or ``[`` means JSON Lines).
    start_line
        First line still to process (a continuation resumes there; earlier rows are read and skipped).

    A gzip body that is truncated or corrupt ends the rows with one row carrying an ``invalid_gzip`` rejection at
    the first line that could not be read: the rows before it are yielded as usual, none is lost unreported.

    Raises
    ------
    ObjectFormatError
        when a CSV header cannot name the columns.
    """
    buffered = io.BufferedReader(_RawStream(stream), buffer_size=_READ_CHUNK)
    lowered = key.lower()
    binary: IO[bytes] = buffered
    if lowered.endswith(_GZIP_SUFFIXES) or buffered.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC:
        binary = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
        lowered = lowered.rsplit(".", 1)[0] if lowered.endswith(_GZIP_SUFFIXES) else lowered
    lines = _Lines(binary)
    try:
        rows = _json_rows(lines) if _is_json_lines(lowered, lines) else _csv_rows(lines)
        for row in rows:
            if row.line >= start_line:
                yield row
    except _GZIP_ERRORS as exc:
        # NOTE: the same object version fails the same way on every retry, so the rest of it is set aside as one
        # rejected row instead of failing the message (or, raised, the whole batch) forever.
        line = max(lines.number + 1, start_line)
        yield Row(line, None, Rejection(INVALID_GZIP, f"the gzip body cannot be read from line {line} on: {exc}"))


@contextmanager
def open_object(client: S3Client, ref: ObjectRef) -> Iterator[IO[bytes]]:
    """Open the announced version of an object for streaming (GetObject, closed on exit).

    Raises
    ------
    ObjectGone
        when the key, the version or the announced ETag no longer exists.
    """
    request: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        request["VersionId"] = ref.version_id
    elif ref.etag:
        # NOTE: notifications carry the ETag unquoted; If-Match compares the quoted entity tag.
        request["IfMatch"] = ref.etag if ref.etag.startswith('"') else f'"{ref.etag}"'
    try:
        response = client.get_object(**request)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _GONE_CODES:
            raise ObjectGone(f"{code}: s3://{ref.bucket}/{ref.key} is not there as announced") from exc
        raise
    body = response["Body"]
    try:
        yield body  # type: ignore[misc]
    finally:
        body.close()


class _RawStream(io.RawIOBase):
    """Adapts anything with ``read(n)`` (botocore's StreamingBody) to a raw stream for BufferedReader."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Lines:
    """Physical lines of a byte stream decoded as UTF-8, with the problems met on each line remembered."""

    def __init__(self, binary: IO[bytes]) -> None:
        self._binary = binary
        self.number = 0
        self.problems: dict[int, Rejection] = {}
        self._pushed_back: bytes | None = None

    def peek_first_byte(self) -> bytes:
        if self._pushed_back is None:
            self._pushed_back = self._binary.readline(MAX_LINE_BYTES + 1)
        return self._pushed_back.removeprefix(UTF8_BOM).lstrip()[:1]

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._pushed_back is not None:
            raw, self._pushed_back = self._pushed_back, None
        else:
            raw = self._binary.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        if self.number == 1:
            raw = raw.removeprefix(UTF8_BOM)
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            self._skip_rest_of_line()
            self.problems[self.number] = Rejection(
                "too_long", f"line {self.number} is longer than {MAX_LINE_BYTES} bytes"
            )
            return "\n"
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problems[self.number] = Rejection(
                "invalid_encoding", f"line {self.number} is not UTF-8 (byte {exc.start} of the line)"
            )
            return raw.decode("utf-8", "replace")

    def _skip_rest_of_line(self) -> None:
        while True:
            chunk = self._binary.readline(_READ_CHUNK)
            if not chunk or chunk.endswith(b"\n"):
                return

    def problem_between(self, first: int, last: int) -> Rejection | None:
        if not self.problems:
            return None
        return next((self.problems[n] for n in range(first, last + 1) if n in self.problems), None)


def _is_json_lines(lowered_key: str, lines: _Lines) -> bool:
    if lowered_key.endswith(JSON_LINES_SUFFIXES):
        return True
    if lowered_key.endswith(CSV_SUFFIXES):
        return False
    return lines.peek_first_byte() in (b"{", b"[")


def _json_rows(lines: _Lines) -> Iterator[Row]:
    for text in lines:
        line = lines.number
        problem = lines.problems.get(line)
        if problem is not None:
            yield Row(line, text.rstrip("\r\n"), problem)
            continue
        stripped = text.strip()
        if not stripped:
            continue
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            yield Row(line, stripped, Rejection("invalid_json", f"line {line} is not valid JSON"))
            continue
        if isinstance(value, dict):
            yield Row(line, value)
        else:
            yield Row(line, value, Rejection("not_an_object", f"line {line} is not a JSON object"))


def _csv_rows(lines: _Lines) -> Iterator[Row]:
    reader = csv.reader(lines)
    header = _header(reader, lines)
    if header is None:
        return
    previous_end = lines.number
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            first = previous_end + 1
            previous_end = lines.number
            yield Row(first, None, Rejection("invalid_csv", f"line {first} is not valid CSV: {exc}"))
            continue
        first, previous_end = previous_end + 1, lines.number
        problem = lines.problem_between(first, previous_end)
        if problem is not None:
            yield Row(first, dict(zip(header, cells, strict=False)) if cells else None, problem)
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) != len(header):
            reason = f"line {first} has {len(cells)} columns, the header has {len(header)}"
            yield Row(first, cells, Rejection("invalid_csv", reason))
            continue
        yield Row(first, dict(zip(header, cells, strict=True)))


def _header(reader: Any, lines: _Lines) -> list[str] | None:
    try:
        cells = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise ObjectFormatError(f"the CSV header (line 1) is not valid CSV: {exc}") from exc
    problem = lines.problem_between(1, lines.number)
    if problem is not None:
        raise ObjectFormatError(f"the CSV header cannot be read: {problem.reason}")
    header = [cell.strip() for cell in cells]
    if not header or any(not name for name in header):
        raise ObjectFormatError("the CSV header (line 1) has an empty column name")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ObjectFormatError(f"the CSV header (line 1) repeats column(s) {', '.join(repeated)}")
    return header
