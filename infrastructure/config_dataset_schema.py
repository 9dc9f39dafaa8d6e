"""The dataset schema an entity's records are checked against (personalize_ingest.schema), in the configuration.

Two keys of an entity, at most one of them:

- ``schema``: the dataset's Avro schema itself, as a JSON object; checked at synth by the runtime's own parser (a
  schema the function could not read stops the synth, naming the key) and passed in ``DATASET_SCHEMA``;
- ``schema: "fromDataset"`` (items, users, actions): the function reads the target dataset's schema from the
  service once per container (DescribeDataset, then DescribeSchema; ``DATASET_SCHEMA_ARN=dataset``);
- ``schemaArn``: a schema ARN the function reads with DescribeSchema (``DATASET_SCHEMA_ARN``).

An inline schema travels in an environment variable, and Lambda allows 4 KB of them per function in all
(keys and values): :data:`INLINE_SCHEMA_MAX_CHARS` leaves the rest to the other variables, and a larger schema is
refused with the way out (its ARN).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from infrastructure.config_fields import invalid, show
from personalize_ingest.contract import SCHEMA_ARN_PATTERN
from personalize_ingest.entities import Entity
from personalize_ingest.schema import DatasetSchema, SchemaError, member_columns, parse_document

FROM_DATASET = "fromDataset"
"""``schema`` value: the target dataset's own schema, read from the service by the function."""
INLINE_SCHEMA_MAX_CHARS = 3072
"""Compact JSON characters an inline schema may take of the function's 4 KB of environment variables (the others
- target, rejects queue URL, knobs, Powertools names - take well under the remaining 1 KB)."""
SCHEMA_ARN_FORM = "a schema ARN (arn:aws:personalize:<region>:<account>:schema/<name>)"


def _schema_form(value: Any) -> Any:
    if value is None or value == FROM_DATASET or isinstance(value, Mapping):
        return value
    raise invalid(
        f"expected the dataset's Avro schema as a JSON object, or \"{FROM_DATASET}\" (the target dataset's "
        f"schema, read by the function), got {show(value)}"
    )


SCHEMA_FORM = BeforeValidator(_schema_form)


def compact(document: Mapping[str, Any]) -> str:
    """The schema as the function receives it: compact JSON (ASCII, so characters are bytes)."""
    return json.dumps(document, separators=(",", ":"))


def checked_inline(document: Mapping[str, Any], entity: Entity) -> PydanticCustomError | None:
    """None when the function can read ``document`` as ``entity``'s dataset schema, else the error (at ``schema``)
    saying why - in the runtime's own words, since it is the runtime's parser that reads it."""
    text = compact(document)
    members = member_columns(entity)
    try:
        parsed = parse_document(text, "the schema")
        DatasetSchema.from_avro(parsed, members)
    except SchemaError as exc:
        return invalid(f"expected the dataset's Avro record schema: {exc}; got {show(document)}", "schema")
    if entity.dataset_type is not None:
        # NOTE: a dataset of items, users or actions is keyed by its id field (ITEM_ID, USER_ID, ACTION_ID): a
        # schema without it is another dataset's (a users schema given to items, say), whose checks would refuse
        # every good record's properties.
        names = sorted(str(field.get("name", "")) for field in parsed["fields"] if isinstance(field, Mapping))
        missing = sorted(members - {name.upper() for name in names})
        if missing:
            return invalid(
                f"expected the {entity.dataset_type} dataset's schema, with a field {', '.join(missing)}; got one "
                f"with the fields {', '.join(names) or 'none'}",
                "schema",
            )
    if len(text) > INLINE_SCHEMA_MAX_CHARS:
        return invalid(
            f"expected at most {INLINE_SCHEMA_MAX_CHARS} characters of compact JSON (it travels in an environment "
            f"variable, and Lambda allows 4 KB of them per function), got {len(text)}: give the schema's ARN in "
            f'schemaArn, or "{FROM_DATASET}" for the target dataset\'s schema',
            "schema",
        )
    return None


def schema_region(schema_arn: str) -> str:
    """The region of a schema ARN already checked against SCHEMA_ARN_PATTERN."""
    match = SCHEMA_ARN_PATTERN.match(schema_arn)
    assert match is not None, "checked by the schemaArn field"
    return match.group("region")
