"""The values that flow through the pipeline, in the order they appear.

``Record`` (decoded from a source) -> ``Prepared`` (validated, wire-ready element) -> ``RecordOutcome`` (one
per record) -> batch response. A record that cannot go on becomes a ``Rejection`` (set aside with its reason) or
a failure (reported to Lambda for retry); nothing leaves the pipeline any other way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

KINESIS = "aws:kinesis"
SQS = "aws:sqs"
S3 = "aws:s3"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where one record came from. Field names map onto the reject message's ``source`` object."""

    event_source: str
    arn: str | None = None
    sequence_number: str | None = None
    sub_sequence_number: int | None = None
    """Position of a user record inside a KPL-aggregated Kinesis record."""
    message_id: str | None = None
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    etag: str | None = None
    line: int | None = None
    """Line number in an S3 object; the CSV header is line 1."""
    index: int | None = None
    """Position inside a JSON array body (a Kinesis record or SQS message holding several records)."""

    def as_reject_source(self) -> dict[str, Any]:
        """The reject message's ``source`` object: keys that do not apply are omitted."""
        pairs = (
            ("eventSource", self.event_source),
            ("arn", self.arn),
            ("sequenceNumber", self.sequence_number),
            ("subSequenceNumber", self.sub_sequence_number),
            ("messageId", self.message_id),
            ("bucket", self.bucket),
            ("key", self.key),
            ("versionId", self.version_id),
            ("etag", None if self.version_id else self.etag),
            ("line", self.line),
            ("index", self.index),
        )
        return {name: value for name, value in pairs if value is not None}

    def identity(self) -> str:
        """A string naming this delivery of this record, identical on every retry of the same delivery.

        S3 rows are named by object version and line, never by the SQS message that announced the object:
        S3 may notify twice, and both notifications must yield the same identity.
        """
        if self.bucket is not None:
            parts: tuple[object, ...] = ("s3", self.bucket, self.key, self.version_id or self.etag, self.line)
        elif self.sequence_number is not None:
            parts = ("kinesis", self.arn, self.sequence_number, self.sub_sequence_number, self.index)
        else:
            parts = ("sqs", self.arn, self.message_id, self.index)
        return "\x1f".join("" if p is None else str(p) for p in parts)

    def derived_event_id(self) -> str:
        """Deterministic eventId from :meth:`identity` (64 hex chars, within the 256-character limit)."""
        return hashlib.sha256(self.identity().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is set aside: a stable machine ``code`` and a sentence naming the field and the rule."""

    code: str
    reason: str


class RecordRejected(Exception):
    """Raised by normalisation or validation of one record; carries the :class:`Rejection`."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.rejection = Rejection(code, reason)


@dataclass(slots=True)
class Record:
    """One input record as received, before normalisation."""

    item_id: str
    """Identifier of the batch item it belongs to (SQS messageId, Kinesis sequenceNumber, or the S3 object
    for direct S3 invocations); a failure of this record reports this identifier."""
    source: SourceRef
    value: Any
    """The decoded JSON value, a CSV row as a header->value dict, or the raw text when it is not JSON."""
    arrival_time: float
    """Epoch seconds the source received it: used when the record carries no timestamp of its own."""
    decode_error: Rejection | None = None
    """Set when the source could not decode the record (e.g. invalid JSON); it is rejected as such."""
    group_id: str | None = None
    """SQS FIFO message group, for ordering."""


@dataclass(slots=True)
class Prepared:
    """A validated record: one wire-ready element of the entity's API list."""

    record: Record
    element: dict[str, Any]
    """Element for the request list (``Event``, ``Item`` ...); ``properties`` already a JSON string,
    timestamps as epoch seconds (float)."""
    session_id: str | None = None
    """PutEvents request-level ``sessionId`` (None for other entities)."""
    user_id: str | None = None
    """PutEvents request-level ``userId`` (None for other entities or anonymous events)."""
    entity_id: str | None = None
    """``itemId`` / ``userId`` / ``actionId`` of upserted entities, for keeping only the latest version."""


class Fate(StrEnum):
    """Where one record ended in an invocation."""

    DELIVERED = "delivered"
    """Its call returned 200."""
    SUPERSEDED = "superseded"
    """An upsert not sent because a later record of the same id was, and that one was delivered."""
    REJECTED = "rejected"
    """Set aside with its reason (rejects queue): invalid locally, or refused by a service that accepts others."""
    FAILED = "failed"
    """Reported to Lambda for retry: its batch item comes back."""


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What happened to one record: its fate, and why when it was not delivered.

    ``code`` is the rejection code of a REJECTED record (``invalid_json``, ``service_rejected`` ...).
    ``retryable`` tells a FAILED record a later attempt in the same invocation may cure (throttling, 5xx,
    connection errors, timeouts) from one that only Lambda's retry can (deadline, configuration).
    """

    record: Record
    fate: Fate
    reason: str = ""
    code: str | None = None
    retryable: bool = False

    @classmethod
    def delivered(cls, record: Record) -> RecordOutcome:
        return cls(record, Fate.DELIVERED)

    @classmethod
    def rejected(cls, record: Record, rejection: Rejection) -> RecordOutcome:
        return cls(record, Fate.REJECTED, rejection.reason, rejection.code)

    @classmethod
    def failed(cls, record: Record, reason: str, *, retryable: bool = False) -> RecordOutcome:
        return cls(record, Fate.FAILED, reason, retryable=retryable)

    @property
    def rejection(self) -> Rejection:
        """The rejection of a REJECTED record (what the rejects queue receives)."""
        assert self.fate is Fate.REJECTED and self.code is not None
        return Rejection(self.code, self.reason)

    @property
    def handled(self) -> bool:
        """True when nothing is left to do: delivered, superseded by a delivered record, or set aside."""
        return self.fate is not Fate.FAILED
