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
from collections.abc import Callable, Iterator
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
_SKIP_CHUNK = 1024 * 1024
"""Bytes discarded per read when a gzip body is skipped up to a continuation's position."""
_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "PreconditionFailed", "412", "404"})
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
"""What a truncated or corrupt gzip body raises while it is read (not network errors: those are botocore's)."""
INVALID_GZIP = "invalid_gzip"


class ObjectFormatError(ValueError):
    """The object cannot be read as rows at all (e.g. a CSV header with empty or repeated column names)."""


class ObjectGone(Exception):
    """The announced object (or that version of it) no longer exists; a later notification covers its successor."""


@dataclass(frozen=True, slots=True)
class Position:
    """A place in an object's content (decompressed for gzip) where a row starts: byte offset and line number."""

    offset: int
    line: int


OBJECT_START = Position(0, 1)


@dataclass(frozen=True, slots=True)
class Row:
    """One record of an object: its first physical line, its value, why it cannot be read, and where it ends."""

    line: int
    value: Any
    """A CSV row as a header->value dict, a decoded JSON value, or the raw text when it is not JSON."""
    error: Rejection | None = None
    offset: int = 0
    """Byte offset of the row's first line in the object's content (decompressed for gzip)."""
    end: Position | None = None
    """Where the next row starts: a continuation that resumes after this row starts there."""


@dataclass(frozen=True, slots=True)
class Layout:
    """How an object's content is laid out: compression, format, CSV header, and where its first row starts."""

    gzip: bool
    json_lines: bool
    header: tuple[str, ...] | None
    """The CSV header's column names (None for JSON Lines)."""
    body: Position
    """Where the first row after the header starts."""


def iter_rows(
    stream: IO[bytes],
    key: str,
    start: Position | None = None,
    end: int | None = None,
    layout_seen: Callable[[Layout], None] | None = None,
) -> Iterator[Row]:
    """Yield the rows of an object body read from its first byte (the CLI's ``validate`` reads files this way).

    Parameters
    ----------
    stream
        The object body from byte 0 (anything with ``read(n)``); gzip is recognised by the key's suffix or magic
        bytes.
    key
        Object key: its suffix picks the format (``.csv`` / ``.jsonl``, ``.ndjson``, ``.json``; otherwise the
        first byte decides: ``{`` or ``[`` means JSON Lines).
    start
        Where to resume: the bytes before it are read and discarded (decompressed for gzip) without being parsed
        into rows, which costs a small fraction of parsing them. None = the first row after the header.
    end
        Byte offset where reading stops: no row starting at or after it is yielded (None = the object's end).
    layout_seen
        Called with the object's :class:`Layout` before the first row; it may raise :class:`ObjectFormatError`
        to refuse the object (a header of another entity).

    A gzip body that is truncated or corrupt ends the rows with one row carrying an ``invalid_gzip`` rejection at
    the first line that could not be read: the rows before it are yielded as usual, none is lost unreported.

    Raises
    ------
    ObjectFormatError
        when a CSV header cannot name the columns.
    """
    lines, lowered, compressed = _lines_of(stream, key)
    try:
        layout = _layout(lines, lowered, compressed)
        if layout is None:
            return
        if layout_seen is not None:
            layout_seen(layout)
        if start is not None and start.offset > lines.offset:
            lines.skip_to(start)
        yield from _rows(lines, layout, end)
    except _GZIP_ERRORS as exc:
        yield _unreadable_gzip(lines, exc)


def iter_rows_at(stream: IO[bytes], layout: Layout, start: Position, end: int | None = None) -> Iterator[Row]:
    """Yield the rows of a plain (not gzip) body that begins at ``start`` (a ranged GET from ``start.offset``).

    ``layout`` is the object's (:func:`read_layout`); ``end`` as for :func:`iter_rows`. The cost of resuming does
    not depend on how far into the object ``start`` is.
    """
    if layout.gzip:
        raise ValueError("a gzip body cannot be read from the middle; use iter_rows with start")
    lines = _Lines(io.BufferedReader(_RawStream(stream), buffer_size=_READ_CHUNK), start)
    yield from _rows(lines, layout, end)


