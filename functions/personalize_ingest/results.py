"""The result file of a processed S3 object: ``results/<object key>.result.json`` in the same bucket.

Producers read it to check their files: how many rows were delivered, rejected and failed, the reject counts per
reason code with the first examples and their line numbers, and why reading stopped if it did. Counts of earlier
invocations of the same object (continuations) are carried in the continuation message and added up, so the file
written last covers the whole object.

A fanned-out object (read as several byte ranges at once) keeps one part file per range under
``results/<object key>.ranges/<version>/``; each range writes only its own part, so concurrent ranges cannot lose
each other's counts. Whoever writes the last part adds the parts up into the result file (S3 is strongly
consistent for a write followed by a listing, so of two ranges finishing together at least one sees both parts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from personalize_ingest.contract import RESULTS_PREFIX
from personalize_ingest.model import Rejection

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from personalize_ingest.s3objects import Position
    from personalize_ingest.sources import ObjectRef

MAX_REJECT_SAMPLES = 10
MAX_REJECT_CODES = 50
"""Reject codes counted per object; codes are a small fixed set, this only bounds a pathological producer."""

COMPLETE = "complete"
"""Every row handled (delivered or rejected)."""
CONTINUED = "continued"
"""Read up to the deadline; a continuation message resumes at ``nextLine`` (byte ``nextOffset``)."""
INCOMPLETE = "incomplete"
"""Some rows failed; the object will be read again when its message or event is retried."""
UNREADABLE = "unreadable"
"""The object could not be read as rows at all (see ``error``)."""
STOPPED = "stopped"
"""Reading stopped without progress or after too many continuations (see ``error``); the message is reported
failed, so the queue's maxReceiveCount and dead-letter queue apply."""
CHANGED = "changed"
"""The object was replaced or deleted while it was being read; rows not read yet were not ingested (see
``error``); the notification of the new version reads it anew."""
IN_PROGRESS = "in_progress"
"""The object was split into ``ranges`` byte ranges read at once; complete when every range has reported."""
FINAL_STATUSES = frozenset({COMPLETE, INCOMPLETE, UNREADABLE, STOPPED, CHANGED})
_WORST_FIRST = (CHANGED, STOPPED, UNREADABLE, INCOMPLETE, IN_PROGRESS, CONTINUED, COMPLETE)
"""The status of a fanned-out object: that of its range that fared worst, in this order."""


def result_key(object_key: str) -> str:
    """``items/a.csv`` -> ``results/items/a.csv.result.json``."""
    return f"{RESULTS_PREFIX}{object_key}.result.json"


def ranges_prefix(ref: ObjectRef) -> str:
    """Folder of the part files of one version of a fanned-out object."""
    version = hashlib.sha256(f"{ref.version_id or ''}|{ref.etag or ''}".encode()).hexdigest()[:16]
    return f"{RESULTS_PREFIX}{ref.key}.ranges/{version}/"


@dataclass(slots=True)
class ObjectResult:
    """Counts for one object (or one range of it), accumulated while its rows are processed."""

    start_line: int
    delivered: int = 0
    superseded: int = 0
    rejected: int = 0
    failed: int = 0
    last_line: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    reject_codes: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def resuming(cls, start_line: int, progress: Mapping[str, Any] | None) -> ObjectResult:
        """Start counting at ``start_line``, on top of the counts a continuation carried."""
        result = cls(start_line=start_line)
        if progress:
            result.delivered = int(progress.get("delivered", 0))
            result.superseded = int(progress.get("superseded", 0))
            result.rejected = int(progress.get("rejected", 0))
            result.last_line = int(progress.get("lastLine", 0))
            result.rejects = list(progress.get("rejects", []))[:MAX_REJECT_SAMPLES]
            result.reject_codes = {str(k): int(v) for k, v in dict(progress.get("rejectCodes", {})).items()}
        return result

    @property
    def handled(self) -> int:
        return self.delivered + self.superseded + self.rejected

    def add_reject(self, line: int | None, rejection: Rejection) -> None:
        self.rejected += 1
        if rejection.code in self.reject_codes or len(self.reject_codes) < MAX_REJECT_CODES:
            self.reject_codes[rejection.code] = self.reject_codes.get(rejection.code, 0) + 1
        if len(self.rejects) < MAX_REJECT_SAMPLES:
            self.rejects.append({"line": line, "code": rejection.code, "reason": rejection.reason})

    def progress(self) -> dict[str, Any]:
        """Counts to carry in a continuation message (bounded: counts plus the first examples)."""
        return {
            "delivered": self.delivered,
            "superseded": self.superseded,
            "rejected": self.rejected,
            "lastLine": self.last_line,
            "rejectCodes": self.reject_codes,
            "rejects": self.rejects,
        }

    def document(
        self, ref: ObjectRef, status: str, resume: Position | None = None, **extra: Any
    ) -> dict[str, Any]:
        """The result file (or a range's part file) of ``ref`` in ``status``; ``resume`` where it continues."""
        document: dict[str, Any] = {
            "bucket": ref.bucket,
            "key": ref.key,
            "versionId": ref.version_id,
            "etag": ref.etag,
            "status": status,
            "delivered": self.delivered + self.superseded,
            "superseded": self.superseded,
            "rejected": self.rejected,
            "failed": self.failed,
            "lastLine": self.last_line,
            "rejectCodes": self.reject_codes,
            "rejects": self.rejects,
            "hops": ref.hops,
        }
        if resume is not None:
            document["nextLine"] = resume.line
            document["nextOffset"] = resume.offset
        if ref.part is not None:
            document["range"] = {"index": ref.part.index, "count": ref.part.count, "end": ref.part.end}
        if self.error is not None:
            document["error"] = self.error
        document.update(extra)
        return document


