"""Decode a Lambda event (Kinesis, SQS or S3) into batch items holding records and S3 objects to read.

Every Kinesis record or SQS message becomes one :class:`BatchItem`, identified by the id the batch response
reports (Kinesis ``sequenceNumber``, SQS ``messageId``). An item holds the records it carries inline and the
S3 objects it announces (S3 notifications, EventBridge events, continuation messages); objects are streamed
later by :mod:`personalize_ingest.s3objects`. A direct S3 invocation yields one item per object.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from personalize_ingest.model import KINESIS, S3, SQS, Record, Rejection, SourceRef

KPL_MAGIC = b"\xf3\x89\x9a\xc2"
"""First bytes of a KPL-aggregated Kinesis record (Kinesis Producer Library aggregation format)."""
KPL_DIGEST_BYTES = 16
"""An aggregate ends with the MD5 digest of its protobuf message."""

FIRST_LINE = 1


EMPTY = "none"
"""``event_source`` of an event whose ``Records`` list is empty."""


class UnsupportedEvent(ValueError):
    """The invocation event is not a Kinesis, SQS or S3 event: nothing in it can be accounted for."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One of the byte ranges a large plain object is fanned out into (each is read by its own message)."""

    index: int
    """0-based position of the range in the object."""
    count: int
    """How many ranges the object was split into: its result is complete once all of them reported."""
    end: int
    """Byte offset where the range ends (exclusive): a row starting there belongs to the next range."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One S3 object to read, and where to start.

    ``start_line`` / ``start_offset`` name the first row still to process (line 1 / None = the whole object; a
    continuation starts later, at a byte offset in the object's content). ``progress`` carries counts of earlier
    invocations of the same object or range (continuations), for its result file.
    """

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    event_time: float
    start_line: int = FIRST_LINE
    start_offset: int | None = None
    """Byte offset of ``start_line`` in the object's content (decompressed for gzip); None = from the first row,
    or a continuation of an earlier version of this function that carried its line only."""
    hops: int = 0
    """Continuations that led to this message (0 for an object's announcement and for a fanned-out range)."""
    skip_lines: tuple[tuple[int, int], ...] = ()
    """Lines at or after the start already delivered or set aside (a deadline that came inside a chunk), as
    inclusive (first, last) pairs: they are read but not sent again."""
    part: ByteRange | None = None
    """The byte range this message reads, when the object was fanned out."""
    progress: Mapping[str, Any] | None = None

    def source(self, line: int | None = None) -> SourceRef:
        return SourceRef(
            event_source=S3,
            bucket=self.bucket,
            key=self.key,
            version_id=self.version_id,
            etag=self.etag,
            line=line,
        )

    def describe(self) -> dict[str, Any]:
        """Identifiers for logs and result files."""
        return {"bucket": self.bucket, "key": self.key, "versionId": self.version_id, "etag": self.etag}


@dataclass(slots=True)
class BatchItem:
    """One Kinesis record, SQS message or S3 object of the invocation event."""

    item_id: str
    event_source: str
    records: list[Record] = field(default_factory=list)
    objects: list[ObjectRef] = field(default_factory=list)
    group_id: str | None = None
    """SQS FIFO message group."""
    queue_arn: str | None = None
    """SQS queue the message came from (continuations go back there)."""
    receipt_handle: str | None = None
    """SQS receipt handle of this receive (a FIFO message held for resumption is made visible again with it)."""
    receive_count: int | None = None
    """SQS ``ApproximateReceiveCount``: how many times the message was received, this time included."""
    ignored: str | None = None
    """Why the item carries nothing to ingest (an ``s3:TestEvent``, an S3 event other than Object Created)."""

    @property
    def fifo(self) -> bool:
        """True for a message of an SQS FIFO queue."""
        return self.queue_arn is not None and self.queue_arn.endswith(".fifo")


@dataclass(slots=True)
class SourceEvent:
    """The decoded invocation event."""

    event_source: str
    items: list[BatchItem]

    @property
    def fifo(self) -> bool:
        return any(item.fifo for item in self.items)

    @property
    def direct_s3(self) -> bool:
        return self.event_source == S3


def decode_event(event: Mapping[str, Any]) -> SourceEvent:
    """Decode a Lambda invocation event.

    An empty ``Records`` list (a console test event, a replay tool) is an empty batch: nothing to do, nothing
    failed.

    Raises
    ------
    UnsupportedEvent
        when the event has no ``Records`` list, or records of no known ``eventSource``.
    """
    raw_records = event.get("Records")
    if not isinstance(raw_records, list):
        raise UnsupportedEvent("the event has no Records list; expected a Kinesis, SQS or S3 event")
    if not raw_records:
        return SourceEvent(event_source=EMPTY, items=[])
    sources = {_event_source(raw) for raw in raw_records}
    if len(sources) != 1 or (source := sources.pop()) not in _DECODERS:
        raise UnsupportedEvent(f"unsupported event source(s) {sorted(map(str, sources))}")
    return SourceEvent(event_source=source, items=[_DECODERS[source](raw) for raw in raw_records])


