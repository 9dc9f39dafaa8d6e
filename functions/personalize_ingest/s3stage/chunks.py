"""Chunks of an S3 object: rows read and prepared together, bounded by rows, lanes and bytes, and what they cost.

A chunk remembers, for every row, its line and byte offset, so when the deadline comes while its calls run the
reading resumes at the first row not yet accounted for, and skips the later rows that were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from personalize_ingest.model import Prepared, Record, Rejection
from personalize_ingest.s3objects import Position, Row

MAX_SKIP_RANGES = 2_000
"""Most (first, last) line pairs a continuation carries (~30 KB): beyond, the rows already delivered after the
resume point are sent again and their eventId (or upsert) makes that harmless."""


@dataclass(slots=True)
class Chunk:
    """Rows of an S3 object read and prepared together."""

    first: Position
    end: Position | None = None
    """Where the row after the chunk's last row starts."""
    rows: int = 0
    bytes: int = 0
    """Bytes of the object the rows took (rejected rows included)."""
    flushed: int = 0
    """Rejected rows already set aside before the chunk was delivered."""
    rejected_bytes: int = 0
    last_line: int = 0
    prepared: list[Prepared] = field(default_factory=list)
    rejected: list[tuple[Record, Rejection]] = field(default_factory=list)
    starts: list[tuple[int, int]] = field(default_factory=list)
    """(line, byte offset) of every row, in order."""
    failed_lines: set[int] = field(default_factory=set)
    failed: int = 0
    """Records of the chunk reported failed (not delivered, not set aside)."""

    def add(self, row: Row) -> int:
        """Count ``row`` in the chunk; return the bytes it took."""
        size = (row.end.offset - row.offset) if row.end is not None else 0
        self.rows += 1
        self.bytes += size
        self.last_line = row.line
        self.end = row.end
        self.starts.append((row.line, row.offset))
        return size

    def resume_point(self) -> Position | None:
        """Where to continue when some rows failed: the first row not accounted for (None if every row was)."""
        for line, offset in self.starts:
            if line in self.failed_lines:
                return Position(offset, line)
        return None

    def accounted_after(self, line: int) -> list[int]:
        """Lines after ``line`` that were accounted for (delivered, superseded or rejected)."""
        return [n for n, _ in self.starts if n > line and n not in self.failed_lines]


@dataclass(slots=True)
class ChunkCost:
    """Measured cost of the chunks of one object in this invocation, to decide whether another one fits.

    The next chunk is assumed as large (in rows) as the largest this entity's chunks have been, at the measured
    cost per row of reading, preparing and delivering (the calls' wall time, concurrency included).
    """

    rows: int = 0
    read_ms: float = 0.0
    deliver_ms: float = 0.0
    calls: int = 0
    largest_rows: int = 0

    def add(self, rows: int, read_ms: float, deliver_ms: float, calls: int) -> None:
        self.rows += rows
        self.read_ms += max(0.0, read_ms)
        self.deliver_ms += max(0.0, deliver_ms)
        self.calls += calls
        self.largest_rows = max(self.largest_rows, rows)

    def next_chunk_ms(self) -> float:
        """Expected milliseconds of the next chunk (0.0 before the first one: nothing measured yet)."""
        if self.rows == 0:
            return 0.0
        per_row = self.read_ms / self.rows
        if self.calls:
            per_row += (self.calls / self.rows) * (self.deliver_ms / self.calls)
        return self.largest_rows * per_row


def merge_lines(lines: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted line numbers as inclusive (first, last) runs; () when there are more than MAX_SKIP_RANGES runs."""
    runs: list[tuple[int, int]] = []
    for line in sorted(set(lines)):
        if runs and runs[-1][1] == line - 1:
            runs[-1] = (runs[-1][0], line)
        else:
            runs.append((line, line))
    return tuple(runs) if len(runs) <= MAX_SKIP_RANGES else ()


def lines_of(runs: tuple[tuple[int, int], ...], after: int) -> list[int]:
    """Lines of ``runs`` greater than ``after``."""
    return [n for first, last in runs for n in range(max(first, after + 1), last + 1)]


def in_runs(runs: tuple[tuple[int, int], ...], line: int) -> bool:
    return any(first <= line <= last for first, last in runs)
