"""``redrive [--entity E]``: give the records that failed for good another pass through the pipeline.

- SQS: the messages of each source queue's dead-letter queue (from the queue's redrive policy) are sent back to
  that queue with their attributes (FIFO: their message group) and deleted from the DLQ once sent.
- Kinesis: each batch in the failed-batches bucket (``aws/lambda/...`` objects, Lambda's on-failure record) names
  the stream, shard and sequence range of the batch. Its records are read back from the stream while the stream
  still retains them and put on the stream again; the object is deleted once every record is back. When the
  stream no longer has them, the records are taken from the payload the object carries, if any; otherwise the
  batch is reported as no longer retained and the object is kept.

Without ``--entity``, every entity of the stack. ``--dry-run`` counts and moves nothing; ``--limit`` caps the
messages or batches handled per entity.
"""

from __future__ import annotations

import argparse
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from ingest_cli import runtime
from ingest_cli.output import NOTHING_TO_DO, OK, PROBLEMS, Output
from ingest_cli.sending import Queue, put_records
from ingest_cli.stack import StackOutputs
from ingest_cli.stack import load as load_outputs

FAILED_BATCH_PREFIX = "aws/lambda/"
"""Where Lambda's S3 on-failure destination writes its records (aws/lambda/<mapping>/<shard>/YYYY/MM/DD/...)."""
RECEIVE_VISIBILITY_S = 120
FORWARDED_ATTRIBUTES = ("MessageGroupId", "MessageDeduplicationId")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "redrive",
        help="move DLQ messages back to their queue and re-feed failed Kinesis batches to their stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entity", help="only this entity (default: every entity of the stack)")
    parser.add_argument("--limit", type=int, help="handle at most this many messages or batches per entity")
    parser.add_argument("--dry-run", action="store_true", help="count only: move nothing")
    parser.set_defaults(run=run)


@dataclass
class EntityRedrive:
    entity: str
    queues: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def found(self) -> int:
        return sum(q["found"] for q in self.queues) + len(self.batches)

    @property
    def problems(self) -> int:
        return sum(q["notSent"] for q in self.queues) + sum(1 for b in self.batches if b["status"] != "redriven")


def run(args: argparse.Namespace, out: Output) -> int:
    outputs = load_outputs(args.outputs, args.stack)
    entities = [runtime.entity_named(args.entity).name] if args.entity else outputs.entities()
    if args.limit is not None and args.limit < 1:
        raise runtime.InputError("--limit must be at least 1")
    done = [_redrive(outputs, entity, args.limit, args.dry_run) for entity in entities]
    out.document({"dryRun": args.dry_run, "entities": [vars(d) for d in done]})
    for result in done:
        for queue in result.queues:
            moved = f"would move {queue['found']}" if args.dry_run else f"moved {queue['moved']}"
            out.line(
                f"{result.entity}: DLQ {queue['dlq'].rsplit('/', 1)[-1]}: {queue['found']} message(s), "
                f"{moved} to {queue['queue'].rsplit('/', 1)[-1]}"
                + (f", {queue['notSent']} not sent" if queue["notSent"] else "")
            )
        for batch in result.batches:
            out.line(f"{result.entity}: failed batch {batch['key']}: {batch['status']} ({batch['detail']})")
    if not any(result.found for result in done):
        out.line("nothing to redrive: the DLQs and the failed-batches bucket are empty for " + ", ".join(entities))
        return NOTHING_TO_DO
    return PROBLEMS if any(result.problems for result in done) else OK


def _redrive(outputs: StackOutputs, entity: str, limit: int | None, dry_run: bool) -> EntityRedrive:
    result = EntityRedrive(entity)
    for url in outputs.source_queues(entity):
        source = Queue(url)
        dlq_url = source.dead_letter_url()
        if dlq_url is not None:
            result.queues.append(_move_queue(Queue(dlq_url, source.client), source, limit, dry_run))
    stream = outputs.entity(entity, "StreamName")
    bucket = outputs.get("FailedBatchesBucketName")
    if stream and bucket:
        result.batches = _refeed_stream(bucket, stream, limit, dry_run)
    return result


