"""The ``bulkImport`` key of an entity in the ``personalize`` context: the import route's settings.

```json
"items": {
  "datasetArn": "arn:aws:personalize:...:dataset/shop/ITEMS",
  "sources": {"s3": true},
  "bulkImport": {"minRows": 60000, "minBytes": 50000000, "sampleRows": 1000, "waitSeconds": 300}
}
```

``true`` turns the route on with the defaults; ``false`` or an absent key leaves it off. The two interactions
entities need ``datasetArn`` (their functions target an event tracker, the import targets the dataset behind it).
The route needs the entity's ``s3`` source. infrastructure/config.py declares the key on the entity model and calls
:func:`parse_bulk_import` once the entity's target and sources are known; errors name the key path as the other
keys' errors do (``personalize.entities.items.bulkImport.minRows: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from infrastructure.config_fields import invalid, show
from personalize_ingest.bulk_routing import (
    DEFAULT_MIN_ROWS,
    DEFAULT_SAMPLE_ROWS,
    DEFAULT_WAIT_SECONDS,
    INTERACTION_DATASET_TYPES,
    MAX_SQS_DELAY_SECONDS,
)
from personalize_ingest.entities import Entity

KEY = "bulkImport"
_KEYS = ("enabled", "minRows", "minBytes", "datasetArn", "sampleRows", "waitSeconds")
_DATASET_ARN = re.compile(r"^arn:[a-z\d-]+:personalize:[a-z\d-]+:\d{12}:dataset/[^/]+/(?P<type>[A-Z_]+)$")


@dataclass(frozen=True, slots=True)
class BulkImportConfig:
    """The import route of one entity."""

    dataset_arn: str
    min_rows: int
    min_bytes: int | None
    sample_rows: int
    wait_seconds: int


def parse_bulk_import(value: object, entity: Entity, target: str, has_s3: bool) -> BulkImportConfig | None:
    """The entity's ``bulkImport`` value -> its settings; None when the route is off.

    Raises
    ------
    pydantic_core.PydanticCustomError
        from :func:`infrastructure.config_fields.invalid`, its ``at`` the key path below the entity
        (``bulkImport.minRows``), so the loader names the full path.
    """
    if value is None or value is False:
        return None
    raw: Mapping[str, object] = {} if value is True else value if isinstance(value, Mapping) else {"?": value}
    if "?" in raw:
        raise invalid(f"expected true, false or a JSON object, got {show(value)}", KEY)
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise invalid(f"unknown key; expected one of {', '.join(_KEYS)}", f"{KEY}.{unknown[0]}")
    if raw.get("enabled", True) is False:
        return None
    if not has_s3:
        raise invalid("the import route reads files dropped into S3; enable the entity's s3 source", KEY)
    dataset_type = INTERACTION_DATASET_TYPES.get(entity.name, entity.dataset_type)
    default_arn = target if entity.dataset_type is not None else None
    dataset_arn = raw.get("datasetArn", default_arn)
    match = _DATASET_ARN.match(dataset_arn) if isinstance(dataset_arn, str) else None
    if match is None or match.group("type") != dataset_type:
        raise invalid(
            f"expected the ARN of the {dataset_type} dataset the import jobs load "
            f"(arn:aws:personalize:<region>:<account>:dataset/<dataset group>/{dataset_type}), "
            f"got {show(dataset_arn)}",
            f"{KEY}.datasetArn",
        )
    assert isinstance(dataset_arn, str)
    return BulkImportConfig(
        dataset_arn=dataset_arn,
        min_rows=_integer(raw, "minRows", 1) or DEFAULT_MIN_ROWS,
        min_bytes=_integer(raw, "minBytes", 1),
        sample_rows=_integer(raw, "sampleRows", 1, high=100_000) or DEFAULT_SAMPLE_ROWS,
        wait_seconds=_or(_integer(raw, "waitSeconds", 0, high=MAX_SQS_DELAY_SECONDS), DEFAULT_WAIT_SECONDS),
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _integer(raw: Mapping[str, object], key: str, low: int, high: int = 10**15) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(f"expected an integer from {low} to {high}, got {show(value)}", f"{KEY}.{key}")
    return value
