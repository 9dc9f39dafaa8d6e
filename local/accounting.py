"""Find where every sent record ended up: delivered, rejected, in a DLQ or on-failure destination, or nowhere.

Evidence comes only from what the system holds at the end: the emulator's store and call log (admin API), the
rejects queue, the source queues' dead-letter queues and the Kinesis mappings' on-failure destinations in moto.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3

from local.feed import SentRecord
from local.stack import LocalStack
from personalize_ingest.contract import REJECTS_QUEUE_URL

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

OPERATIONS = {
    "events": "PutEvents",
    "action_interactions": "PutActionInteractions",
    "items": "PutItems",
    "users": "PutUsers",
    "actions": "PutActions",
}
MEMBERS = {
    "events": "eventId",
    "action_interactions": "eventId",
    "items": "itemId",
    "users": "userId",
    "actions": "actionId",
}


@dataclass
class Evidence:
    """What the local stack holds after the run."""

    stored: dict[str, Counter[str]] = field(default_factory=dict)
    """entity -> delivery key -> rows in the emulator's store."""
    duplicate_flags: Counter[str] = field(default_factory=Counter)
    """entity -> rows the emulator flagged as a repeated eventId."""
    calls: dict[str, Counter[str]] = field(default_factory=dict)
    """operation -> HTTP status (as text) -> calls."""
    rejected: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    """source position -> reject message."""
    dead_lettered: set[tuple[str, ...]] = field(default_factory=set)
    """source positions of records in a DLQ or an on-failure destination."""
    dead_lettered_bodies: set[str] = field(default_factory=set)
    unmatched_rejects: int = 0
    imports: list[dict[str, Any]] = field(default_factory=list)
    """Result files of objects that took the import route (docs/bulk-import.md)."""


def _admin(emulator_url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{emulator_url}/_emulator/{path}", timeout=30) as response:
        return json.load(response)


def drain_queue(sqs: SQSClient, url: str) -> list[dict[str, Any]]:
    """Every message of a queue (received once, hidden for the rest of the run, not deleted)."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(dict(m) for m in batch)


def _position(source: dict[str, Any]) -> tuple[str, ...]:
    if source.get("bucket") is not None:
        return ("s3", str(source.get("key")), str(source.get("line")))
    if source.get("sequenceNumber") is not None:
        return ("kinesis", str(source["sequenceNumber"]))
    return ("sqs", str(source.get("messageId")))


def gather(stack: LocalStack, moto_url: str, emulator_url: str, sent: list[SentRecord]) -> Evidence:
    """Collect the evidence for ``sent`` from the emulator and moto."""
    region = stack.account.region
    sqs: SQSClient = boto3.client("sqs", endpoint_url=moto_url, region_name=region)
    s3: S3Client = boto3.client("s3", endpoint_url=moto_url, region_name=region)
    evidence = Evidence()

    for entity, member in MEMBERS.items():
        rows = _admin(emulator_url, f"records/{entity}")
        evidence.stored[entity] = Counter(str(row["element"].get(member)) for row in rows)
        evidence.duplicate_flags[entity] = sum(1 for row in rows if row.get("duplicate"))
    for call in _admin(emulator_url, "calls"):
        evidence.calls.setdefault(call["operation"], Counter())[str(call["status"])] += 1

    sent_positions = {record.position for record in sent}
    reject_urls = {
        f.environment[REJECTS_QUEUE_URL] for f in stack.functions.values() if f.environment.get(REJECTS_QUEUE_URL)
    }
    for url in sorted(reject_urls):
        for message in drain_queue(sqs, url):
            body = json.loads(message["Body"])
            position = _position(body.get("source", {}))
            evidence.rejected[position] = body
            evidence.unmatched_rejects += position not in sent_positions

    _gather_dead_letters(stack, sqs, s3, sent, evidence)
    _gather_imports(stack, s3, sent, evidence)
    return evidence


def _gather_imports(stack: LocalStack, s3: S3Client, sent: list[SentRecord], evidence: Evidence) -> None:
    keys = sorted({record.position[1] for record in sent if record.position[0] == "s3"})
    for bucket in stack.buckets.values():
        for key in keys:
            try:
                body = s3.get_object(Bucket=bucket.name, Key=f"results/{key}.result.json")["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue
            document = json.loads(body)
            if document.get("route") == "import":
                evidence.imports.append(document)


def _gather_dead_letters(
    stack: LocalStack, sqs: SQSClient, s3: S3Client, sent: list[SentRecord], evidence: Evidence
) -> None:
    sequence_numbers = [int(record.position[1]) for record in sent if record.position[0] == "kinesis"]
    sources = stack.sqs_sources()
    dead_letter_arns = {q.dead_letter_arn for q in stack.queues.values() if q.arn in sources and q.dead_letter_arn}
    on_failure_arns = {
        m.on_failure_arn for m in stack.mappings.values() if m.kind == "kinesis" and m.on_failure_arn
    }

    for arn in sorted(dead_letter_arns | on_failure_arns):
        queue = stack.queue_by_arn(arn)
        if queue is not None:
            for message in drain_queue(sqs, queue.url):
                record_dead_letter(message, evidence, sequence_numbers)
        bucket = stack.bucket_by_arn(arn)
        if bucket is not None:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix="aws/lambda/")
            for page in pages:
                for item in page.get("Contents", []):
                    document = json.loads(s3.get_object(Bucket=bucket.name, Key=item["Key"])["Body"].read())
                    for record in document.get("payload", {}).get("Records", []):
                        evidence.dead_lettered.add(("kinesis", record["kinesis"]["sequenceNumber"]))


def record_dead_letter(message: dict[str, Any], evidence: Evidence, sequence_numbers: list[int]) -> None:
    """Add the records one DLQ / on-failure message stands for: the message itself, the Kinesis records of an
    invocation record's sequence-number range (``sequence_numbers`` are those sent), or a notified S3 object."""
    evidence.dead_lettered.add(("sqs", message["MessageId"]))
    evidence.dead_lettered_bodies.add(message["Body"])
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    batch = body.get("KinesisBatchInfo")
    if isinstance(batch, dict):
        # NOTE: an SQS on-failure destination gets metadata only: the range of sequence numbers of the batch.
        first, last = int(batch["startSequenceNumber"]), int(batch["endSequenceNumber"])
        evidence.dead_lettered.update(("kinesis", str(n)) for n in sequence_numbers if first <= n <= last)
    for record in body.get("Records", []):
        if isinstance(record, dict) and "s3" in record:
            # An S3 notification in a DLQ: every row of that object is there.
            evidence.dead_lettered.add(("s3-object", unquote_plus(record["s3"]["object"]["key"])))


@dataclass
class Tally:
    """The report's numbers for one entity and source."""

    sent: int = 0
    delivered: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    dead_lettered: int = 0
    duplicates: int = 0
    unaccounted: list[str] = field(default_factory=list)
    """``<file>:<line>`` of records found nowhere."""
    unexpected: list[str] = field(default_factory=list)
    """Broken samples that were not rejected with their expected code, or valid ones that were rejected."""


def account(sent: list[SentRecord], evidence: Evidence) -> dict[tuple[str, str], Tally]:
    """Classify each distinct sent record: delivered, rejected, dead-lettered or unaccounted."""
    tallies: dict[tuple[str, str], Tally] = {}
    for record in sent:
        tally = tallies.setdefault((record.entity, record.source), Tally())
        tally.sent += 1
        stored = evidence.stored.get(record.entity, Counter())
        rejection = evidence.rejected.get(record.position)
        copies = stored.get(record.delivery_key, 0) if record.delivery_key else 0
        if copies:
            tally.delivered += 1
            tally.duplicates += copies - 1
            if record.expected_code:
                tally.unexpected.append(
                    f"{record.sample}: broken sample delivered (expected {record.expected_code})"
                )
        elif rejection is not None:
            code = str(rejection.get("code"))
            tally.rejected[code] += 1
            if code != record.expected_code:
                tally.unexpected.append(
                    f"{record.sample}: rejected {code}, expected {record.expected_code or 'none'}"
                )
        elif _dead_lettered(record, evidence):
            tally.dead_lettered += 1
        else:
            tally.unaccounted.append(record.sample)
    return tallies


def _dead_lettered(record: SentRecord, evidence: Evidence) -> bool:
    if record.position in evidence.dead_lettered or record.body in evidence.dead_lettered_bodies:
        return True
    return record.position[0] == "s3" and ("s3-object", record.position[1]) in evidence.dead_lettered
