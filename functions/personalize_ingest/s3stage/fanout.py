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
from typing import IO, TYPE_CHECKING

from personalize_ingest.observability import logger
from personalize_ingest.results import IN_PROGRESS, INCOMPLETE
from personalize_ingest.s3objects import Layout, Position, open_object, read_layout
from personalize_ingest.sources import ByteRange, continuation_body

if TYPE_CHECKING:
    from personalize_ingest.config import Settings
    from personalize_ingest.s3stage.reading import ObjectRead
    from personalize_ingest.sources import BatchItem

SCAN_CHUNK = 1024 * 1024
SCAN_RESERVE_S = 1.0
"""Planning ranges stops scanning when less than this is left before the margin (the rest is the last range)."""
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


def may_fan_out(settings: Settings, item: BatchItem, size: int) -> bool:
    """Whether an announced object of ``size`` bytes may be split: large enough, and from a standard queue."""
    # NOTE: FIFO keeps one object's rows in order, one range at a time: no fan-out there. A direct S3 invocation
    # has no queue to put ranges on.
    return (
        settings.s3_fanout_min_bytes > 0
        and size >= settings.s3_fanout_min_bytes
        and item.queue_arn is not None
        and item.group_id is None
    )


def split_into_ranges(read: ObjectRead, size: int) -> bool:
    """Split ``read``'s plain object into byte ranges, one message each on its queue; True when it was split.

    The result file says ``in_progress`` (with the number of ranges) before the messages exist, so no range's
    report can be overwritten by it. A gzip object, or one whose rows fit in one range, is not split.
    """
    s3 = read.stage.client("s3")
    with open_object(s3, read.ref) as head:
        layout = read_layout(head.body, read.ref.key)
    if layout is None or layout.gzip:
        return False
    read.check_layout(layout)
    settings = read.settings
    step = range_step(size, settings.s3_fanout_range_bytes, settings.s3_fanout_max_ranges)
    with open_object(s3, read.ref) as whole:
        planned = plan_ranges(whole.body, size, layout, step, lambda: read.deadline.budget_s() > SCAN_RESERVE_S)
    if len(planned) < 2:
        return False
    refs = [
        read.next_ref(start=p.start, part=ByteRange(index, len(planned), p.end), hops=0, progress=False)
        for index, p in enumerate(planned)
    ]
    read.report(IN_PROGRESS, ranges=len(planned))
    if not read.queue([continuation_body(ref) for ref in refs]):
        read.report(INCOMPLETE)
        return True
    logger.info("S3 object split into byte ranges", extra={**read.where, "ranges": len(planned), "bytes": size})
    return True
