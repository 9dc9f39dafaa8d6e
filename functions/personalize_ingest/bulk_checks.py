"""Checks a file must pass before an import job loads it: header, schema, and a sample of rows.

An import job fails as a whole on a bad header and loads nothing, hours after the file arrived; checking first
turns that into an immediate result file with line numbers. The header must name the dataset's columns in the
bulk layout (UPPER_SNAKE schema field names, the entity's required columns present) and, when the dataset has a
schema (DescribeDataset -> DescribeSchema, read once per container), only columns of that schema, with every
required field. A sample of the first rows goes through :func:`personalize_ingest.records.prepare`, the very
validation the streaming path applies to each record.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import IO, TYPE_CHECKING, Any

from personalize_ingest.entities import Entity
from personalize_ingest.model import Record, RecordRejected
from personalize_ingest.records import UPPER_SNAKE, prepare
from personalize_ingest.s3objects import ObjectFormatError, iter_rows

if TYPE_CHECKING:
    from personalize_ingest.schema import DatasetSchema

MAX_PROBLEMS = 10
ABSENT_EVENT_TYPE = "EVENT_TYPE-absent"
"""Stands in for the event type of sampled interactions rows that have none (never sent anywhere)."""
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("USER_ID", "ITEM_ID", "TIMESTAMP"),
    "action_interactions": ("USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE"),
    "items": ("ITEM_ID",),
    "users": ("USER_ID",),
    "actions": ("ACTION_ID",),
}
"""Columns every dataset of the entity's type has (required fields of the service's schemas)."""
STANDARD_COLUMNS: dict[str, frozenset[str]] = {
    "events": frozenset(
        REQUIRED_COLUMNS["events"]
        + ("EVENT_TYPE", "EVENT_VALUE", "IMPRESSION", "RECOMMENDATION_ID", "EVENT_ID", "SESSION_ID")
    ),
    "action_interactions": frozenset(
        REQUIRED_COLUMNS["action_interactions"] + ("IMPRESSION", "RECOMMENDATION_ID", "EVENT_ID", "SESSION_ID")
    ),
    "items": frozenset(("ITEM_ID", "CREATION_TIMESTAMP")),
    "users": frozenset(("USER_ID",)),
    "actions": frozenset(("ACTION_ID", "CREATION_TIMESTAMP")),
}
"""Reserved columns a dataset of the entity's type may have besides its metadata fields."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a file is not imported: the line (1 = header), a stable code and a sentence."""

    line: int
    code: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "reason": self.reason}


def check_header(entity: Entity, head: bytes, schema: Mapping[str, Any] | None) -> tuple[list[str], list[Problem]]:
    """Parse the header from the object's first bytes and check it; return (columns, problems)."""
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    first = text.split("\n", 1)[0]
    if not text.strip():
        return [], [Problem(1, "empty_file", "the file is empty: it needs a header row and at least one row")]
    try:
        columns = [name.strip() for name in next(csv.reader([first]))]
    except (csv.Error, StopIteration) as exc:
        return [], [Problem(1, "invalid_header", f"the header (line 1) is not valid CSV: {exc}")]
    problems: list[Problem] = []
    not_bulk = [name for name in columns if not UPPER_SNAKE.match(name)]
    if not_bulk:
        problems.append(
            Problem(
                1,
                "not_bulk_layout",
                f"the header (line 1) has column(s) {_names(not_bulk)} that are not UPPER_SNAKE schema field "
                "names; import files use the bulk layout (USER_ID, ITEM_ID, TIMESTAMP, ...)",
            )
        )
    missing = [name for name in REQUIRED_COLUMNS[entity.name] if name not in columns]
    if missing:
        problems.append(
            Problem(1, "missing_column", f"the header (line 1) lacks the required column(s) {_names(missing)}")
        )
    if schema is not None:
        fields = {str(field.get("name")): field for field in schema.get("fields", [])}
        unknown = [name for name in columns if name not in fields and name not in STANDARD_COLUMNS[entity.name]]
        if unknown:
            problems.append(
                Problem(
                    1,
                    "unknown_column",
                    f"the header (line 1) has column(s) {_names(unknown)} that the dataset's schema does not "
                    f"define; schema fields: {_names(sorted(fields))}",
                )
            )
        required = [name for name, field in fields.items() if not _nullable(field) and name not in columns]
        if required:
            problems.append(
                Problem(1, "missing_column", f"the header (line 1) lacks schema field(s) {_names(required)}")
            )
    return columns, problems


def check_sample(
    entity: Entity,
    body: IO[bytes],
    key: str,
    sample_rows: int,
    source: Any,
    schema: Mapping[str, Any] | None = None,
) -> tuple[int, list[Problem]]:
    """Validate the first ``sample_rows`` rows with the streaming path's ``prepare``; return (rows, problems).

    ``source`` builds each row's SourceRef from its line (``ObjectRef.source``). ``schema`` is the dataset's Avro
    record (:func:`parse_schema`); when given, the rows are also checked against it as the streaming path checks
    them (personalize_ingest.schema).
    """
    problems: list[Problem] = []
    checked = 0
    dataset_schema = _compiled(entity, schema)
    # NOTE: PutEvents needs an event type on every event, an interactions dataset does not (EVENT_TYPE is an
    # optional schema field; the header check enforces it when the schema requires it): rows without one are
    # checked as if they had one.
    event_type = ABSENT_EVENT_TYPE if entity.name == "events" else None
    try:
        for row in islice(_rows(body, key), sample_rows):
            checked += 1
            record = Record("sample", source(line=row.line), row.value, 0.0, decode_error=row.error)
            try:
                prepare(entity, record, default_event_type=event_type, schema=dataset_schema)
            except RecordRejected as refused:
                if len(problems) < MAX_PROBLEMS:
                    problems.append(Problem(row.line, refused.rejection.code, refused.rejection.reason))
    except ObjectFormatError as exc:
        problems.append(Problem(1, "invalid_csv", str(exc)))
    if checked == 0 and not problems:
        problems.append(Problem(2, "empty_file", "the file has a header but no rows"))
    return checked, problems


def _compiled(entity: Entity, schema: Mapping[str, Any] | None) -> DatasetSchema | None:
    if schema is None:
        return None
    # NOTE: imported here, as the invocation does, so a function without the import route loads no schema code.
    from personalize_ingest.schema import DatasetSchema, SchemaError, member_columns

    try:
        return DatasetSchema.from_avro(schema, member_columns(entity))
    except SchemaError:
        return None  # parse_schema already refused what is not a record; the header check names the columns


def _rows(body: IO[bytes], key: str) -> Iterator[Any]:
    return iter_rows(body, key)


def parse_schema(document: str) -> Mapping[str, Any] | None:
    """DescribeSchema's ``schema`` (an Avro record as a JSON string) -> the record, None when unusable."""
    try:
        schema = json.loads(document)
    except ValueError:
        return None
    return schema if isinstance(schema, dict) and isinstance(schema.get("fields"), list) else None


def _nullable(field: Mapping[str, Any]) -> bool:
    kind = field.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind)


def _names(names: list[str]) -> str:
    shown = [name if len(name) <= 40 else name[:37] + "..." for name in names[:8]]
    return ", ".join(shown) + (", ..." if len(names) > 8 else "")