def write_result(client: S3Client, ref: ObjectRef, document: Mapping[str, Any]) -> None:
    """Write the result document next to the object under ``results/``."""
    _put_json(client, ref.bucket, result_key(ref.key), document)


def write_part(client: S3Client, ref: ObjectRef, document: Mapping[str, Any]) -> None:
    """Write the part file of the range ``ref`` reads (``ref.part`` must be set)."""
    assert ref.part is not None
    _put_json(client, ref.bucket, f"{ranges_prefix(ref)}{ref.part.index:06d}.json", document)


def write_report(client: S3Client, ref: ObjectRef, document: Mapping[str, Any]) -> dict[str, Any] | None:
    """Write ``document`` where ``ref``'s read reports: the result file, or its range's part file.

    A range that reached a final status also tries to add the parts up (:func:`summarise_parts`); the summary
    written is returned (None otherwise).
    """
    if ref.part is None:
        write_result(client, ref, document)
        return None
    write_part(client, ref, document)
    if document["status"] not in FINAL_STATUSES:
        return None
    return summarise_parts(client, ref)


def summarise_parts(client: S3Client, ref: ObjectRef) -> dict[str, Any] | None:
    """Add the part files of ``ref``'s object up into its result file once every range wrote a final part.

    Returns the summary written, or None while a range has not reported or is still continuing.
    """
    assert ref.part is not None
    prefix = ranges_prefix(ref)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=ref.bucket, Prefix=prefix):
        keys.extend(entry["Key"] for entry in page.get("Contents", []))
    if len(keys) < ref.part.count:
        return None
    parts = [json.loads(client.get_object(Bucket=ref.bucket, Key=key)["Body"].read()) for key in sorted(keys)]
    if any(part.get("status") not in FINAL_STATUSES for part in parts):
        return None
    summary = _summary(ref, parts)
    _put_json(client, ref.bucket, result_key(ref.key), summary)
    return summary


def _summary(ref: ObjectRef, parts: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = {part["status"] for part in parts}
    status = next(s for s in _WORST_FIRST if s in statuses)
    codes: dict[str, int] = {}
    rejects: list[dict[str, Any]] = []
    for part in parts:
        for code, count in part.get("rejectCodes", {}).items():
            codes[code] = codes.get(code, 0) + int(count)
        rejects.extend(part.get("rejects", []))
    summary: dict[str, Any] = {
        "bucket": ref.bucket,
        "key": ref.key,
        "versionId": ref.version_id,
        "etag": ref.etag,
        "status": status,
        "ranges": len(parts),
        "delivered": sum(int(part["delivered"]) for part in parts),
        "superseded": sum(int(part["superseded"]) for part in parts),
        "rejected": sum(int(part["rejected"]) for part in parts),
        "failed": sum(int(part["failed"]) for part in parts),
        "lastLine": max(int(part["lastLine"]) for part in parts),
        "rejectCodes": codes,
        "rejects": rejects[:MAX_REJECT_SAMPLES],
        "hops": sum(int(part.get("hops", 0)) for part in parts),
    }
    errors = [f"range {part['range']['index']}: {part['error']}" for part in parts if part.get("error")]
    if errors:
        summary["error"] = "; ".join(errors[:MAX_REJECT_SAMPLES])
    return summary


def _put_json(client: S3Client, bucket: str, key: str, document: Mapping[str, Any]) -> None:
    client.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document, indent=2).encode(), ContentType="application/json"
    )
