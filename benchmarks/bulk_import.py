"""Scenario 6: a generated 100,000-item catalogue through the import route vs PutItems at the 10 req/s quota.

Import route, measured end to end on loopback: the items function routes the file, checks its header and a sample
of 1,000 rows, starts an INCREMENTAL import job (worker process); the emulator's job reads the CSV from moto and
loads every row (its state delays set to zero, so the figure is the work, not a configured wait); the import
tracker writes the final result file. The service role and bucket policy the stack deploys are put on moto, so
the emulator's access check runs too.

Streaming route, measured on a sample and extrapolated (said so in the output): the same function with the import
route off streams the first rows of the catalogue through PutItems at its default 10 calls/s against the
emulator's 10 requests/s quota; 100,000 rows take (100,000 / sample rows) x the sample's wall time.

NOTE: on AWS an import job also spends minutes being scheduled and provisioned, which no local run can measure;
the output therefore prints the break-even: the fixed job overhead up to which the import route still wins.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
import uuid
from typing import Any

import boto3

from benchmarks.figures import invocation_row
from benchmarks.harness import REPO_ROOT, Bench
from benchmarks.report import TITLES
from infrastructure.personalize_access import bucket_policy, role_policy, trust_policy

SCENARIO = "bulk_import"
ENTITY = "items"
CATALOGUE_ROWS = 100_000
QUICK_CATALOGUE_ROWS = 10_000
STREAM_SAMPLE_ROWS = 1_000
QUICK_STREAM_SAMPLE_ROWS = 200
TARGET_RATIO = 10.0
"""The import route must be at least this many times faster than streaming the catalogue (locally measured)."""
JOB_TIMEOUT_S = 600


def catalogue(rows: int) -> bytes:
    """An items CSV in the bulk layout: ITEM_ID, GENRES (categorical), PRICE, CREATION_TIMESTAMP."""
    genres = ("Comedy", "Drama|Romance", "Action|Adventure|Sci-Fi", "Documentary", "Horror|Thriller")
    lines = ["ITEM_ID,GENRES,PRICE,CREATION_TIMESTAMP"]
    lines += [f"item-{n:07d},{genres[n % 5]},{(n % 997) / 10:.2f},{1700000000 + n}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def run(bench: Bench, quick: bool) -> list[dict[str, Any]]:
    rows = QUICK_CATALOGUE_ROWS if quick else CATALOGUE_ROWS
    sample_rows = QUICK_STREAM_SAMPLE_ROWS if quick else STREAM_SAMPLE_ROWS
    body = catalogue(rows)
    role_arn = _grant_personalize(bench)
    imported = _import_route(bench, body, rows, role_arn)
    streamed = _stream_sample(bench, body, sample_rows)
    per_second = sample_rows / streamed["wallS"]
    stream_total_s = rows / per_second
    import_total_s = imported["importRouteS"]
    ratio = stream_total_s / import_total_s
    summary = {
        "scenario": SCENARIO,
        "name": f"{rows:,} items: import route vs PutItems",
        "records": rows,
        "importRouteS": import_total_s,
        "streamRowsPerSecond": per_second,
        "streamExtrapolatedS": stream_total_s,
        "streamSampleRows": sample_rows,
        "ratio": ratio,
        "targetRatio": TARGET_RATIO,
        "met": ratio >= TARGET_RATIO,
        "breakEvenJobOverheadS": stream_total_s - import_total_s,
    }
    number = TITLES[SCENARIO].split(".")[0]
    print(
        f"\n{number}. {rows:,}-item catalogue: import route {import_total_s:.1f} s "
        f"(function {imported['wallS']:.2f} s + "
        f"waiting for the job {imported['waitedForJobS']:.1f} s (job {imported['jobS']:.1f} s after creation) + "
        f"tracker {imported['trackerS']:.2f} s, measured) vs PutItems "
        f"{stream_total_s:,.0f} s (extrapolated from {sample_rows:,} rows at {per_second:.1f} rows/s)\n"
        f"   ratio {ratio:,.0f}x (target >= {TARGET_RATIO:g}x: {'met' if summary['met'] else 'NOT MET'}); "
        f"on AWS the import route still wins while a job's fixed overhead stays under "
        f"{summary['breakEvenJobOverheadS'] / 60:,.1f} min",
        flush=True,
    )
    return [imported, streamed]


def _grant_personalize(bench: Bench) -> str:
    """The service role and bucket policy the stack deploys, on moto (the emulator's jobs check them)."""
    iam = boto3.client("iam", endpoint_url=bench.moto_url)
    name = f"bench-personalize-{uuid.uuid4().hex[:8]}"
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy()))["Role"]["Arn"]
    bucket_arn = f"arn:aws:s3:::{bench.bucket}"
    iam.put_role_policy(
        RoleName=name, PolicyName="read", PolicyDocument=json.dumps(role_policy(bucket_arn, [f"{ENTITY}/"]))
    )
    bench.s3.put_bucket_policy(Bucket=bench.bucket, Policy=json.dumps(bucket_policy(bucket_arn, [f"{ENTITY}/"])))
    return str(role_arn)