def _event_source(raw: Any) -> str | None:
    if not isinstance(raw, Mapping):
        return None
    return raw.get("eventSource") or raw.get("EventSource")


# ---------------------------------------------------------------------------------------------------- Kinesis


def _kinesis_item(raw: Mapping[str, Any]) -> BatchItem:
    kinesis = raw["kinesis"]
    sequence_number = kinesis["sequenceNumber"]
    arn = raw.get("eventSourceARN")
    arrival = float(kinesis.get("approximateArrivalTimestamp") or 0.0)
    item = BatchItem(item_id=sequence_number, event_source=KINESIS)
    try:
        data = base64.b64decode(kinesis["data"], validate=True)
    except (binascii.Error, ValueError):
        source = SourceRef(event_source=KINESIS, arn=arn, sequence_number=sequence_number)
        rejection = Rejection("invalid_base64", "Kinesis record data is not valid base64")
        item.records.append(Record(sequence_number, source, kinesis["data"], arrival, decode_error=rejection))
        return item
    if data.startswith(KPL_MAGIC):
        user_records = _deaggregate(raw, data)
        if user_records is None:
            source = SourceRef(event_source=KINESIS, arn=arn, sequence_number=sequence_number)
            rejection = Rejection(
                "invalid_aggregate", "Kinesis record starts with the KPL magic bytes but is not a valid aggregate"
            )
            item.records.append(Record(sequence_number, source, kinesis["data"], arrival, decode_error=rejection))
            return item
        for sub_sequence_number, payload in enumerate(user_records):
            source = SourceRef(
                event_source=KINESIS,
                arn=arn,
                sequence_number=sequence_number,
                sub_sequence_number=sub_sequence_number,
            )
            item.records.extend(_records_from_payload(payload, sequence_number, source, arrival))
        return _note_if_empty(item)
    source = SourceRef(event_source=KINESIS, arn=arn, sequence_number=sequence_number)
    item.records.extend(_records_from_payload(data, sequence_number, source, arrival))
    return _note_if_empty(item)


def _deaggregate(raw: Mapping[str, Any], data: bytes) -> list[bytes] | None:
    """User records of one KPL-aggregated Kinesis record (``data``: its decoded bytes), or None when the aggregate
    is corrupt."""
    # NOTE: imported here: aws_kinesis_agg (and protobuf behind it) costs cold-start time, and only producers
    # using KPL aggregation need it.
    from aws_kinesis_agg import deaggregator

    # NOTE: iter_deaggregate_records yields the record unchanged when the digest or protobuf is invalid, and
    # stops silently (printing to stderr) when a user record points outside the key tables; compare the
    # count with the protobuf so no user record is lost without notice.
    user_records = list(deaggregator.iter_deaggregate_records([dict(raw)]))
    if not user_records or not user_records[0]["kinesis"].get("aggregated"):
        return None
    # NOTE: importable once the deaggregator has put the package's folder on sys.path (its generated code
    # imports config_pb2 as a top-level module).
    from aws_kinesis_agg import messages_pb2

    aggregate = messages_pb2.AggregatedRecord()
    aggregate.ParseFromString(data[len(KPL_MAGIC) : -KPL_DIGEST_BYTES])
    if len(aggregate.records) != len(user_records):
        return None
    return [base64.b64decode(user["kinesis"]["data"]) for user in user_records]


# ---------------------------------------------------------------------------------------------------- SQS


def _sqs_item(raw: Mapping[str, Any]) -> BatchItem:
    message_id = raw["messageId"]
    attributes = raw.get("attributes") or {}
    arn = raw.get("eventSourceARN")
    received = attributes.get("ApproximateReceiveCount")
    item = BatchItem(
        item_id=message_id,
        event_source=SQS,
        group_id=attributes.get("MessageGroupId"),
        queue_arn=arn,
        receipt_handle=raw.get("receiptHandle"),
        receive_count=int(received) if received else None,
    )
    # NOTE: SentTimestamp is epoch milliseconds as a string.
    sent = attributes.get("SentTimestamp")
    arrival = int(sent) / 1000.0 if sent else 0.0
    source = SourceRef(event_source=SQS, arn=arn, message_id=message_id)
    _decode_body(item, raw.get("body", ""), source, arrival)
    return _note_if_empty(item)