def read_layout(stream: IO[bytes], key: str) -> Layout | None:
    """The layout of an object from the beginning of its body (None for an empty object).

    Only the first line (the CSV header, or the first JSON line for a key without a known suffix) is read; the
    caller closes the body.

    Raises
    ------
    ObjectFormatError
        when a CSV header cannot name the columns.
    """
    try:
        return _layout(*_lines_of(stream, key))
    except _GZIP_ERRORS as exc:
        raise ObjectFormatError(f"the gzip body cannot be read: {exc}") from exc


def _lines_of(stream: IO[bytes], key: str) -> tuple[_Lines, str, bool]:
    """Lines of a body read from byte 0, the key lowered without its gzip suffix, and whether it is gzip."""
    buffered = io.BufferedReader(_RawStream(stream), buffer_size=_READ_CHUNK)
    lowered = key.lower()
    if lowered.endswith(_GZIP_SUFFIXES) or buffered.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC:
        binary = gzip.GzipFile(fileobj=buffered, mode="rb")
        lowered = lowered.rsplit(".", 1)[0] if lowered.endswith(_GZIP_SUFFIXES) else lowered
        return _Lines(binary), lowered, True  # type: ignore[arg-type]
    return _Lines(buffered), lowered, False


def _layout(lines: _Lines, lowered_key: str, compressed: bool) -> Layout | None:
    if _is_json_lines(lowered_key, lines):
        return Layout(gzip=compressed, json_lines=True, header=None, body=OBJECT_START)
    header = _header(csv.reader(lines), lines)
    if header is None:
        return None
    return Layout(gzip=compressed, json_lines=False, header=tuple(header), body=lines.position)


def _rows(lines: _Lines, layout: Layout, end: int | None) -> Iterator[Row]:
    if layout.json_lines:
        return _json_rows(lines, end)
    assert layout.header is not None
    return _csv_rows(lines, list(layout.header), end)


def _unreadable_gzip(lines: _Lines, exc: Exception) -> Row:
    # NOTE: the same object version fails the same way on every retry, so the rest of it is set aside as one
    # rejected row instead of failing the message (or, raised, the whole batch) forever. Its end is the line after
    # it, so a continuation never comes back to it.
    line = lines.number + 1
    return Row(
        line,
        None,
        Rejection(INVALID_GZIP, f"the gzip body cannot be read from line {line} on: {exc}"),
        offset=lines.offset,
        end=Position(lines.offset, line + 1),
    )


@dataclass(frozen=True, slots=True)
class OpenedObject:
    """An object body being streamed, with what GetObject said about the whole object."""

    body: IO[bytes]
    size: int
    """The whole object's size in bytes (also for a ranged read)."""
    etag: str | None
    """The object's entity tag, unquoted."""


