"""Avro dataset schemas the tests, the emulator fixtures and the benchmarks share (Personalize's schema layout)."""

from __future__ import annotations

from typing import Any


def avro_schema(name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """A Personalize dataset schema document named ``name`` with ``fields`` (Avro record layout)."""
    return {
        "type": "record",
        "name": name,
        "namespace": "com.amazonaws.personalize.schema",
        "fields": fields,
        "version": "1.0",
    }


SHOP_ITEMS_SCHEMA = avro_schema(
    "Items",
    [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "PRICE", "type": "float"},
    ],
)
"""A small catalogue: an id, a categorical genre list and a required price."""

INTERACTIONS_WITH_DEVICE_SCHEMA = avro_schema(
    "Interactions",
    [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "DEVICE", "type": ["null", "string"], "categorical": True},
    ],
)
"""Interactions with one categorical metadata field (events' ``properties``: ``{"device": ...}``)."""
