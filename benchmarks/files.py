"""Scenario ``files``: big S3 files. Resuming by position, linear cost, flat memory, fan-out by byte ranges.

A generated events CSV (1M rows by default, plain and gzip, built in memory, never committed) in moto's S3; the
events function runs in worker processes (:mod:`benchmarks.worker`) against the emulator. Each figure is compared
with a baseline measured in the same run and printed as met / not met:

- time to the first call of a continuation resuming at 10% vs 90% of the file (plain: ranged GET, the ratio
  should be about 1; gzip: decompress-and-discard, the extra time a small fraction of parsing those rows);
- total CPU of the function for 0.5M vs 1M rows (ratio <= 2.2: linear);
- peak RSS of the function for both sizes and for wide rejected item rows (<= 150 MB each, flat);
- events/s of one file read by 1 worker vs 4 concurrent workers (byte ranges) at 20 ms per call with the
  PutEvents quota at 1,000 req/s and each worker's token bucket at a quarter of it (target >= 3x, and no second
  with more calls than the quota).
"""

from __future__ import annotations

import gzip
import io
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.figures import MIB, invocation_row
from benchmarks.harness import Bench, Worker
from benchmarks.worker import FUNCTIONS_DIR
from tests.support import factories

SCENARIO = "files"
ENTITY = "events"
LATENCY_MS = 20.0
PUT_EVENTS_QUOTA = 1_000
WORKERS = 4
RSS_LIMIT_MIB = 150
CPU_RATIO_LIMIT = 2.2
PLAIN_RESUME_RATIO_LIMIT = 1.5
GZIP_SKIP_SHARE_LIMIT = 0.25
FANOUT_SPEEDUP_TARGET = 3.0
RESUME_REPEATS = 3
RESUME_BUDGET_MARGIN_MS = 899_000
"""The worker's context starts at 900 s: this margin leaves a 1 s budget, so a resumed read stops soon after its
first calls and continues (the figure is the time to the first call, not the whole file)."""


def sizes(quick: bool) -> dict[str, int]:
    return {
        "large": 20_000 if quick else 1_000_000,
        "small": 10_000 if quick else 500_000,
        "wide": 40 if quick else 400,
        "fanout": 4_000 if quick else 100_000,
    }


ROWS_PER_USER = 100
"""Rows of one user, together, as bulk exports are sorted (MovieLens users have 20 to 2,000+ ratings)."""


