"""What a dataset import job does with its input: read CSV from S3, check it as the service would, convert rows.

The service reads the CSV at the job's ``dataLocation`` (one object, or every object under a folder), checks the
header against the dataset's schema and each row against the column types, and loads the rows. This module does
the same against any S3 endpoint (moto in tests and the demo) and returns the elements in the shape the
streaming operations store them, so ``dump`` shows imported and streamed records side by side.

Failure reasons follow the service's kinds: access ("Insufficient privileges for accessing data in Amazon S3"),
unreadable or missing input, a header that does not match the schema, a row that does not fit a column, too few
records for an incremental interactions import.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

ACCESS_DENIED = (
    "Insufficient privileges for accessing data in Amazon S3. Grant the service role s3:GetObject and "
    "s3:ListBucket on {location} and add a bucket policy that allows the personalize.amazonaws.com principal "
    "the same actions."
)
MIN_INCREMENTAL_INTERACTIONS = 1000
"""NOTE: developer guide: appending interactions or action interactions with an import job needs at least
1,000 new records."""

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "INTERACTIONS": ("USER_ID", "ITEM_ID", "TIMESTAMP"),
    "ACTION_INTERACTIONS": ("USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE"),
    "ITEMS": ("ITEM_ID",),
    "USERS": ("USER_ID",),
    "ACTIONS": ("ACTION_ID",),
}
"""Columns every dataset of a type has (the service's required schema fields)."""
STANDARD_COLUMNS: dict[str, tuple[str, ...]] = {
    "INTERACTIONS": (
        "USER_ID",
        "ITEM_ID",
        "TIMESTAMP",
        "EVENT_TYPE",
        "EVENT_VALUE",
        "IMPRESSION",
        "RECOMMENDATION_ID",
        "EVENT_ID",
        "SESSION_ID",
    ),
    "ACTION_INTERACTIONS": (
        "USER_ID",
        "ACTION_ID",
        "TIMESTAMP",
        "EVENT_TYPE",
        "IMPRESSION",
        "RECOMMENDATION_ID",
        "EVENT_ID",
        "SESSION_ID",
    ),
    "ITEMS": ("ITEM_ID", "CREATION_TIMESTAMP"),
    "USERS": ("USER_ID",),
    "ACTIONS": ("ACTION_ID", "CREATION_TIMESTAMP"),
}
"""Columns a dataset of a type may have besides its schema's own metadata fields."""
_MEMBER_OF_COLUMN = {
    "USER_ID": "userId",
    "ITEM_ID": "itemId",
    "ACTION_ID": "actionId",
    "EVENT_TYPE": "eventType",
    "EVENT_VALUE": "eventValue",
    "IMPRESSION": "impression",
    "RECOMMENDATION_ID": "recommendationId",
    "EVENT_ID": "eventId",
    "SESSION_ID": "sessionId",
}
_NUMERIC_TYPES = {"int": int, "long": int, "float": float, "double": float}


class ImportFailed(Exception):
    """The job ends CREATE FAILED with this ``failureReason``."""


@dataclass(frozen=True)
class Imported:
    """Rows of a finished job, as elements of the streaming operation and its request-level members."""

    rows: list[tuple[dict[str, Any], dict[str, Any]]]
    """(request members, element) per row, in file order."""


def parse_location(location: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a key ending in ``/`` names a folder."""
    if not location.startswith("s3://") or "/" not in location[5:]:
        raise ImportFailed(f"Invalid S3 location {location}: expected s3://<bucket>/<key or folder/>")
    bucket, _, key = location[5:].partition("/")
    return bucket, key


def read_import(
    s3: Any, location: str, dataset_type: str, schema: Mapping[str, Any] | None, incremental: bool
) -> Imported:
    """Read and check every CSV object at ``location``; return its rows converted for the store.

    Raises
    ------
    ImportFailed
        with a reason of the service's kind.
    """
    bucket, key = parse_location(location)
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for object_key in _object_keys(s3, bucket, key, location):
        text = _read_text(s3, bucket, object_key, location)
        rows.extend(_rows(text, f"s3://{bucket}/{object_key}", dataset_type, schema))
    if not rows:
        raise ImportFailed(f"The input data at {location} is empty: no records after the header.")
    interactions = dataset_type in ("INTERACTIONS", "ACTION_INTERACTIONS")
    if incremental and interactions and len(rows) < MIN_INCREMENTAL_INTERACTIONS:
        raise ImportFailed(
            f"An incremental import of {dataset_type.lower().replace('_', ' ')} needs at least "
            f"{MIN_INCREMENTAL_INTERACTIONS} records; {location} has {len(rows)}."
        )
    return Imported(rows)


def _object_keys(s3: Any, bucket: str, key: str, location: str) -> list[str]:
    if not key.endswith("/"):
        return [key]
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        keys = [entry["Key"] for page in pages for entry in page.get("Contents", []) if entry["Key"] != key]
    except ClientError as exc:
        raise _read_failure(exc, location) from exc
    if not keys:
        raise ImportFailed(f"No input data found at {location}.")
    return sorted(keys)


def _read_text(s3: Any, bucket: str, key: str, location: str) -> str:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        raise _read_failure(exc, location) from exc
    except BotoCoreError as exc:
        raise ImportFailed(f"Failed to read the input data at {location}: {exc}") from exc
    try:
        return str(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"The input data at s3://{bucket}/{key} is not UTF-8 (byte {exc.start}).") from exc


def _read_failure(exc: ClientError, location: str) -> ImportFailed:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in ("AccessDenied", "403"):
        return ImportFailed(ACCESS_DENIED.format(location=location))
    if code in ("NoSuchKey", "404", "NoSuchBucket"):
        return ImportFailed(f"No input data found at {location} ({code}).")
    return ImportFailed(f"Failed to read the input data at {location}: {code}")


def _rows(
    text: str, where: str, dataset_type: str, schema: Mapping[str, Any] | None
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    _check_header(header, where, dataset_type, schema)
    types = _field_types(schema)
    for cells in reader:
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        line = reader.line_num
        if len(cells) != len(header):
            raise ImportFailed(f"{where} line {line}: {len(cells)} values for {len(header)} columns.")
        yield _convert(dict(zip(header, cells, strict=True)), dataset_type, types, f"{where} line {line}")


def _check_header(header: Sequence[str], where: str, dataset_type: str, schema: Mapping[str, Any] | None) -> None:
    missing = [name for name in REQUIRED_COLUMNS[dataset_type] if name not in header]
    if missing:
        raise ImportFailed(f"Input CSV {where} is missing the following columns: [{', '.join(missing)}]")
    if schema is None:
        return
    allowed = set(STANDARD_COLUMNS[dataset_type]) | {str(f.get("name")) for f in schema.get("fields", [])}
    unknown = [name for name in header if name not in allowed]
    if unknown:
        raise ImportFailed(
            f"Input CSV {where} header does not match the dataset's schema: unknown column(s) "
            f"[{', '.join(unknown)}]"
        )


def _field_types(schema: Mapping[str, Any] | None) -> dict[str, str]:
    types: dict[str, str] = {"TIMESTAMP": "long", "CREATION_TIMESTAMP": "long", "EVENT_VALUE": "float"}
    for raw in (schema or {}).get("fields", []):
        kind = raw.get("type")
        names = [kind] if isinstance(kind, str) else [k for k in kind or [] if isinstance(k, str)]
        numeric = next((name for name in names if name in _NUMERIC_TYPES), None)
        if numeric is not None:
            types[str(raw.get("name"))] = numeric
    return types


def _convert(
    row: dict[str, str], dataset_type: str, types: Mapping[str, str], where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    request: dict[str, Any] = {}
    element: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for column, raw in row.items():
        if raw == "":
            continue
        value: Any = raw
        kind = types.get(column)
        if kind is not None:
            try:
                value = _NUMERIC_TYPES[kind](float(raw) if kind in ("int", "long") else raw)
            except ValueError:
                raise ImportFailed(f"{where}: column {column} must be a {kind}, got a non-numeric value") from None
        if column == "TIMESTAMP":
            element["sentAt" if dataset_type == "INTERACTIONS" else "timestamp"] = value
        elif column == "IMPRESSION":
            element["impression"] = raw.split("|")
        elif column in _MEMBER_OF_COLUMN and column in STANDARD_COLUMNS[dataset_type]:
            member = _MEMBER_OF_COLUMN[column]
            # NOTE: PutEvents carries userId and sessionId on the request, not the event: stored the same way.
            if dataset_type == "INTERACTIONS" and member in ("userId", "sessionId"):
                request[member] = value
            else:
                element[member] = value
        else:
            properties[_camel(column)] = value
    if properties:
        element["properties"] = json.dumps(properties, separators=(",", ":"))
    return request, element


def _camel(column: str) -> str:
    first, *rest = column.lower().split("_")
    return first + "".join(part.capitalize() for part in rest)
