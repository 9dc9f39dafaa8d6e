"""Write the published JSON Schema files from botocore's model and the record rules.

Run ``.venv/bin/python -m schemas.generate`` after upgrading botocore or changing the record rules;
tests/unit/test_schemas.py fails while the files in this folder differ from what this script writes.

The schemas describe a record as a producer sends it (draft 2020-12): one file per entity under ``records/``
(camelCase or bulk style) and ``reject-message.schema.json``. What JSON Schema cannot say (the length of the
serialised properties, the content of a properties *string*, duplicate property names after camelCasing) is
checked by ``personalize_ingest.records.prepare`` only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCHEMAS.parent / "functions"))

from personalize_ingest.entities import ENTITIES, Entity  # noqa: E402
from personalize_ingest.record_layout import BULK_COLUMNS, UPPER_SNAKE  # noqa: E402
from personalize_ingest.record_properties import FORBIDDEN_PROPERTY_KEYS, PROPERTIES  # noqa: E402
from personalize_ingest.validation import MemberRule, rules_for  # noqa: E402

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ABSENT: dict[str, Any] = {"enum": [None, ""]}
PROPERTY_ABSENT: dict[str, Any] = {"enum": [None, "", []]}
PROPERTY_VALUE: dict[str, Any] = {
    "description": "A schema field's value: arrays of scalars are joined with '|' (categorical fields).",
    "anyOf": [
        {"type": ["string", "number", "boolean", "null"]},
        {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
    ],
}
NUMERIC_STRING = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
POSITIVE_NUMERIC_STRING = r"^\s*\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
ISO_8601 = r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}([.,]\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?\s*$"
REJECT_CODES = (
    "invalid_json",
    "invalid_csv",
    "invalid_encoding",
    "invalid_gzip",
    "invalid_base64",
    "invalid_aggregate",
    "invalid_envelope",
    "not_an_object",
    "mixed_styles",
    "unknown_field",
    "missing_field",
    "invalid_type",
    "too_long",
    "too_short",
    "too_many_impressions",
    "too_many_values",
    "out_of_range",
    "pattern_mismatch",
    "invalid_timestamp",
    "invalid_properties",
    "forbidden_property",
    "service_rejected",
)


def _string(rule: MemberRule, *, integers: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if rule.minimum is not None:
        schema["minLength"] = rule.minimum
    if rule.maximum is not None:
        schema["maxLength"] = rule.maximum
    if rule.pattern is not None:
        schema["pattern"] = rule.pattern.pattern
    if integers:
        return {"anyOf": [schema, {"type": "integer"}]}
    return schema


def _present(rule: MemberRule, *, bulk: bool) -> dict[str, Any]:
    """Schema of a member's value when present, in the forms ``prepare`` converts."""
    kind = rule.type_name
    if kind == "string":
        return _string(rule, integers=bulk)
    if kind in ("float", "double"):
        return {"anyOf": [{"type": "number"}, {"type": "string", "pattern": NUMERIC_STRING}]}
    if kind == "timestamp":
        return {
            "description": "Epoch seconds, ms, us or ns (told apart by magnitude), or ISO-8601 (no zone = UTC).",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e20},
                {"type": "string", "pattern": POSITIVE_NUMERIC_STRING},
                {"type": "string", "pattern": ISO_8601},
            ],
        }
    if kind == "list" and rule.item is not None:
        item = rule.item
        low = item.minimum if item.minimum is not None else 0
        high = "" if item.maximum is None else item.maximum
        repeat = "*" if rule.maximum is None else f"{{0,{int(rule.maximum) - 1}}}"
        return {
            "anyOf": [
                {"type": "array", "items": _string(item, integers=bulk), **_max_items(rule)},
                {
                    "description": "'|'-separated ids",
                    "type": "string",
                    "pattern": f"^[^|]{{{low},{high}}}(\\|[^|]{{{low},{high}}}){repeat}$",
                },
            ]
        }
    if kind == "structure":
        return {
            "type": "object",
            "properties": {name: _present(member, bulk=False) for name, member in rule.members.items()},
            "required": list(rule.required),
            "additionalProperties": False,
        }
    return {}


def _max_items(rule: MemberRule) -> dict[str, Any]:
    return {} if rule.maximum is None else {"maxItems": rule.maximum}


def _optional(rule: MemberRule, schema: dict[str, Any]) -> dict[str, Any]:
    """A member the record may leave out: null and "" (an empty CSV cell) are absent, so is [] for lists."""
    options: list[dict[str, Any]] = [ABSENT]
    if rule.type_name == "list":
        options.append({"type": "array", "maxItems": 0})
    return {"anyOf": [*options, schema]}


def _forbidden_pattern(key: str, *, bulk: bool, except_columns: tuple[str, ...] = ()) -> str:
    if bulk:
        # A column becomes the property camel_case(column), whose case-folded form is the column without "_".
        body = "_*".join(key.upper()) + "_*"
        guard = "".join(
            f"(?!{column}$)" for column in except_columns if column.replace("_", "").lower() == key.lower()
        )
        return f"^{guard}{body}$"
    return "^" + "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else char for char in key) + "$"