def events_csv(rows: int) -> bytes:
    """A bulk-layout events CSV of ``rows`` rows, sorted by user (ROWS_PER_USER each), in time order."""
    lines = [b"USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n"]
    lines += [b"u-%d,i-%d,click,%d\n" % (n // ROWS_PER_USER, n % 20_000, 1764400000 + n) for n in range(rows)]
    return b"".join(lines)


def run(bench: Bench, quick: bool) -> list[dict[str, Any]]:
    size = sizes(quick)
    suffix = uuid.uuid4().hex[:8]
    queue_url = bench.sqs.create_queue(QueueName=f"bench-files-{suffix}")["QueueUrl"]
    queue_arn = bench.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    files = _Files(bench, queue_url, queue_arn)
    warmup = files.notification("events/bench/files-warmup.csv", events_csv(50))
    data = events_csv(size["large"])
    targets: list[tuple[str, str, bool]] = []
    rows: list[dict[str, Any]] = []

    # NOTE: resuming: the same continuation at 10% and 90% of the file, plain and gzip.
    resume = _resume_runs(files, data, warmup, size["large"])
    rows += resume["rows"]
    plain_ratio = resume["plain90"] / resume["plain10"]
    targets.append(
        (
            "plain: first call at 90% vs 10%",
            f"{resume['plain90'] * 1000:.0f} ms vs {resume['plain10'] * 1000:.0f} ms = {plain_ratio:.2f}x "
            f"(<= {PLAIN_RESUME_RATIO_LIMIT}x)",
            plain_ratio <= PLAIN_RESUME_RATIO_LIMIT,
        )
    )
    compressed = gzip.compress(data, 6)
    parse_s = _parse_seconds(compressed, size["large"])
    skip10, skip90 = (_first_row_seconds(compressed, offset, line) for offset, line in resume["starts"])
    skip_share = max(0.0, skip90 - skip10) / (0.8 * parse_s)
    targets.append(
        (
            "gzip: reader's extra time to the first row at 90% vs 10%, share of parsing those 80% of rows",
            f"{(skip90 - skip10) * 1000:.0f} ms vs {0.8 * parse_s * 1000:.0f} ms of parsing = "
            f"{skip_share:.2f} (<= {GZIP_SKIP_SHARE_LIMIT}); first call {resume['gzip90'] * 1000:.0f} ms vs "
            f"{resume['gzip10'] * 1000:.0f} ms",
            skip_share <= GZIP_SKIP_SHARE_LIMIT,
        )
    )

    # NOTE: linear CPU and flat memory: each size in a fresh worker, so its RSS high-water mark is its own.
    small = _whole_file(files, "events/bench/files-small.csv", events_csv(size["small"]), size["small"], warmup)
    large = _whole_file(files, "events/bench/files-large.csv", data, size["large"], warmup)
    wide = _wide_rejects(files, size["wide"])
    rows += [small, large, wide]
    del data
    cpu_ratio = large["cpuS"] / small["cpuS"]
    targets.append(
        (
            f"CPU {size['large']:,} vs {size['small']:,} rows",
            f"{large['cpuS']:.1f} s vs {small['cpuS']:.1f} s = {cpu_ratio:.2f}x (<= {CPU_RATIO_LIMIT}x)",
            cpu_ratio <= CPU_RATIO_LIMIT,
        )
    )
    for row in (small, large, wide):
        targets.append(
            (
                f"peak RSS, {row['name']}",
                f"{row['maxRssAfterMiB']:.0f} MiB (<= {RSS_LIMIT_MIB} MiB)",
                row["maxRssAfterMiB"] <= RSS_LIMIT_MIB,
            )
        )

    # NOTE: one file, 1 worker vs 4 workers reading its byte ranges at once.
    fanout = _fanout_runs(files, size["fanout"], warmup)
    rows += fanout["rows"]
    speedup = fanout["rate4"] / fanout["rate1"]
    targets.append(
        (
            f"events/s, {WORKERS} workers vs 1 ({LATENCY_MS:g} ms per call, quota {PUT_EVENTS_QUOTA} req/s)",
            f"{fanout['rate4']:.0f} vs {fanout['rate1']:.0f} = {speedup:.2f}x (>= {FANOUT_SPEEDUP_TARGET}x)",
            speedup >= FANOUT_SPEEDUP_TARGET,
        )
    )
    targets.append(
        (
            "calls in the busiest second, and throttled calls, with 4 workers",
            f"{fanout['busiest']} calls (<= {PUT_EVENTS_QUOTA}), {fanout['throttled']} throttled",
            fanout["busiest"] <= PUT_EVENTS_QUOTA and fanout["throttled"] == 0,
        )
    )
    # NOTE: the targets go in a row of their own, printed by report.print_tables under the scenario's table.
    rows.append(
        {
            "scenario": SCENARIO,
            "name": "targets",
            "records": 0,
            "targets": [{"target": name, "measured": figure, "met": met} for name, figure, met in targets],
        }
    )
    return rows


class _Files:
    """The bench plus the queue the function continues through."""

    def __init__(self, bench: Bench, queue_url: str, queue_arn: str) -> None:
        self.bench = bench
        self.queue_url = queue_url
        self.queue_arn = queue_arn

    def notification(self, key: str, body: bytes) -> dict[str, Any]:
        """Store ``body``; return the inline SQS event of its S3 notification, from the scenario's queue."""
        etag = self.bench.s3.put_object(Bucket=self.bench.bucket, Key=key, Body=body)["ETag"].strip('"')
        record = factories.s3_record(self.bench.bucket, key, etag=etag, size=len(body))
        message = factories.sqs_message(factories.s3_notification(record), f"bench-{key}", arn=self.queue_arn)
        return {"type": "inline", "event": factories.sqs_event([message])}

    def continuation(self, key: str, offset: int, line: int) -> dict[str, Any]:
        head = self.bench.s3.head_object(Bucket=self.bench.bucket, Key=key)
        body = {
            "continuation": {
                "bucket": self.bench.bucket,
                "key": key,
                "etag": head["ETag"].strip('"'),
                "line": line,
                "offset": offset,
                "eventTime": factories.ARRIVAL_SECONDS,
                "hops": 1,
            }
        }
        message = factories.sqs_message(body, f"bench-resume-{line}", arn=self.queue_arn)
        return {"type": "inline", "event": factories.sqs_event([message])}

    def messages(self) -> list[dict[str, Any]]:
        """Every message now on the scenario's queue (deleted), with the attributes Lambda hands over."""
        taken: list[dict[str, Any]] = []
        while True:
            batch = self.bench.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return taken
            for message in batch:
                self.bench.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            taken.extend(dict(message) for message in batch)


def _resume_runs(files: _Files, data: bytes, warmup: dict[str, Any], rows: int) -> dict[str, Any]:
    bench = files.bench
    starts = _line_starts(data, [rows // 10, rows * 9 // 10])
    figures: dict[str, Any] = {"rows": [], "starts": starts}
    objects = {
        "plain": ("events/bench/files-resume.csv", data),
        "gzip": ("events/bench/files-resume.csv.gz", None),
    }
    with bench.worker() as worker:
        for kind, (key, body) in objects.items():
            bench.s3.put_object(
                Bucket=bench.bucket, Key=key, Body=body if body is not None else gzip.compress(data, 6)
            )
            for fraction, (offset, line) in zip((10, 90), starts, strict=True):
                # NOTE: the best of a few runs: one run's time to the first call (a few hundred ms) is easily
                # disturbed on a busy machine, and the question is what resuming costs, not the noise.
                runs = [_resume_once(files, worker, key, offset, line, warmup) for _ in range(RESUME_REPEATS)]
                measured, calls, first_call_s = min(runs, key=lambda run: run[2])
                figures[f"{kind}{fraction}"] = first_call_s
                figures["rows"].append(
                    invocation_row(
                        SCENARIO,
                        f"{kind} resumed at {fraction}%",
                        calls["elements"],
                        measured,
                        calls,
                        firstCallS=first_call_s,
                        resumeLine=line,
                        resumeOffset=offset,
                    )
                )
            bench.s3.delete_object(Bucket=bench.bucket, Key=key)
    return figures


def _resume_once(
    files: _Files, worker: Worker, key: str, offset: int, line: int, warmup: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """One continuation resuming ``key`` at ``offset``: measurement, calls and time to the first call."""
    bench = files.bench
    bench.emulator.reset()
    measured, calls = bench.invoke(
        worker,
        ENTITY,
        files.continuation(key, offset, line),
        warmup,
        env={"DEADLINE_MARGIN_MS": str(RESUME_BUDGET_MARGIN_MS)},
    )
    files.messages()
    first_call_s = (calls["callTimes"][0] - measured["startedAt"]) if calls["callTimes"] else float("inf")
    return measured, calls, first_call_s


def _line_starts(data: bytes, row_indexes: list[int]) -> list[tuple[int, int]]:
    """(byte offset, line) where data row ``index`` (0-based, after the header) starts."""
    found: list[tuple[int, int]] = []
    offset, line = 0, 1
    for index in sorted(row_indexes):
        while line < index + 2:
            offset = data.index(b"\n", offset) + 1
            line += 1
        found.append((offset, line))
    return found


def _parse_seconds(compressed: bytes, rows: int) -> float:
    """CPU seconds this process takes to read every row of the gzip object (the baseline of skipping)."""
    iter_rows = _reader()[0]
    started = time.process_time()
    count = sum(1 for _ in iter_rows(io.BytesIO(compressed), "events/a.csv.gz"))
    assert count == rows, count
    return time.process_time() - started


def _first_row_seconds(compressed: bytes, offset: int, line: int) -> float:
    """CPU seconds the function's reader takes to the first row of a gzip body resumed at ``offset`` (best of
    RESUME_REPEATS): the cost of decompress-and-discard, without S3 or the calls around it."""
    iter_rows, position = _reader()
    best = float("inf")
    for _ in range(RESUME_REPEATS):
        started = time.process_time()
        first = next(iter(iter_rows(io.BytesIO(compressed), "events/a.csv.gz", position(offset, line))))
        best = min(best, time.process_time() - started)
        assert first.line == line, (first.line, line)
    return best


def _reader() -> tuple[Any, Any]:
    """The function's row reader and position type, imported from functions/ as the worker imports them."""
    functions = str(FUNCTIONS_DIR)
    if functions not in sys.path:
        sys.path.insert(0, functions)
    from personalize_ingest.s3objects import Position, iter_rows

    return iter_rows, Position


def _whole_file(files: _Files, key: str, body: bytes, rows: int, warmup: dict[str, Any]) -> dict[str, Any]:
    bench = files.bench
    event = files.notification(key, body)
    bench.emulator.reset()
    bench.emulator.set_quota("PutEvents", 0)
    with bench.worker() as worker:
        measured, calls = bench.invoke(worker, ENTITY, event, warmup, env={"CALLS_PER_SECOND": "0"})
    result = bench.take_object_result(key)
    files.messages()
    return invocation_row(
        SCENARIO,
        f"{rows:,} rows, plain",
        rows,
        measured,
        calls,
        objectBytes=len(body),
        objectStatus=result["status"],
    )


def _wide_rejects(files: _Files, rows: int) -> dict[str, Any]:
    """Item rows of 80 KB whose properties are too long: every one rejected."""
    bench = files.bench
    wide = b"x" * 80_000
    body = b"ITEM_ID,DESCRIPTION\n" + b"".join(b"i-%d,%s\n" % (n, wide) for n in range(rows))
    key = "items/bench/files-wide.csv"
    event = files.notification(key, body)
    bench.emulator.reset()
    with bench.worker() as worker:
        measured, calls = bench.invoke(worker, "items", event, None)
    result = bench.take_object_result(key)
    rejected = bench.rejects_count()
    row = invocation_row(
        SCENARIO,
        f"{rows:,} wide rejected rows ({len(body) / MIB:.0f} MiB)",
        rows,
        measured,
        calls,
        objectBytes=len(body),
        objectStatus=result["status"],
        rejected=rejected,
    )
    return row


def _fanout_runs(files: _Files, rows: int, warmup: dict[str, Any]) -> dict[str, Any]:
    bench = files.bench
    body = events_csv(rows)
    key = "events/bench/files-fanout.csv"
    rated = {"CALLS_PER_SECOND": str(PUT_EVENTS_QUOTA / WORKERS)}

    def prepare_emulator() -> None:
        bench.emulator.reset()
        bench.emulator.set_faults(latency={"distribution": "fixed", "ms": LATENCY_MS})
        bench.emulator.set_quota("PutEvents", PUT_EVENTS_QUOTA)

    # NOTE: one worker reads the whole file (fan-out off), at its share of the quota.
    event = files.notification(key, body)
    with bench.worker() as worker:
        prepare_emulator()
        one, one_calls = bench.invoke(worker, ENTITY, event, warmup, env={**rated, "S3_FANOUT_MIN_BYTES": "0"})
    files.messages()
    rate1 = one_calls["elements"] / one["wallS"]

    # NOTE: the announcement splits the file into four byte ranges; four workers read them at once.
    split_env = {"S3_FANOUT_MIN_BYTES": "1", "S3_FANOUT_RANGE_BYTES": "1024", "S3_FANOUT_MAX_RANGES": str(WORKERS)}
    with bench.worker() as planner:
        bench.invoke(planner, ENTITY, event, None, env=split_env)
    ranges = files.messages()
    assert len(ranges) == WORKERS, f"expected {WORKERS} range messages, got {len(ranges)}"
    workers = [bench.worker() for _ in range(WORKERS)]
    opened: list[Worker] = [context.__enter__() for context in workers]
    try:
        for worker in opened:
            worker.run(
                {"kind": "invoke", "entity": ENTITY, "event": warmup, "warmup": None}, bench.function_env(ENTITY)
            )
        prepare_emulator()

        def read_range(worker: Worker, message: dict[str, Any]) -> dict[str, Any]:
            event = {"type": "inline", "event": factories.lambda_sqs_event([message], files.queue_arn)}
            job = {"kind": "invoke", "entity": ENTITY, "event": event, "warmup": None}
            return worker.run(job, bench.function_env(ENTITY, **rated))

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [pool.submit(read_range, w, m) for w, m in zip(opened, ranges, strict=True)]
            measured = [future.result() for future in futures]
    finally:
        for context in workers:
            context.__exit__(None, None, None)
    calls = bench.call_summary()
    result = bench.take_object_result(key)
    files.messages()
    started = min(m["startedAt"] for m in measured)
    ended = max(m["startedAt"] + m["wallS"] for m in measured)
    rate4 = calls["elements"] / (ended - started)
    combined = {
        **measured[0],
        "wallS": ended - started,
        "cpuS": sum(m["cpuS"] for m in measured),
        "userS": sum(m["userS"] for m in measured),
        "systemS": sum(m["systemS"] for m in measured),
        "maxRssAfterKiB": max(m["maxRssAfterKiB"] for m in measured),
        "batchItemFailures": sum(m["batchItemFailures"] for m in measured),
    }
    return {
        "rate1": rate1,
        "rate4": rate4,
        "busiest": _busiest_second(calls["callTimes"]),
        "throttled": calls["throttledCalls"] + one_calls["throttledCalls"],
        "rows": [
            invocation_row(
                SCENARIO, f"{rows:,} rows, 1 worker, {LATENCY_MS:g} ms", rows, one, one_calls, eventsPerS=rate1
            ),
            invocation_row(
                SCENARIO,
                f"{rows:,} rows, {WORKERS} workers (byte ranges), {LATENCY_MS:g} ms",
                rows,
                combined,
                calls,
                eventsPerS=rate4,
                objectStatus=result.get("status"),
                ranges=result.get("ranges"),
            ),
        ],
    }


def _busiest_second(times: list[float]) -> int:
    """Most calls received in any one-second window."""
    busiest, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest
