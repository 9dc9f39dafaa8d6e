"""Send the sample data to the stack's sources and remember where every record went in.

Each sample file belongs to one entity and prefers one source (events to Kinesis, items and users as files to
S3, actions and action interactions to SQS); the entity's sources are found in the template's mappings and
bucket notifications. Every record sent is kept as a :class:`SentRecord` naming its position in the source
(sequence number, message id, or object key and line) and the key under which the emulator will store it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from local.servers import REPO_ROOT
from local.stack import LocalStack, QueueSpec, StreamSpec

# NOTE: the demo derives eventIds with the functions' own code (personalize_ingest.model.SourceRef), never a copy.
sys.path.insert(0, str(REPO_ROOT / "functions"))
from personalize_ingest.entities import ENTITIES, Entity
from personalize_ingest.model import SourceRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

SAMPLES_DIR = REPO_ROOT / "samples"


@dataclass(frozen=True, slots=True)
class SampleFile:
    """One sample file, the entity it holds and the sources it may go to, best first."""

    name: str
    entity: str
    sources: tuple[str, ...]


SAMPLE_FILES = (
    SampleFile("events.jsonl", "events", ("kinesis", "sqs")),
    SampleFile("items.csv", "items", ("s3",)),
    SampleFile("users.jsonl.gz", "users", ("s3",)),
    SampleFile("actions.jsonl", "actions", ("sqs", "kinesis")),
    SampleFile("action_interactions.jsonl", "action_interactions", ("sqs", "kinesis")),
)


@dataclass(slots=True)
class SentRecord:
    """One record written to a source: where it is, and how the emulator's store will name it."""

    entity: str
    source: str
    sample: str
    """``<file>:<line>`` in the samples folder."""
    position: tuple[str, ...]
    """("kinesis", sequence number) | ("sqs", message id) | ("s3", key, line)."""
    delivery_key: str | None
    """eventId (interactions) or entity id (items, users, actions) the emulator stores; None if it has none."""
    expected_code: str | None
    """The rejection code a deliberately broken sample must get; None for valid samples."""
    body: str = ""


@dataclass(slots=True)
class SampleLines:
    """The selected lines of one sample file, with their line numbers in the file."""

    sample: SampleFile
    header: str | None
    lines: list[tuple[int, str]]
    expected: dict[int, str] = field(default_factory=dict)


def read_samples(samples_dir: Path = SAMPLES_DIR, *, limit: int | None = None) -> list[SampleLines]:
    """Read every sample file; with ``limit``, keep the first ``limit`` valid lines of each, plus the broken."""
    broken = json.loads((samples_dir / "broken.json").read_text(encoding="utf-8"))
    selected = []
    for sample in SAMPLE_FILES:
        raw = (samples_dir / sample.name).read_bytes()
        text = (gzip.decompress(raw) if sample.name.endswith(".gz") else raw).decode("utf-8")
        numbered = list(enumerate(text.splitlines(), start=1))
        header = None
        if sample.name.endswith(".csv"):
            header, numbered = numbered[0][1], numbered[1:]
        expected = {int(line): code for line, code in broken.get(sample.name, {}).items()}
        valid_seen = 0
        lines = []
        for number, line in numbered:
            if number in expected:
                lines.append((number, line))
            elif limit is None or valid_seen < limit:
                lines.append((number, line))
                valid_seen += 1
        selected.append(SampleLines(sample, header, lines, expected))
    return selected


CATALOGUE_SAMPLE = SampleFile("catalogue.csv", "items", ("s3",))
"""A generated items file large enough for the import route (only fed when the template turns the route on)."""


def generated_catalogue(rows: int) -> SampleLines:
    """``rows`` items in the bulk layout of samples/items.csv, with ids no sample file uses."""
    header = "ITEM_ID,CATEGORY_L1,BRAND,PRICE,CREATION_TIMESTAMP"
    categories = ("tents", "backpacks", "sleeping-bags", "stoves", "lamps")
    lines = [
        (
            number + 2,
            f"bulk-{number:06d},{categories[number % 5]},Cairn,{number % 900 + 9.5:.2f},{1759741307 + number}",
        )
        for number in range(rows)
    ]
    return SampleLines(CATALOGUE_SAMPLE, header, lines)


@dataclass(frozen=True, slots=True)
class EntitySources:
    """The sources the template wires to one entity's function."""

    streams: list[StreamSpec]
    queues: list[QueueSpec]
    """Queues read by the function, S3-notified ones last."""
    s3: list[tuple[str, str]]
    """(bucket, prefix) pairs whose notifications reach the function's queues."""


def entity_sources(stack: LocalStack, entity: str) -> EntitySources:
    """Find the streams, queues and bucket prefixes of ``entity`` from the mappings and notifications."""
    functions = {f.logical_id for f in stack.functions.values() if f.entity == entity}
    mappings = [m for m in stack.mappings.values() if m.function in functions and m.enabled]
    streams = [s for m in mappings if m.kind == "kinesis" for s in [stack.stream_by_arn(m.source_arn)] if s]
    queues = [q for m in mappings if m.kind == "sqs" for q in [stack.queue_by_arn(m.source_arn)] if q]
    notified = {n.queue_arn for b in stack.buckets.values() for n in b.notifications}
    queues.sort(key=lambda q: (q.arn in notified, q.fifo))
    s3 = [
        (bucket.name, n.prefix)
        for bucket in stack.buckets.values()
        for n in bucket.notifications
        if any(q.arn == n.queue_arn for q in queues)
    ]
    return EntitySources(streams, queues, s3)