def _properties_schema() -> dict[str, Any]:
    return {
        "description": "An object of schema fields, or a string holding one (then checked by the function only).",
        "anyOf": [
            ABSENT,
            {
                "type": "object",
                "propertyNames": {"minLength": 1},
                "patternProperties": {
                    _forbidden_pattern(key, bulk=False): PROPERTY_ABSENT for key in FORBIDDEN_PROPERTY_KEYS
                },
                "additionalProperties": PROPERTY_VALUE,
            },
            {"type": "string"},
        ],
    }


def _session_or_user(session: str, user: str) -> dict[str, Any]:
    return {
        "anyOf": [{"required": [name], "properties": {name: {"not": ABSENT}}} for name in (session, user)],
    }


def record_schema(entity: Entity) -> dict[str, Any]:
    """The JSON Schema of one ``entity`` record, camelCase or bulk style."""
    rules = rules_for(entity)
    members = {**rules.request, **rules.element}
    defaulted = {"eventType", "sessionId", "eventId", entity.timestamp_member}
    required = [
        name
        for name in (*rules.request_required, *rules.element_required)
        if name not in defaulted and name in members
    ]
    camel_properties: dict[str, Any] = {}
    for name, rule in members.items():
        if name == PROPERTIES:
            camel_properties[name] = _properties_schema()
        elif name in required:
            camel_properties[name] = _present(rule, bulk=False)
        else:
            camel_properties[name] = _optional(rule, _present(rule, bulk=False))
    camel: dict[str, Any] = {
        "title": f"{entity.name} record, camelCase style (the API's member names)",
        "type": "object",
        "properties": camel_properties,
        "required": required,
        "additionalProperties": False,
    }

    columns: dict[str, str] = {}
    for column, member in BULK_COLUMNS.items():
        target = entity.timestamp_member if member is None else member
        if target is not None and target in members and target != PROPERTIES:
            columns[column] = target
    bulk_properties = {
        column: _present(members[target], bulk=True)
        if target in required
        else _optional(members[target], _present(members[target], bulk=True))
        for column, target in columns.items()
    }
    bulk: dict[str, Any] = {
        "title": f"{entity.name} record, bulk-import style (UPPER_SNAKE columns)",
        "description": "Columns other than the entity's fields are schema fields and go into properties under "
        "their camelCase names; empty cells are absent.",
        "type": "object",
        "propertyNames": {"pattern": UPPER_SNAKE.pattern},
        "properties": bulk_properties,
        "required": [column for column, target in columns.items() if target in required],
        "patternProperties": {
            _forbidden_pattern(key, bulk=True, except_columns=tuple(columns)): PROPERTY_ABSENT
            for key in FORBIDDEN_PROPERTY_KEYS
        },
        "additionalProperties": PROPERTY_VALUE,
    }
    if "sessionId" in members:
        camel["allOf"] = [_session_or_user("sessionId", "userId")]
        bulk["allOf"] = [_session_or_user("SESSION_ID", "USER_ID")]
    return {
        "$schema": DRAFT,
        "title": f"{entity.name} input record",
        "description": f"One record for the {entity.name} function ({entity.operation}). Generated from "
        "botocore's personalize-events model by schemas/generate.py; docs/records.md explains the rules.",
        "anyOf": [{"$ref": "#/$defs/camelCase"}, {"$ref": "#/$defs/bulk"}],
        "$defs": {"camelCase": camel, "bulk": bulk},
    }


def reject_message_schema() -> dict[str, Any]:
    """The JSON Schema of one message in the rejects queue."""
    text = {"type": "string", "minLength": 1}
    return {
        "$schema": DRAFT,
        "title": "reject message",
        "description": "Body of one message in the rejects queue: an input record that cannot be delivered.",
        "type": "object",
        "properties": {
            "entity": {"enum": list(ENTITIES)},
            "code": {
                "description": "Stable machine code; docs/records.md lists them.",
                "type": "string",
                "pattern": "^[a-z][a-z0-9_]*$",
                "examples": list(REJECT_CODES),
            },
            "reason": {"type": "string", "minLength": 1},
            "source": {
                "type": "object",
                "properties": {
                    "eventSource": {"enum": ["aws:kinesis", "aws:sqs", "aws:s3"]},
                    "arn": text,
                    "sequenceNumber": text,
                    "subSequenceNumber": {"type": "integer", "minimum": 0},
                    "messageId": text,
                    "bucket": text,
                    "key": text,
                    "versionId": text,
                    "etag": text,
                    "line": {"type": "integer", "minimum": 1},
                    "index": {"type": "integer", "minimum": 0},
                },
                "required": ["eventSource"],
                "additionalProperties": False,
            },
            "record": {"description": "The record as received (JSON value, CSV row object, or raw text)."},
            "truncated": {"const": True},
        },
        "required": ["entity", "code", "reason", "source", "record"],
        "additionalProperties": False,
    }


def rendered() -> dict[Path, str]:
    """Every schema file's path and content."""
    files = {
        SCHEMAS / "records" / f"{name}.schema.json": record_schema(entity) for name, entity in ENTITIES.items()
    }
    files[SCHEMAS / "reject-message.schema.json"] = reject_message_schema()
    return {path: json.dumps(schema, indent=2) + "\n" for path, schema in files.items()}


def main() -> None:
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path.relative_to(SCHEMAS.parent))


if __name__ == "__main__":
    main()
