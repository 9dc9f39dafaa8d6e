"""Check records against the dataset's Avro schema, so the service never refuses a call for a record we could see.

Without the schema a record with a property the dataset does not have, a value of the wrong type or a categorical
value that is too long passes local validation; the service refuses its whole call (InvalidInputException, no
per-record status) and the call is split in halves until the record stands alone: up to 7 calls for one bad record
in a call of ten. With the schema it is rejected locally, naming the field and the rule, and its call goes out
without it.

Where the schema comes from (settings in :mod:`personalize_ingest.config`, at most one):

- ``DATASET_SCHEMA``: the Avro schema JSON itself;
- ``DATASET_SCHEMA_FILE``: a path to it (relative paths from the function's code root, so a file bundled next to
  the handlers works);
- ``DATASET_SCHEMA_ARN``: a schema ARN read once per container with DescribeSchema, or ``dataset`` to look the
  dataset's schema up with DescribeDataset (items, users, actions) then DescribeSchema. The function's role needs
  ``personalize:DescribeSchema`` (and ``personalize:DescribeDataset``). When the look-up fails the function logs it
  and validates without the schema: a missing permission never sets good records aside.

Checks on the record's ``properties`` (the schema's metadata fields, camelCase):

- every key is a field of the schema (``unknown_field``, with "did you mean" for the closest field);
- each value has the field's type - string, int, long, float, double, boolean, and unions with null
  (``invalid_type``; ``out_of_range`` for an int or long beyond 32 / 64 bits). Numeric and boolean fields also take
  the text of a number or boolean (a CSV cell);
- categorical strings at most 1,000 characters, textual strings at most 20,000 (``too_long``);
- every metadata field whose type has no ``null`` is present (``missing_field``).

Fields the API carries as members (``ITEM_ID``, ``USER_ID``, ``TIMESTAMP``, ``EVENT_TYPE`` ...) are checked by the
service model (:mod:`personalize_ingest.validation`), not here.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from personalize_ingest.contract import SCHEMA_FROM_DATASET
from personalize_ingest.entities import Entity
from personalize_ingest.model import RecordRejected
from personalize_ingest.record_layout import BULK_COLUMNS, camel_case
from personalize_ingest.validation import (
    INVALID_TYPE,
    MISSING_FIELD,
    OUT_OF_RANGE,
    TOO_LONG,
    UNKNOWN_FIELD,
    describe,
    rules_for,
)

logger = Logger(child=True)

CATEGORICAL_MAX_CHARS = 1_000
"""Personalize: "Categorical values can have at most 1000 characters" (dataset schema requirements)."""
TEXTUAL_MAX_CHARS = 20_000
"""Personalize: a textual field holds at most 20,000 characters."""
CODE_ROOT = Path(__file__).resolve().parent.parent
"""The function's code root (``functions/`` here, the asset's root in Lambda): relative schema paths start here."""
_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_INTEGER_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER_TEXT = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_BOOLEAN_TEXT = frozenset({"true", "false"})

Where = Callable[[str], str]
"""Property key -> how a reason names it (``column GENRES (property 'genres')`` or ``properties.genres``)."""


class SchemaError(ValueError):
    """The schema document is not an Avro record schema this module can read."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One metadata field of the schema, as a properties key sees it."""

    name: str
    """The schema's field name (``GENRES``)."""
    types: frozenset[str]
    """Avro primitive types of the field, ``null`` excluded."""
    nullable: bool
    categorical: bool
    textual: bool

    def check(self, value: Any, where: str) -> None:
        """Raise :class:`RecordRejected` when ``value`` cannot be this field's value."""
        types = self.types
        if isinstance(value, bool):
            if "boolean" not in types:
                raise self._wrong(where, value)
        elif isinstance(value, int):
            if not types & {"int", "long", "float", "double"}:
                raise self._wrong(where, value)
            self._check_range(value, where)
        elif isinstance(value, float):
            if types & {"float", "double"}:
                return
            if not (types & {"int", "long"} and value.is_integer()):
                raise self._wrong(where, value)
            self._check_range(int(value), where)
        elif isinstance(value, str):
            self._check_text(value, where)

    def _check_text(self, value: str, where: str) -> None:
        types = self.types
        if "string" in types:
            limit = CATEGORICAL_MAX_CHARS if self.categorical else TEXTUAL_MAX_CHARS if self.textual else None
            if limit is not None and len(value) > limit:
                kind = "categorical" if self.categorical else "textual"
                raise RecordRejected(
                    TOO_LONG,
                    f"{where} is {len(value):,} characters; the dataset schema's {kind} field {self.name} takes "
                    f"at most {limit:,}",
                )
            return
        if types & {"int", "long"} and _INTEGER_TEXT.match(value):
            self._check_range(int(value), where)
            return
        if types & {"float", "double"} and _NUMBER_TEXT.match(value):
            return
        if "boolean" in types and value.strip().lower() in _BOOLEAN_TEXT:
            return
        if types:
            raise RecordRejected(
                INVALID_TYPE, f"{where} must be {self._expected()} (dataset schema field {self.name}), got a text"
            )

    def _check_range(self, value: int, where: str) -> None:
        ranges = [_INT_RANGES[kind] for kind in ("long", "int") if kind in self.types]
        if ranges and not self.types & {"float", "double"}:
            low, high = ranges[0]
            if not low <= value <= high:
                raise RecordRejected(
                    OUT_OF_RANGE, f"{where} does not fit the {'/'.join(sorted(self.types))} field {self.name}"
                )

    def _wrong(self, where: str, value: Any) -> RecordRejected:
        return RecordRejected(
            INVALID_TYPE,
            f"{where} must be {self._expected()} (dataset schema field {self.name}), got {describe(value)}",
        )

    def _expected(self) -> str:
        names = {"string": "a string", "boolean": "a boolean", "int": "an integer", "long": "an integer"}
        shown = sorted({names.get(kind, "a number") for kind in self.types})
        return " or ".join(shown) + (" or null" if self.nullable else "")