@contextmanager
def open_object(client: S3Client, ref: ObjectRef, offset: int = 0) -> Iterator[OpenedObject]:
    """Open the announced version of an object for streaming from byte ``offset`` (GetObject, closed on exit).

    A ranged read (``offset`` > 0) is pinned to the same version (VersionId, or If-Match on the ETag), so it fails
    with :class:`ObjectGone` instead of reading another object's bytes.

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
    if offset > 0:
        request["Range"] = f"bytes={offset}-"
    try:
        response = client.get_object(**request)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _GONE_CODES:
            raise ObjectGone(f"{code}: s3://{ref.bucket}/{ref.key} is not there as announced") from exc
        if code == "InvalidRange":
            # NOTE: the object is shorter than the position a continuation names: it is not the object read before.
            raise ObjectGone(f"{code}: s3://{ref.bucket}/{ref.key} ends before byte {offset}") from exc
        raise
    body = response["Body"]
    size = int(response.get("ContentLength", 0))
    content_range = str(response.get("ContentRange") or "")
    if "/" in content_range:
        size = int(content_range.rsplit("/", 1)[1])
    etag = response.get("ETag")
    try:
        yield OpenedObject(body, size, etag.strip('"') if etag else None)  # type: ignore[arg-type]
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
    """Physical lines of a byte stream decoded as UTF-8, with their byte positions and the problems met on them.

    A problem is kept only until the row holding its line takes it, so memory stays flat however many lines of
    an object are bad.
    """

    def __init__(self, binary: IO[bytes], start: Position = OBJECT_START) -> None:
        self._binary = binary
        self.number = start.line - 1
        """Number of the last line read."""
        self.offset = start.offset
        """Byte offset just past the last line read."""
        self.problems: dict[int, Rejection] = {}
        self._pushed_back: bytes | None = None

    @property
    def position(self) -> Position:
        """Where the next line starts."""
        return Position(self.offset, self.number + 1)

    def peek_first_byte(self) -> bytes:
        if self._pushed_back is None:
            self._pushed_back = self._binary.readline(MAX_LINE_BYTES + 1)
        return self._pushed_back.removeprefix(UTF8_BOM).lstrip()[:1]

    def skip_to(self, start: Position) -> None:
        """Discard the bytes up to ``start`` without splitting them into lines (``start`` names its line)."""
        if self._pushed_back is not None:
            self.offset += len(self._pushed_back)
            self._pushed_back = None
        while self.offset < start.offset:
            data = self._binary.read(min(_SKIP_CHUNK, start.offset - self.offset))
            if not data:
                break
            self.offset += len(data)
        self.number = start.line - 1

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
        self.offset += len(raw)
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
            self.offset += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                return

    def take_problem(self, first: int, last: int) -> Rejection | None:
        """The first problem of lines ``first`` to ``last``; every problem up to ``last`` is forgotten."""
        if not self.problems:
            return None
        found = [n for n in self.problems if n <= last]
        taken = [self.problems.pop(n) for n in sorted(found)]
        return next((problem for n, problem in zip(sorted(found), taken, strict=True) if n >= first), None)


def _is_json_lines(lowered_key: str, lines: _Lines) -> bool:
    if lowered_key.endswith(JSON_LINES_SUFFIXES):
        return True
    if lowered_key.endswith(CSV_SUFFIXES):
        return False
    return lines.peek_first_byte() in (b"{", b"[")


def _json_rows(lines: _Lines, end: int | None) -> Iterator[Row]:
    while end is None or lines.offset < end:
        offset = lines.offset
        try:
            text = next(lines)
        except StopIteration:
            return
        line = lines.number
        after = lines.position
        problem = lines.take_problem(line, line)
        if problem is not None:
            yield Row(line, text.rstrip("\r\n"), problem, offset, after)
            continue
        stripped = text.strip()
        if not stripped:
            continue
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):
            yield Row(line, stripped, Rejection("invalid_json", f"line {line} is not valid JSON"), offset, after)
            continue
        if isinstance(value, dict):
            yield Row(line, value, None, offset, after)
        else:
            yield Row(line, value, Rejection("not_an_object", f"line {line} is not a JSON object"), offset, after)


def _csv_rows(lines: _Lines, header: list[str], end: int | None) -> Iterator[Row]:
    reader = csv.reader(lines)
    while end is None or lines.offset < end:
        offset, first = lines.offset, lines.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            lines.take_problem(first, lines.number)
            reason = f"line {first} is not valid CSV: {exc}"
            yield Row(first, None, Rejection("invalid_csv", reason), offset, lines.position)
            continue
        after = lines.position
        problem = lines.take_problem(first, lines.number)
        if problem is not None:
            yield Row(first, dict(zip(header, cells, strict=False)) if cells else None, problem, offset, after)
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) != len(header):
            reason = f"line {first} has {len(cells)} columns, the header has {len(header)}"
            yield Row(first, cells, Rejection("invalid_csv", reason), offset, after)
            continue
        yield Row(first, dict(zip(header, cells, strict=True)), None, offset, after)


def _header(reader: Any, lines: _Lines) -> list[str] | None:
    try:
        cells = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise ObjectFormatError(f"the CSV header (line 1) is not valid CSV: {exc}") from exc
    problem = lines.take_problem(1, lines.number)
    if problem is not None:
        raise ObjectFormatError(f"the CSV header cannot be read: {problem.reason}")
    header = [cell.strip() for cell in cells]
    if not header or any(not name for name in header):
        raise ObjectFormatError("the CSV header (line 1) has an empty column name")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ObjectFormatError(f"the CSV header (line 1) repeats column(s) {', '.join(repeated)}")
    return header