def _move_queue(dlq: Queue, source: Queue, limit: int | None, dry_run: bool) -> dict[str, Any]:
    received = list(dlq.receive_messages(limit, RECEIVE_VISIBILITY_S))
    moved = not_sent = 0
    if dry_run:
        dlq.release([receipt for _, receipt, _ in received])
    elif received:
        bodies = []
        for body, _, message in received:
            extra: dict[str, Any] = {}
            attributes = message.get("MessageAttributes")
            if attributes:
                extra["MessageAttributes"] = attributes
            for name in FORWARDED_ATTRIBUTES:
                if source.fifo and message.get("Attributes", {}).get(name):
                    extra[name] = message["Attributes"][name]
            bodies.append((body, extra))
        failures = source.send(bodies)
        dlq.delete([receipt for index, (_, receipt, _) in enumerate(received) if index not in failures])
        dlq.release([receipt for index, (_, receipt, _) in enumerate(received) if index in failures])
        moved, not_sent = len(received) - len(failures), len(failures)
    return {"queue": source.url, "dlq": dlq.url, "found": len(received), "moved": moved, "notSent": not_sent}


def _refeed_stream(bucket: str, stream: str, limit: int | None, dry_run: bool) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    kinesis = boto3.client("kinesis")
    batches: list[dict[str, Any]] = []
    for key in _failed_batch_keys(s3, bucket):
        if limit is not None and len(batches) >= limit:
            break
        document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        info = document.get("KinesisBatchInfo") or {}
        if str(info.get("streamArn", "")).rsplit("/", 1)[-1] != stream:
            continue
        records, origin = _records_back(kinesis, stream, info, document)
        entry = {"key": key, "shard": info.get("shardId"), "records": int(info.get("batchSize", 0))}
        if records is None:
            batches.append({**entry, "status": "not retained", "detail": origin})
            continue
        if dry_run:
            batches.append({**entry, "status": "would redrive", "detail": f"{len(records)} records {origin}"})
            continue
        failures = put_records(kinesis, stream, records)
        if failures:
            first = next(iter(failures.values()))
            detail = f"{len(failures)} of {len(records)} records not put ({first}); the object is kept"
            batches.append({**entry, "status": "partly redriven", "detail": detail})
            continue
        s3.delete_object(Bucket=bucket, Key=key)
        batches.append({**entry, "status": "redriven", "detail": f"{len(records)} records {origin}"})
    return batches


def _failed_batch_keys(s3: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=FAILED_BATCH_PREFIX):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(keys)


def _records_back(
    kinesis: Any, stream: str, info: dict[str, Any], document: dict[str, Any]
) -> tuple[list[tuple[bytes, str]] | None, str]:
    """The batch's (data, partition key) and where they came from; None and why when they cannot be had."""
    start, end = info.get("startSequenceNumber"), info.get("endSequenceNumber")
    retained = _read_range(kinesis, stream, str(info.get("shardId")), start, end) if start and end else None
    if retained is not None:
        return retained, "read back from the stream"
    payload = (document.get("payload") or {}).get("Records")
    if payload:
        records = [(base64.b64decode(r["kinesis"]["data"]), r["kinesis"]["partitionKey"]) for r in payload]
        return records, "taken from the payload the object keeps (the stream no longer has them)"
    return None, (
        f"sequence numbers {start}..{end} of shard {info.get('shardId')} are no longer retained by the stream "
        "and the object holds no payload"
    )


def _read_range(kinesis: Any, stream: str, shard: str, start: str, end: str) -> list[tuple[bytes, str]] | None:
    """Records ``start``..``end`` of a shard, or None when the stream no longer holds the first of them."""
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream,
            ShardId=shard,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=start,
        )["ShardIterator"]
    except ClientError:
        return None
    records: list[tuple[bytes, str]] = []
    last = int(end)
    first_seen = False
    while iterator:
        response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        for record in response["Records"]:
            number = int(record["SequenceNumber"])
            if not first_seen:
                if number != int(start):
                    return None
                first_seen = True
            if number > last:
                return records
            records.append((record["Data"], record["PartitionKey"]))
            if number == last:
                return records
        if not response["Records"] and not response.get("MillisBehindLatest"):
            break
        iterator = response.get("NextShardIterator")
    return records if first_seen else None
