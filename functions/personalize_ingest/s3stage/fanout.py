"""Split a large plain S3 object into byte ranges that start at row boundaries, one message per range.

The planner reads the object once, counting line breaks (for exact line numbers in every range) and, for CSV,
double quotes: a line break after an even number of quotes ends a row, one after an odd number is inside a quoted
field (RFC 4180 doubles quotes inside fields, so the parity holds). Counting runs at memory speed; reading the
object costs about what one GET of it costs. When the deadline comes first, the part not scanned becomes the last
range, read in one line of continuations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from personalize_ingest.s3objects import Layout, Position

SCAN_CHUNK = 1024 * 1024
NEWLINE = 0x0A


@dataclass(frozen=True, slots=True)
class PlannedRange:
    start: Position
    end: int


def range_step(size: int, range_bytes: int, max_ranges: int) -> int:
    """Bytes per range: ``range_bytes``, grown so the object needs at most ``max_ranges`` ranges."""
    return max(range_bytes, math.ceil(size / max_ranges))


def plan_ranges(
    body: IO[bytes], size: int, layout: Layout, step: int, keep_scanning: Callable[[], bool]
) -> list[PlannedRange]:
    """Ranges of ``step`` bytes or a little more, each starting at a row boundary, covering the object's rows.

    ``body`` is the object from byte 0; ``keep_scanning()`` is asked between reads (False = stop: the rest of the
    object becomes the last range). Fewer than two ranges means the object is not worth splitting.
    """
    quoted = not layout.json_lines
    starts = [layout.body]
    target = layout.body.offset + step
    offset = 0
    lines_before = 0
    quotes_before = 0
    while target < size and keep_scanning():
        data = body.read(SCAN_CHUNK)
        if not data:
            break
        search_from = max(0, target - offset - 1)
        while search_from < len(data):
            index = data.find(b"\n", search_from)
            if index < 0:
                break
            if quoted and (quotes_before + data.count(b'"', 0, index)) % 2:
                search_from = index + 1
                continue
            boundary = offset + index + 1
            if boundary >= size:
                break
            starts.append(Position(boundary, lines_before + data.count(b"\n", 0, index + 1) + 1))
            target = boundary + step
            search_from = max(index + 1, target - offset - 1)
        offset += len(data)
        lines_before += data.count(b"\n")
        if quoted:
            quotes_before += data.count(b'"')
    ends = [start.offset for start in starts[1:]] + [size]
    return [PlannedRange(start, end) for start, end in zip(starts, ends, strict=True)]
