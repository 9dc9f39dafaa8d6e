"""Which path an announced S3 object takes: a dataset import job (bulk) or the streaming Put* calls.

Settings come from the function's environment (the stack sets them from ``bulkImport`` in cdk.json):

| variable | default | meaning |
|---|---|---|
| ``BULK_IMPORT_ENABLED`` | ``false`` | the import route is on for this entity |
| ``BULK_IMPORT_MIN_ROWS`` | 60000 | files estimated at this many rows or more take the import route |
| ``BULK_IMPORT_MIN_BYTES`` | unset | files of this size or more take the import route (either threshold) |
| ``BULK_IMPORT_DATASET_ARN`` | ``PERSONALIZE_DATASET_ARN`` | dataset the jobs load (required for interactions) |
| ``BULK_IMPORT_ROLE_ARN`` | required when enabled | service role Personalize assumes to read the bucket |
| ``BULK_IMPORT_SAMPLE_ROWS`` | 1000 | rows checked with the streaming validation before a job starts |
| ``BULK_IMPORT_WAIT_SECONDS`` | 300 | delay before a file retries when 5 import jobs are already running |

The decision, in order (the first that applies wins):

1. the route is off -> stream;
2. the key is under ``<entity prefix>stream/`` -> stream (a producer's explicit choice);
3. the object is JSON Lines or gzip -> stream (import jobs read plain CSV only; no conversion is attempted, so
   memory and time stay those of the streaming path);
4. an interactions or action interactions file estimated below 1,000 rows -> stream (an incremental import
   needs at least 1,000 records), even under ``import/``;
5. the key is under ``<entity prefix>import/`` -> import (explicit choice);
6. estimated rows >= ``BULK_IMPORT_MIN_ROWS``, or size >= ``BULK_IMPORT_MIN_BYTES`` -> import; else stream.

Rows are estimated from one ranged read of the object's first 64 KiB: exact when the object fits in it, otherwise
the object's size divided by the mean length of the complete lines read, minus the header.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from personalize_ingest import contract
from personalize_ingest.config import ConfigurationError
from personalize_ingest.entities import Entity

ENABLED_VARIABLE = contract.BULK_IMPORT_ENABLED
MIN_ROWS_VARIABLE = contract.BULK_IMPORT_MIN_ROWS
MIN_BYTES_VARIABLE = contract.BULK_IMPORT_MIN_BYTES
DATASET_ARN_VARIABLE = contract.BULK_IMPORT_DATASET_ARN
ROLE_ARN_VARIABLE = contract.BULK_IMPORT_ROLE_ARN
SAMPLE_ROWS_VARIABLE = contract.BULK_IMPORT_SAMPLE_ROWS
WAIT_SECONDS_VARIABLE = contract.BULK_IMPORT_WAIT_SECONDS

DEFAULT_MIN_ROWS = 60_000
"""NOTE: PutItems/PutUsers/PutActions allow 10 calls of 10 records per second: 60,000 rows stream in 10 minutes,
about what an import job takes to start and finish; larger files are faster through an import."""
DEFAULT_SAMPLE_ROWS = 1000
DEFAULT_WAIT_SECONDS = 300
MAX_SQS_DELAY_SECONDS = 900
MIN_INCREMENTAL_INTERACTIONS = 1000
"""NOTE: developer guide: appending interactions or action interactions with an import job needs at least 1,000
new records."""
INTERACTION_DATASET_TYPES = {"events": "INTERACTIONS", "action_interactions": "ACTION_INTERACTIONS"}
FORCE_IMPORT_PREFIX = "import/"
FORCE_STREAM_PREFIX = "stream/"
PROBE_BYTES = 64 * 1024
_NON_CSV_SUFFIXES = (".jsonl", ".ndjson", ".json", ".gz", ".gzip")
_ROLE_ARN = re.compile(r"^arn:[a-z\d-]+:iam::\d{12}:role/[\w+=,.@/-]+$")
_DATASET_ARN = re.compile(r"^arn:[a-z\d-]+:personalize:[a-z\d-]+:\d{12}:dataset/[^/]+/(?P<type>[A-Z_]+)$")

IMPORT = "import"
STREAM = "stream"


@dataclass(frozen=True, slots=True)
class BulkImportSettings:
    """The import route's settings for one entity (None from :meth:`from_env` when the route is off)."""

    dataset_arn: str
    role_arn: str
    min_rows: int
    min_bytes: int | None
    sample_rows: int
    wait_seconds: int

    @classmethod
    def from_env(cls, entity: Entity, environ: Mapping[str, str] | None = None) -> BulkImportSettings | None:
        """Read the settings; None when ``BULK_IMPORT_ENABLED`` is not true.

        Raises
        ------
        ConfigurationError
            naming the variable that is missing or malformed.
        """
        env = os.environ if environ is None else environ
        enabled = env.get(ENABLED_VARIABLE, "").strip().lower()
        if enabled not in ("", "false", "true"):
            raise ConfigurationError(f"{ENABLED_VARIABLE} must be true or false, got {enabled!r}")
        if enabled != "true":
            return None
        dataset_type = INTERACTION_DATASET_TYPES.get(entity.name, entity.dataset_type)
        fallback = env.get(entity.target_variable, "") if entity.dataset_type is not None else ""
        dataset_arn = (env.get(DATASET_ARN_VARIABLE, "").strip() or fallback).strip()
        match = _DATASET_ARN.match(dataset_arn)
        if match is None or match.group("type") != dataset_type:
            raise ConfigurationError(
                f"{DATASET_ARN_VARIABLE} must be the ARN of the {dataset_type} dataset the import jobs load "
                f"(arn:aws:personalize:<region>:<account>:dataset/<group>/{dataset_type}), got {dataset_arn!r}"
            )
        role_arn = env.get(ROLE_ARN_VARIABLE, "").strip()
        if not _ROLE_ARN.match(role_arn):
            raise ConfigurationError(
                f"{ROLE_ARN_VARIABLE} must be the ARN of the role Personalize assumes to read the bucket, "
                f"got {role_arn!r}"
            )
        return cls(
            dataset_arn=dataset_arn,
            role_arn=role_arn,
            min_rows=_integer(env, MIN_ROWS_VARIABLE, DEFAULT_MIN_ROWS, 1),
            min_bytes=_integer(env, MIN_BYTES_VARIABLE, None, 1),
            sample_rows=_integer(env, SAMPLE_ROWS_VARIABLE, DEFAULT_SAMPLE_ROWS, 1),
            wait_seconds=min(_integer(env, WAIT_SECONDS_VARIABLE, DEFAULT_WAIT_SECONDS, 0), MAX_SQS_DELAY_SECONDS),
        )