class DatasetSchema:
    """The metadata fields of one dataset's schema, keyed by their properties key (camelCase).

    Parameters
    ----------
    fields
        Properties key -> rule, for the fields that travel in ``properties`` (not the API's members).
    """

    def __init__(self, fields: Mapping[str, FieldRule]) -> None:
        self.fields = dict(fields)
        self.required = tuple(key for key, rule in self.fields.items() if not rule.nullable)
        self._folded = {key.lower(): key for key in self.fields}

    @classmethod
    def from_avro(cls, document: Mapping[str, Any], member_columns: frozenset[str]) -> DatasetSchema:
        """Read an Avro record schema; ``member_columns`` are the field names the API carries as members.

        Raises
        ------
        SchemaError
            When the document is not an Avro record schema with a ``fields`` list.
        """
        fields = document.get("fields") if isinstance(document, Mapping) else None
        if not isinstance(fields, list):
            raise SchemaError("the dataset schema must be an Avro record schema with a 'fields' list")
        rules: dict[str, FieldRule] = {}
        for field in fields:
            if not isinstance(field, Mapping) or not isinstance(field.get("name"), str):
                raise SchemaError("every field of the dataset schema needs a 'name'")
            name = field["name"]
            if name.upper() in member_columns:
                continue
            types = _types(field.get("type"))
            rules[camel_case(name)] = FieldRule(
                name=name,
                types=frozenset(types - {"null"}),
                nullable="null" in types,
                categorical=bool(field.get("categorical")),
                textual=bool(field.get("textual")),
            )
        return cls(rules)

    def check(self, properties: Mapping[str, Any], where: Where, *, bulk: bool = False) -> None:
        """Check a record's flattened properties (null / empty values already left out); ``bulk``: the record is
        bulk style, so a missing field is named by its column.

        Raises
        ------
        RecordRejected
            ``unknown_field``, ``invalid_type``, ``out_of_range``, ``too_long`` or ``missing_field``, naming the
            property (its column in bulk style) and the schema field.
        """
        for key, value in properties.items():
            rule = self.fields.get(key)
            if rule is None:
                raise RecordRejected(UNKNOWN_FIELD, self._unknown(key, where))
            rule.check(value, where(key))
        for key in self.required:
            if key not in properties:
                rule = self.fields[key]
                named = f"column {rule.name} (property {key!r})" if bulk else where(key)
                raise RecordRejected(
                    MISSING_FIELD,
                    f"{named} is required by the dataset schema (field {rule.name} has no null in its type)",
                )

    def _unknown(self, key: str, where: Where) -> str:
        guess = self._folded.get(key.replace("_", "").lower())
        if guess is None:
            close = difflib.get_close_matches(key, list(self.fields), n=1, cutoff=0.6)
            guess = close[0] if close else None
        hint = f"; did you mean {guess!r}?" if guess else ""
        known = ", ".join(self.fields) or "none"
        return f"{where(key)} is not a field of the dataset schema{hint} (its metadata fields: {known})"


