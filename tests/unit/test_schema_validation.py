"""Records checked against the dataset's Avro schema: names, types, categorical lengths, required fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from personalize_ingest.config import ConfigurationError, Settings
from personalize_ingest.entities import EVENTS, ITEMS
from personalize_ingest.model import Prepared, Record, RecordRejected, SourceRef
from personalize_ingest.records import prepare
from personalize_ingest.schema import DatasetSchema, member_columns, schema_for
from tests.support.schemas import INTERACTIONS_WITH_DEVICE_SCHEMA

ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
TRACKER = "a1b2c3d4-0000-4000-8000-000000000000"
ITEMS_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Items",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "PRICE", "type": "float"},
        {"name": "STOCK", "type": ["null", "int"]},
        {"name": "ON_SALE", "type": ["null", "boolean"]},
        {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
        {"name": "CREATION_TIMESTAMP", "type": "long"},
    ],
    "version": "1.0",
}
INTERACTIONS_SCHEMA = INTERACTIONS_WITH_DEVICE_SCHEMA


def items_schema() -> DatasetSchema:
    return DatasetSchema.from_avro(ITEMS_SCHEMA, member_columns(ITEMS))


def record(value: dict[str, Any], line: int = 2) -> Record:
    source = SourceRef("aws:s3", bucket="b", key="items/catalog.csv", etag="0" * 32, line=line)
    return Record("item", source, value, 1_795_978_246.0)


def prepared_item(value: dict[str, Any]) -> Prepared:
    return prepare(ITEMS, record(value), schema=items_schema())


GOOD = {"ITEM_ID": "i-1", "PRICE": "9.5", "CREATION_TIMESTAMP": "1795978246", "GENRES": "Comedy|Drama"}


def test_the_members_of_the_api_are_not_metadata_fields() -> None:
    assert set(items_schema().fields) == {"genres", "price", "stock", "onSale", "description", "creationTimestamp"}
    assert items_schema().required == ("price", "creationTimestamp")


def test_a_record_that_fits_the_schema_is_prepared_as_without_it() -> None:
    # GIVEN a bulk-style row whose numeric cells are text (as in a CSV)
    # WHEN prepared with and without the schema / THEN the element is the same
    assert prepared_item(GOOD).element == prepare(ITEMS, record(GOOD)).element


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        (
            {"GENRE": "Comedy"},
            "unknown_field",
            "column GENRE (property 'genre') is not a field of the dataset schema; did you mean 'genres'?",
        ),
        (
            {"PRICE": "cheap"},
            "invalid_type",
            "column PRICE (property 'price') must be a number (dataset schema field PRICE), got a text",
        ),
        ({"STOCK": "2.5"}, "invalid_type", "must be an integer or null (dataset schema field STOCK)"),
        ({"STOCK": "3000000000"}, "out_of_range", "does not fit the int field STOCK"),
        ({"ON_SALE": "maybe"}, "invalid_type", "must be a boolean or null"),
        (
            {"GENRES": "x" * 1001},
            "too_long",
            "is 1,001 characters; the dataset schema's categorical field GENRES takes at most 1,000",
        ),
        ({"DESCRIPTION": "x" * 20_001}, "too_long", "textual field DESCRIPTION takes at most 20,000"),
        ({"PRICE": None}, "missing_field", "column PRICE (property 'price') is required by the dataset schema"),
    ],
)
def test_a_record_that_breaks_the_schema_is_rejected_naming_the_field_and_the_rule(
    change: dict[str, Any], code: str, fragment: str
) -> None:
    # GIVEN a good row changed to break one rule
    value = {key: val for key, val in {**GOOD, **change}.items() if val is not None}

    # WHEN prepared against the schema / THEN it is rejected with the code and a reason naming column and rule
    with pytest.raises(RecordRejected) as rejected:
        prepared_item(value)
    assert rejected.value.rejection.code == code
    assert fragment in rejected.value.rejection.reason


@pytest.mark.parametrize(
    "change",
    [{"ON_SALE": "TRUE"}, {"ON_SALE": True}, {"STOCK": 3}, {"STOCK": "-7"}, {"PRICE": 4}, {"GENRES": ["A", "B"]}],
)
def test_values_of_the_fields_type_pass(change: dict[str, Any]) -> None:
    # camelCase keys and JSON types, as a Kinesis producer sends them
    properties: dict[str, Any] = {"price": 1.5, "creationTimestamp": 1_795_978_246}
    properties.update({key.lower().replace("on_sale", "onSale"): val for key, val in change.items()})
    value = {"itemId": "i-1", "properties": properties}
    assert prepare(ITEMS, record(value), schema=items_schema()).element["itemId"] == "i-1"


def test_a_json_type_the_field_cannot_hold_is_rejected() -> None:
    value = {"itemId": "i-1", "properties": {"price": True, "creationTimestamp": 1}}
    with pytest.raises(RecordRejected, match=r"properties.price must be a number .* got a boolean"):
        prepare(ITEMS, record(value), schema=items_schema())


def test_events_properties_are_checked_against_the_interactions_schema() -> None:
    schema = DatasetSchema.from_avro(INTERACTIONS_SCHEMA, member_columns(EVENTS))
    event = {"userId": "u-1", "itemId": "i-1", "eventType": "click", "properties": {"devise": "ios"}}
    with pytest.raises(RecordRejected, match=r"properties.devise .*did you mean 'device'\?"):
        prepare(EVENTS, Record("1", SourceRef("aws:kinesis", sequence_number="1"), event, 0.0), schema=schema)
    event["properties"] = {"device": "ios"}
    assert prepare(EVENTS, Record("1", SourceRef("aws:kinesis", sequence_number="1"), event, 0.0), schema=schema)


def test_the_schema_is_configured_inline_from_a_file_or_by_arn(tmp_path: Path) -> None:
    # GIVEN the three ways to name a schema
    path = tmp_path / "items.avsc"
    path.write_text(json.dumps(ITEMS_SCHEMA))
    base = {"PERSONALIZE_DATASET_ARN": ITEMS_ARN}
    arn = "arn:aws:personalize:us-east-1:123456789012:schema/items-schema"

    # WHEN read / THEN each gives its source, and the inline and file ones compile to the same rules
    inline = Settings.from_env(ITEMS, {**base, "DATASET_SCHEMA": json.dumps(ITEMS_SCHEMA)})
    from_file = Settings.from_env(ITEMS, {**base, "DATASET_SCHEMA_FILE": str(path)})
    by_arn = Settings.from_env(ITEMS, {**base, "DATASET_SCHEMA_ARN": arn})
    assert by_arn.schema_source == ("arn", arn)
    compiled = [schema_for(ITEMS, s.schema_source, ITEMS_ARN, lambda: None) for s in (inline, from_file)]
    assert compiled[0] is not None and compiled[1] is not None
    assert compiled[0].fields == compiled[1].fields == items_schema().fields


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATASET_SCHEMA": "{not json"}, "DATASET_SCHEMA is not valid JSON"),
        ({"DATASET_SCHEMA": '{"type": "record"}'}, "not an Avro record schema with a 'fields' list"),
        ({"DATASET_SCHEMA_FILE": "missing/items.avsc"}, "DATASET_SCHEMA_FILE 'missing/items.avsc' cannot be read"),
        ({"DATASET_SCHEMA_ARN": "items"}, "DATASET_SCHEMA_ARN must be a schema ARN"),
        ({"DATASET_SCHEMA": "{}", "DATASET_SCHEMA_ARN": "dataset"}, "set at most one of"),
    ],
)
def test_a_schema_setting_that_cannot_be_used_is_a_configuration_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(ITEMS, {"PERSONALIZE_DATASET_ARN": ITEMS_ARN, **env})


def test_a_tracker_function_cannot_look_its_schema_up_by_dataset() -> None:
    with pytest.raises(ConfigurationError, match="needs a dataset ARN target"):
        Settings.from_env(EVENTS, {"PERSONALIZE_TRACKING_ID": TRACKER, "DATASET_SCHEMA_ARN": "dataset"})