@dataclass(frozen=True, slots=True)
class Probe:
    """What one ranged read of an object's start says about it."""

    size: int
    head: bytes
    """The first bytes of the object (at most ``PROBE_BYTES``)."""

    @property
    def estimated_rows(self) -> int:
        """Data rows (header excluded): counted when the whole object was read, else estimated."""
        if not self.head:
            return 0
        if len(self.head) >= self.size:
            lines = [line for line in self.head.splitlines() if line.strip()]
            return max(0, len(lines) - 1)
        complete = self.head[: self.head.rfind(b"\n") + 1]
        count = complete.count(b"\n")
        if count == 0:
            return 1
        return max(0, round(self.size / (len(complete) / count)) - 1)


@dataclass(frozen=True, slots=True)
class Route:
    """The path an object takes and why (the reason goes to logs and the result file)."""

    path: str
    reason: str
    estimated_rows: int | None = None


def decide(entity: Entity, settings: BulkImportSettings | None, key: str, probe: Probe | None) -> Route:
    """Pick the path of the object at ``key`` (``probe`` None when it was not read: the route is off)."""
    if settings is None or probe is None:
        return Route(STREAM, "the import route is off for this entity")
    relative = key[len(entity.s3_prefix) :] if key.startswith(entity.s3_prefix) else key
    if relative.startswith(FORCE_STREAM_PREFIX):
        return Route(STREAM, f"the key is under {entity.s3_prefix}{FORCE_STREAM_PREFIX}")
    if not _is_plain_csv(key, probe.head):
        return Route(STREAM, "import jobs read plain CSV only; JSON Lines and gzip objects are streamed")
    rows = probe.estimated_rows
    if entity.name in INTERACTION_DATASET_TYPES and rows < MIN_INCREMENTAL_INTERACTIONS:
        return Route(
            STREAM,
            f"an incremental import needs at least {MIN_INCREMENTAL_INTERACTIONS} records; about {rows} here",
            rows,
        )
    if relative.startswith(FORCE_IMPORT_PREFIX):
        return Route(IMPORT, f"the key is under {entity.s3_prefix}{FORCE_IMPORT_PREFIX}", rows)
    if rows >= settings.min_rows:
        return Route(IMPORT, f"about {rows} rows, at or above the {settings.min_rows}-row threshold", rows)
    if settings.min_bytes is not None and probe.size >= settings.min_bytes:
        return Route(IMPORT, f"{probe.size} bytes, at or above the {settings.min_bytes}-byte threshold", rows)
    return Route(STREAM, f"about {rows} rows, below the {settings.min_rows}-row threshold", rows)


def probe_object(s3: Any, bucket: str, key: str, version_id: str | None, etag: str | None) -> Probe:
    """Read the object's first ``PROBE_BYTES`` (the announced version) and its size, in one ranged GetObject.

    Raises botocore's ClientError as S3 answers it (NoSuchKey, PreconditionFailed ... for a vanished version).
    """
    request: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{PROBE_BYTES - 1}"}
    request.update(version_request(version_id, etag))
    try:
        response = s3.get_object(**request)
    except Exception as exc:
        # NOTE: S3 answers a range on an empty object with 416 InvalidRange: the object exists and is empty.
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvalidRange":
            return Probe(0, b"")
        raise
    body = response["Body"]
    try:
        head = body.read()
    finally:
        body.close()
    total = str(response.get("ContentRange", "")).rpartition("/")[2]
    size = int(total) if total.isdigit() else int(response.get("ContentLength", len(head)))
    return Probe(size, head)


def version_request(version_id: str | None, etag: str | None) -> dict[str, str]:
    """GetObject members that pin the announced version (VersionId, else If-Match on the ETag)."""
    if version_id:
        return {"VersionId": version_id}
    if etag:
        # NOTE: notifications carry the ETag unquoted; If-Match compares the quoted entity tag.
        return {"IfMatch": etag if etag.startswith('"') else f'"{etag}"'}
    return {}


def _is_plain_csv(key: str, head: bytes) -> bool:
    lowered = key.lower()
    if lowered.endswith(_NON_CSV_SUFFIXES) or head[:2] == b"\x1f\x8b":
        return False
    if lowered.endswith(".csv"):
        return True
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] not in (b"{", b"[", b"")


def _integer(env: Mapping[str, str], name: str, default: int | None, minimum: int) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigurationError(f"{name} must be an integer of at least {minimum}, got {raw!r}")
    return int(raw)