def _types(avro_type: Any) -> set[str]:
    if isinstance(avro_type, str):
        return {avro_type}
    if isinstance(avro_type, list):
        return set().union(*(_types(member) for member in avro_type)) if avro_type else set()
    if isinstance(avro_type, Mapping):
        return _types(avro_type.get("type"))
    return set()


# ---------------------------------------------------------------------------------------------------- loading


def parse_document(text: str, origin: str) -> dict[str, Any]:
    """The schema JSON ``text`` (from ``origin``, for the message) as an object.

    Raises
    ------
    SchemaError
        When it is not JSON or not an Avro record schema.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"{origin} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("fields"), list):
        raise SchemaError(f"{origin} is not an Avro record schema with a 'fields' list")
    return document


def read_file(path: str) -> dict[str, Any]:
    """The schema document at ``path`` (relative to :data:`CODE_ROOT` unless absolute)."""
    location = Path(path)
    if not location.is_absolute():
        location = CODE_ROOT / location
    try:
        text = location.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"DATASET_SCHEMA_FILE {path!r} cannot be read: {exc.strerror or exc}") from None
    return parse_document(text, f"DATASET_SCHEMA_FILE {path!r}")


_fetched: dict[tuple[str, str], dict[str, Any] | None] = {}
_fetch_lock = threading.Lock()


def fetch_document(schema_arn: str, target: str, client_factory: Callable[[], Any]) -> dict[str, Any] | None:
    """The schema document named by ``DATASET_SCHEMA_ARN``, read once per container; None when it cannot be read.

    ``schema_arn`` is a schema ARN (DescribeSchema) or ``dataset`` (DescribeDataset of ``target``, then
    DescribeSchema). A failure is logged once and remembered: the container validates without the schema.
    """
    key = (schema_arn, target)
    with _fetch_lock:
        if key in _fetched:
            return _fetched[key]
        document: dict[str, Any] | None = None
        try:
            client = client_factory()
            arn = schema_arn
            if schema_arn == SCHEMA_FROM_DATASET:
                arn = client.describe_dataset(datasetArn=target)["dataset"]["schemaArn"]
            text = client.describe_schema(schemaArn=arn)["schema"]["schema"]
            document = parse_document(text, f"the schema {arn}")
        except Exception as exc:
            logger.error(
                "the dataset schema could not be read; records are validated without it",
                extra={"schema": schema_arn, "error": f"{type(exc).__name__}: {exc}"},
            )
        _fetched[key] = document
        return document


def member_columns(entity: Entity) -> frozenset[str]:
    """Schema fields ``entity``'s API carries as members (``ITEM_ID``, ``TIMESTAMP`` ...), not in properties."""
    rules = rules_for(entity)
    members = {*rules.element, *rules.request}
    return frozenset(
        column
        for column, member in BULK_COLUMNS.items()
        if (entity.timestamp_member if member is None else member) in members
    )


_schemas: dict[tuple[Entity, str, str], DatasetSchema | None] = {}


def schema_for(
    entity: Entity, source: tuple[str, str] | None, target: str, client_factory: Callable[[], Any]
) -> DatasetSchema | None:
    """The schema records of ``entity`` are checked against, or None (no schema configured, or not readable).

    ``source`` is :attr:`Settings.schema_source`: ``("inline", json)``, ``("file", path)`` or ``("arn", arn)``.
    Compiled once per container and source; ``client_factory`` gives the control-plane client for an ARN.

    Raises
    ------
    SchemaError
        For an inline or bundled schema that cannot be read (a misconfiguration: the invocation fails before any
        record is touched). A schema fetched by ARN never raises: see :func:`fetch_document`.
    """
    if source is None:
        return None
    key = (entity, *source)
    if key in _schemas:
        return _schemas[key]
    kind, value = source
    if kind == "inline":
        document: dict[str, Any] | None = parse_document(value, "DATASET_SCHEMA")
    elif kind == "file":
        document = read_file(value)
    else:
        document = fetch_document(value, target, client_factory)
    schema = DatasetSchema.from_avro(document, member_columns(entity)) if document is not None else None
    _schemas[key] = schema
    return schema