class Feeder:
    """Writes sample lines to Kinesis, SQS or S3 in moto."""

    def __init__(self, stack: LocalStack, endpoint_url: str) -> None:
        self.stack = stack
        region = stack.account.region
        self.kinesis: KinesisClient = boto3.client("kinesis", endpoint_url=endpoint_url, region_name=region)
        self.sqs: SQSClient = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)
        self.s3: S3Client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def feed(self, samples: Iterable[SampleLines]) -> list[SentRecord]:
        """Send every sample file to the first source its entity has; raise if it has none of them."""
        sent: list[SentRecord] = []
        for selection in samples:
            sample = selection.sample
            sources = entity_sources(self.stack, sample.entity)
            available = {"kinesis": bool(sources.streams), "sqs": bool(sources.queues), "s3": bool(sources.s3)}
            source = next((s for s in sample.sources if available[s]), None)
            if source is None:
                raise LookupError(
                    f"the synthesized stack gives entity {sample.entity!r} none of the sources "
                    f"{'/'.join(sample.sources)} that {sample.name} needs; enable one in cdk.json and re-synth"
                )
            if source == "kinesis":
                sent += self._to_kinesis(selection, sources.streams[0])
            elif source == "sqs":
                sent += self._to_sqs(selection, sources.queues[0])
            else:
                bucket, prefix = sources.s3[0]
                sent += self._to_s3(selection, bucket, prefix)
        return sent

    def _to_kinesis(self, selection: SampleLines, stream: StreamSpec) -> list[SentRecord]:
        entity = ENTITIES[selection.sample.entity]
        sent = []
        for start in range(0, len(selection.lines), 500):
            chunk = selection.lines[start : start + 500]
            entries: Any = [
                {"Data": line.encode(), "PartitionKey": _partition_key(_parse(line), number)}
                for number, line in chunk
            ]
            response = self.kinesis.put_records(StreamName=stream.name, Records=entries)
            if response.get("FailedRecordCount"):
                raise RuntimeError(f"moto refused {response['FailedRecordCount']} Kinesis records")
            for (number, line), result in zip(chunk, response["Records"], strict=True):
                sequence_number = result["SequenceNumber"]
                ref = SourceRef("aws:kinesis", arn=stream.arn, sequence_number=sequence_number)
                position = ("kinesis", sequence_number)
                sent.append(self._record(entity, "kinesis", selection, number, line, position, ref))
        return sent

    def _to_sqs(self, selection: SampleLines, queue: QueueSpec) -> list[SentRecord]:
        entity = ENTITIES[selection.sample.entity]
        sent = []
        for start in range(0, len(selection.lines), 10):
            chunk = selection.lines[start : start + 10]
            entries: list[Any] = []
            for index, (number, line) in enumerate(chunk):
                entry: dict[str, Any] = {"Id": str(index), "MessageBody": line}
                if queue.fifo:
                    entry["MessageGroupId"] = _partition_key(_parse(line), number)
                    entry["MessageDeduplicationId"] = hashlib.sha256(line.encode()).hexdigest()
                entries.append(entry)
            response = self.sqs.send_message_batch(QueueUrl=queue.url, Entries=entries)
            if response.get("Failed"):
                raise RuntimeError(f"moto refused SQS messages: {response['Failed']}")
            by_id = {r["Id"]: r["MessageId"] for r in response["Successful"]}
            for index, (number, line) in enumerate(chunk):
                ref = SourceRef("aws:sqs", arn=queue.arn, message_id=by_id[str(index)])
                sent.append(self._record(entity, "sqs", selection, number, line, ("sqs", by_id[str(index)]), ref))
        return sent

    def _to_s3(self, selection: SampleLines, bucket: str, prefix: str) -> list[SentRecord]:
        entity = ENTITIES[selection.sample.entity]
        name = selection.sample.name
        # NOTE: S3 notifications carry keys URL-encoded (a space as "+"); a space and a "+" in every demo key make
        # a function that forgets to decode them (or decodes "+" wrongly) miss its object, which the report shows.
        key = f"{prefix}demo run+{name}"
        lines = ([selection.header] if selection.header is not None else []) + [
            line for _, line in selection.lines
        ]
        body = ("\n".join(lines) + "\n").encode()
        if name.endswith(".gz"):
            body = gzip.compress(body, mtime=0)
        response = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        version, etag = response.get("VersionId"), response["ETag"].strip('"')
        first = 2 if selection.header is not None else 1
        columns = _csv_row(selection.header) if selection.header is not None else None
        sent = []
        for offset, (number, line) in enumerate(selection.lines):
            object_line = first + offset
            ref = SourceRef("aws:s3", bucket=bucket, key=key, version_id=version, etag=etag, line=object_line)
            value = dict(zip(columns, _csv_row(line), strict=False)) if columns else _parse(line)
            sent.append(
                self._record(entity, "s3", selection, number, line, ("s3", key, str(object_line)), ref, value)
            )
        return sent

    def _record(
        self,
        entity: Entity,
        source: str,
        selection: SampleLines,
        number: int,
        line: str,
        position: tuple[str, ...],
        ref: SourceRef,
        value: Any = None,
    ) -> SentRecord:
        value = _parse(line) if value is None else value
        return SentRecord(
            entity=entity.name,
            source=source,
            sample=f"{selection.sample.name}:{number}",
            position=position,
            delivery_key=delivery_key(entity, value, ref),
            expected_code=selection.expected.get(number),
            body=line,
        )


def delivery_key(entity: Entity, value: Any, ref: SourceRef) -> str | None:
    """The key the emulator's store holds this record under: its eventId, or its entity id."""
    if not isinstance(value, dict):
        return None
    if entity.id_member is not None:
        found = value.get(entity.id_member) or value.get(upper_snake(entity.id_member))
        return str(found) if found else None
    explicit = value.get("eventId") or value.get("EVENT_ID")
    return str(explicit) if explicit else ref.derived_event_id()


def upper_snake(name: str) -> str:
    """``itemId`` -> ``ITEM_ID`` (the bulk-import column of an API member)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _csv_row(line: str) -> list[str]:
    return next(csv.reader([line]))


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return line


def _partition_key(value: Any, number: int) -> str:
    if isinstance(value, dict):
        for member in ("sessionId", "actionId", "userId", "itemId"):
            if isinstance(value.get(member), str) and value[member]:
                return value[member]
    return f"line-{number}"
