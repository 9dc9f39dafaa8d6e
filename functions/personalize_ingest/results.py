"""The result file of a processed S3 object: ``results/<object key>.result.json`` in the same bucket.

Producers read it to check their files: how many rows were delivered, rejected and failed, and the first reject
reasons with their line numbers. Counts of earlier invocations of the same object (continuations) are carried in
the continuation message and added up, so the file written last covers the whole object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from personalize_ingest.contract import RESULTS_PREFIX
from personalize_ingest.model import Rejection

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from personalize_ingest.sources import ObjectRef

MAX_REJECT_SAMPLES = 10

COMPLETE = "complete"
"""Every row handled (delivered or rejected)."""
CONTINUED = "continued"
"""Read up to the deadline; a continuation message resumes at ``nextLine``."""
INCOMPLETE = "incomplete"
"""Some rows failed; the object will be read again when its message or event is retried."""
UNREADABLE = "unreadable"
"""The object could not be read as rows at all (see ``error``)."""


def result_key(object_key: str) -> str:
    """``items/a.csv`` -> ``results/items/a.csv.result.json``."""
    return f"{RESULTS_PREFIX}{object_key}.result.json"


@dataclass(slots=True)
class ObjectResult:
    """Counts for one object, accumulated while its rows are processed."""

    start_line: int
    delivered: int = 0
    superseded: int = 0
    rejected: int = 0
    failed: int = 0
    last_line: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def resuming(cls, start_line: int, progress: Mapping[str, Any] | None) -> ObjectResult:
        """Start counting at ``start_line``, on top of the counts a continuation carried."""
        result = cls(start_line=start_line)
        if progress:
            result.delivered = int(progress.get("delivered", 0))
            result.superseded = int(progress.get("superseded", 0))
            result.rejected = int(progress.get("rejected", 0))
            result.rejects = list(progress.get("rejects", []))[:MAX_REJECT_SAMPLES]
        return result

    def add_reject(self, line: int | None, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECT_SAMPLES:
            self.rejects.append({"line": line, "code": rejection.code, "reason": rejection.reason})

    def progress(self) -> dict[str, Any]:
        """Counts to carry in a continuation message."""
        return {
            "delivered": self.delivered,
            "superseded": self.superseded,
            "rejected": self.rejected,
            "rejects": self.rejects,
        }

    def document(self, ref: ObjectRef, status: str, next_line: int | None = None) -> dict[str, Any]:
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
            "rejects": self.rejects,
        }
        if next_line is not None:
            document["nextLine"] = next_line
        if self.error is not None:
            document["error"] = self.error
        return document


def write_result(client: S3Client, ref: ObjectRef, document: Mapping[str, Any]) -> None:
    """Write the result document next to the object under ``results/``."""
    client.put_object(
        Bucket=ref.bucket,
        Key=result_key(ref.key),
        Body=json.dumps(document, indent=2).encode(),
        ContentType="application/json",
    )