def _decode_body(item: BatchItem, body: str, source: SourceRef, arrival: float) -> None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        # NOTE: json.loads raises RecursionError for values nested about 1,000 deep; such a body is one invalid
        # record like any other, not an exception that would fail the whole batch.
        item.records.append(_undecodable(body, item.item_id, source, arrival))
        return
    if isinstance(value, dict):
        try:
            for recognise in _ENVELOPES:
                if recognise(item, value, source, arrival):
                    return
        except (KeyError, TypeError, ValueError) as exc:
            # NOTE: a body that looks like a known envelope but lacks its members cannot be read: it is set
            # aside like any undecodable record rather than failing the whole batch.
            item.objects.clear()
            item.ignored = None
            rejection = Rejection(
                "invalid_envelope", f"the message looks like an envelope but is malformed: {exc!r}"
            )
            item.records.append(Record(item.item_id, source, value, arrival, decode_error=rejection))
            return
    item.records.extend(_records_from_value(value, item.item_id, source, arrival))


def _sns_envelope(item: BatchItem, value: dict[str, Any], source: SourceRef, arrival: float) -> bool:
    # NOTE: with raw message delivery off, SNS wraps the published message in a JSON envelope whose "Message"
    # is the published string; it may itself be an S3 notification (S3 -> SNS -> SQS fan-out).
    if value.get("Type") != "Notification" or "TopicArn" not in value or not isinstance(value.get("Message"), str):
        return False
    _decode_body(item, value["Message"], source, arrival)
    return True


def _s3_test_event(item: BatchItem, value: dict[str, Any], source: SourceRef, arrival: float) -> bool:
    # NOTE: S3 sends {"Service": "Amazon S3", "Event": "s3:TestEvent", ...} when a notification is configured.
    if value.get("Event") != "s3:TestEvent":
        return False
    item.ignored = "s3:TestEvent"
    return True


def _s3_notification(item: BatchItem, value: dict[str, Any], source: SourceRef, arrival: float) -> bool:
    records = value.get("Records")
    if not isinstance(records, list) or not records or not all(_is_s3_record(r) for r in records):
        return False
    item.objects.extend(_objects_from_s3_records(records))
    if not item.objects:
        item.ignored = "S3 event without ObjectCreated records"
    return True


def _eventbridge_object_created(item: BatchItem, value: dict[str, Any], source: SourceRef, arrival: float) -> bool:
    if value.get("source") != "aws.s3" or "detail" not in value:
        return False
    if value.get("detail-type") != "Object Created":
        item.ignored = f"EventBridge S3 event {value.get('detail-type')!r}"
        return True
    detail = value["detail"]
    s3_object = detail["object"]
    # NOTE: assumed URL-encoded like S3 event notifications (unverified for EventBridge): unquote_plus leaves
    # keys without '%' and '+' unchanged either way.
    item.objects.append(
        ObjectRef(
            bucket=detail["bucket"]["name"],
            key=unquote_plus(s3_object["key"]),
            version_id=s3_object.get("version-id"),
            etag=s3_object.get("etag"),
            event_time=_epoch(value.get("time")),
        )
    )
    return True


def _continuation(item: BatchItem, value: dict[str, Any], source: SourceRef, arrival: float) -> bool:
    continuation = value.get("continuation")
    if not isinstance(continuation, dict) or len(value) != 1:
        return False
    item.objects.append(continuation_ref(continuation))
    return True


def continuation_ref(continuation: Mapping[str, Any]) -> ObjectRef:
    """The :class:`ObjectRef` a continuation (the ``"continuation"`` member of :func:`continuation_body`'s JSON)
    names; raises KeyError / TypeError / ValueError when a member is missing or malformed."""
    offset = continuation.get("offset")
    part = continuation.get("range")
    return ObjectRef(
        bucket=continuation["bucket"],
        key=continuation["key"],
        version_id=continuation.get("versionId"),
        etag=None if continuation.get("versionId") else continuation.get("etag"),
        event_time=float(continuation["eventTime"]),
        start_line=int(continuation["line"]),
        start_offset=None if offset is None else int(offset),
        hops=int(continuation.get("hops", 0)),
        skip_lines=tuple((int(first), int(last)) for first, last in continuation.get("skip", ())),
        part=None if part is None else ByteRange(int(part["index"]), int(part["count"]), int(part["end"])),
        progress=continuation.get("progress"),
    )


_ENVELOPES: tuple[Callable[[BatchItem, dict[str, Any], SourceRef, float], bool], ...] = (
    _continuation,
    _sns_envelope,
    _s3_test_event,
    _s3_notification,
    _eventbridge_object_created,
)