def _import_route(bench: Bench, body: bytes, rows: int, role_arn: str) -> dict[str, Any]:
    key = f"{ENTITY}/bench/catalogue-{rows}.csv"
    event = bench.put_object(key, body)
    bench.emulator.reset()
    bench.emulator.set_import_jobs(s3_endpoint_url=bench.moto_url, pending_seconds=0, in_progress_seconds=0)
    env = {
        "AWS_ENDPOINT_URL_PERSONALIZE": bench.emulator.url,
        "BULK_IMPORT_ENABLED": "true",
        "BULK_IMPORT_ROLE_ARN": role_arn,
        "BULK_IMPORT_MIN_ROWS": str(rows // 2),
    }
    with bench.worker() as worker:
        measured, calls = bench.invoke(worker, ENTITY, event, None, env=env)
        function_ended = time.time()
    started = time.perf_counter()
    personalize = boto3.client("personalize", endpoint_url=bench.emulator.url)
    (job,) = bench.emulator.import_jobs()["jobs"]
    while job["status"] not in ("ACTIVE", "CREATE FAILED"):
        if time.perf_counter() - started > JOB_TIMEOUT_S:
            raise RuntimeError(f"the import job did not end within {JOB_TIMEOUT_S} s")
        time.sleep(0.05)
        job = personalize.describe_dataset_import_job(datasetImportJobArn=job["datasetImportJobArn"])[
            "datasetImportJob"
        ]
    # NOTE: the job runs from its creation, inside the function's invocation, to its last update (the emulator's
    # clock is this process's): the route waits for it only as long as it outlasts the invocation.
    job_s = _epoch(job["lastUpdatedDateTime"]) - _epoch(job["creationDateTime"])
    waited_s = max(0.0, _epoch(job["lastUpdatedDateTime"]) - function_ended)
    tracker_s, document = _track(bench, personalize, key)
    stored = bench.emulator.counts()[ENTITY]
    bench.s3.delete_object(Bucket=bench.bucket, Key=key)
    return invocation_row(
        SCENARIO,
        f"import route, {rows:,} items",
        rows,
        measured,
        calls,
        delivered=stored,
        jobStatus=job["status"],
        failureReason=job.get("failureReason"),
        resultStatus=document.get("status"),
        resultRows=document.get("rows"),
        jobS=job_s,
        trackerS=tracker_s,
        waitedForJobS=waited_s,
        importRouteS=measured["wallS"] + waited_s + tracker_s,
    )


def _epoch(value: Any) -> float:
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def _track(bench: Bench, personalize: Any, key: str) -> tuple[float, dict[str, Any]]:
    functions_dir = str(REPO_ROOT / "functions")
    if functions_dir not in sys.path:
        sys.path.insert(0, functions_dir)
    from personalize_ingest.entities import ITEMS
    from personalize_ingest.import_tracking import track
    from personalize_ingest.observability import logger

    # The tracker runs in this process: its INFO log and EMF line would land in the tables' output.
    logger.setLevel("WARNING")
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        track(bench.s3, personalize, bench.bucket, [ITEMS])
    tracker_s = time.perf_counter() - started
    body = bench.s3.get_object(Bucket=bench.bucket, Key=f"results/{key}.result.json")["Body"].read()
    return tracker_s, json.loads(body)


def _stream_sample(bench: Bench, body: bytes, sample_rows: int) -> dict[str, Any]:
    sample = b"".join(body.splitlines(keepends=True)[: sample_rows + 1])
    key = f"{ENTITY}/bench/catalogue-sample-{sample_rows}.csv"
    event = bench.put_object(key, sample)
    bench.emulator.reset()
    with bench.worker() as worker:
        measured, calls = bench.invoke(worker, ENTITY, event, None)
    result = bench.take_object_result(key)
    return invocation_row(
        SCENARIO,
        f"PutItems, {sample_rows:,}-item sample",
        sample_rows,
        measured,
        calls,
        callsPerSecondLimit=10.0,
        observedCallsPerSecond=(len(calls["callTimes"]) - 1) / (calls["callTimes"][-1] - calls["callTimes"][0])
        if len(calls["callTimes"]) > 1
        else None,
        steadyCallsPerSecond=None,
        objectStatus=result.get("status"),
    )