def continuation_body(ref: ObjectRef) -> str:
    """The message that reads ``ref`` from its start position in a later invocation (a continuation or a range).

    Parsed back by :func:`decode_event` into the same :class:`ObjectRef`. Position, hop count, lines to skip and
    the range travel in the body; progress counts are those of the invocations before it.
    """
    continuation: dict[str, Any] = {"bucket": ref.bucket, "key": ref.key}
    if ref.version_id:
        continuation["versionId"] = ref.version_id
    elif ref.etag:
        continuation["etag"] = ref.etag
    continuation["line"] = ref.start_line
    if ref.start_offset is not None:
        continuation["offset"] = ref.start_offset
    continuation["eventTime"] = ref.event_time
    continuation["hops"] = ref.hops
    if ref.skip_lines:
        continuation["skip"] = [list(pair) for pair in ref.skip_lines]
    if ref.part is not None:
        continuation["range"] = {"index": ref.part.index, "count": ref.part.count, "end": ref.part.end}
    if ref.progress:
        continuation["progress"] = dict(ref.progress)
    return json.dumps({"continuation": continuation}, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------- S3


def _is_s3_record(raw: Any) -> bool:
    return isinstance(raw, Mapping) and raw.get("eventSource") == S3 and isinstance(raw.get("s3"), Mapping)


def _objects_from_s3_records(records: list[Mapping[str, Any]]) -> Iterator[ObjectRef]:
    for raw in records:
        if not str(raw.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = raw["s3"]
        s3_object = s3["object"]
        yield ObjectRef(
            bucket=s3["bucket"]["name"],
            # NOTE: keys arrive URL-encoded ("red flower.jpg" -> "red+flower.jpg"), S3 notification docs.
            key=unquote_plus(s3_object["key"]),
            version_id=s3_object.get("versionId") or None,
            etag=s3_object.get("eTag") or None,
            event_time=_epoch(raw.get("eventTime")),
        )


def _s3_item(raw: Mapping[str, Any]) -> BatchItem:
    objects = list(_objects_from_s3_records([raw]))
    s3 = raw["s3"]
    item_id = f"s3://{s3['bucket']['name']}/{s3['object']['key']}"
    item = BatchItem(item_id=item_id, event_source=S3, objects=objects)
    if not objects:
        item.ignored = f"S3 event {raw.get('eventName')!r}"
    return item


_DECODERS: dict[str, Callable[[Mapping[str, Any]], BatchItem]] = {
    KINESIS: _kinesis_item,
    SQS: _sqs_item,
    S3: _s3_item,
}


# ---------------------------------------------------------------------------------------------------- payloads


def _records_from_payload(payload: bytes, item_id: str, source: SourceRef, arrival: float) -> list[Record]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        rejection = Rejection("invalid_encoding", "the record is not UTF-8 text")
        return [Record(item_id, source, payload.decode("utf-8", "replace"), arrival, decode_error=rejection)]
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return [_undecodable(text, item_id, source, arrival)]
    return _records_from_value(value, item_id, source, arrival)


def _records_from_value(value: Any, item_id: str, source: SourceRef, arrival: float) -> list[Record]:
    """One record per JSON object; a JSON array holds one record per element (``index`` names it)."""
    if isinstance(value, list):
        return [
            _record(element, item_id, _with_index(source, index), arrival) for index, element in enumerate(value)
        ]
    return [_record(value, item_id, source, arrival)]


def _record(value: Any, item_id: str, source: SourceRef, arrival: float) -> Record:
    if isinstance(value, dict):
        return Record(item_id, source, value, arrival)
    rejection = Rejection("not_an_object", f"a record must be a JSON object, got a JSON {_json_type(value)}")
    return Record(item_id, source, value, arrival, decode_error=rejection)


def _undecodable(text: str, item_id: str, source: SourceRef, arrival: float) -> Record:
    rejection = Rejection("invalid_json", "the record is not valid JSON")
    return Record(item_id, source, text, arrival, decode_error=rejection)


def _note_if_empty(item: BatchItem) -> BatchItem:
    """Name why an item that holds no record and no object has nothing to ingest (an empty JSON array)."""
    # NOTE: without this the item would be acknowledged without a log line; an empty array holds no record, so
    # nothing is lost, but producers sending them should be able to see it.
    if not item.records and not item.objects and item.ignored is None:
        item.ignored = "the body is an empty JSON array: it holds no record"
    return item


def _with_index(source: SourceRef, index: int) -> SourceRef:
    return SourceRef(
        event_source=source.event_source,
        arn=source.arn,
        sequence_number=source.sequence_number,
        sub_sequence_number=source.sub_sequence_number,
        message_id=source.message_id,
        index=index,
    )


def _json_type(value: Any) -> str:
    names = {str: "string", bool: "boolean", int: "number", float: "number", type(None): "null", list: "array"}
    return names.get(type(value), type(value).__name__)


def _epoch(iso_time: Any) -> float:
    """Epoch seconds of an S3/EventBridge ``eventTime`` such as ``2026-11-29T19:45:00.123Z`` (0.0 if absent)."""
    if not isinstance(iso_time, str) or not iso_time:
        return 0.0
    parsed = datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
