"""Import route decisions, settings, header checks and job names (no network)."""

from __future__ import annotations

import json
import re

import pytest

from personalize_ingest.bulk_checks import check_header
from personalize_ingest.bulk_import import marker_key, notification_body
from personalize_ingest.bulk_routing import IMPORT, STREAM, BulkImportSettings, Probe, decide
from personalize_ingest.config import ConfigurationError
from personalize_ingest.entities import ENTITIES, EVENTS, ITEMS
from personalize_ingest.import_jobs import job_name
from personalize_ingest.sources import ObjectRef, decode_event
from tests.support import factories as f

ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS"
ROLE = "arn:aws:iam::123456789012:role/personalize-import"
SETTINGS = BulkImportSettings(
    dataset_arn=ITEMS_ARN, role_arn=ROLE, min_rows=1000, min_bytes=None, sample_rows=10, wait_seconds=300
)


def csv_probe(rows: int, size: int | None = None, width: int = 20) -> Probe:
    line = b"i" * (width - 1) + b"\n"
    body = b"ITEM_ID,GENRES\n" + line * rows
    return Probe(size or len(body), body[: 64 * 1024])


@pytest.mark.parametrize(
    ("key", "probe", "path", "why"),
    [
        ("items/a.csv", csv_probe(999), STREAM, "below the 1000-row threshold"),
        ("items/a.csv", csv_probe(1000), IMPORT, "at or above the 1000-row threshold"),
        ("items/a.csv", csv_probe(10, size=2_000_000), IMPORT, "at or above"),
        ("items/import/a.csv", csv_probe(3), IMPORT, "under items/import/"),
        ("items/stream/a.csv", csv_probe(5000), STREAM, "under items/stream/"),
        ("items/a.jsonl", Probe(10**9, b'{"itemId": "a"}\n'), STREAM, "plain CSV only"),
        ("items/a.csv.gz", Probe(10**9, b"\x1f\x8b\x08"), STREAM, "plain CSV only"),
        ("items/noext", Probe(10**9, b'{"itemId": "a"}\n'), STREAM, "plain CSV only"),
    ],
)
def test_route_decisions(key: str, probe: Probe, path: str, why: str) -> None:
    route = decide(ITEMS, SETTINGS, key, probe)
    assert route.path == path and why in route.reason


def test_interactions_below_a_thousand_rows_stream_even_when_forced() -> None:
    route = decide(EVENTS, SETTINGS, "events/import/a.csv", csv_probe(999))
    assert route.path == STREAM and "at least 1000 records" in route.reason
    assert decide(EVENTS, SETTINGS, "events/import/a.csv", csv_probe(1000)).path == IMPORT


def test_route_off_streams() -> None:
    assert decide(ITEMS, None, "items/a.csv", None).path == STREAM


def test_min_bytes_threshold() -> None:
    by_bytes = BulkImportSettings(ITEMS_ARN, ROLE, min_rows=10**9, min_bytes=1000, sample_rows=1, wait_seconds=0)
    assert decide(ITEMS, by_bytes, "items/a.csv", csv_probe(60)).path == IMPORT
    assert decide(ITEMS, by_bytes, "items/a.csv", csv_probe(40)).path == STREAM


def test_row_estimate_is_exact_for_small_objects_and_close_for_large_ones() -> None:
    assert csv_probe(123).estimated_rows == 123
    assert Probe(0, b"").estimated_rows == 0
    # A 20-byte-per-row object of 1,000,000 rows, of which the probe saw the first 64 KiB.
    large = csv_probe(5000, size=15 + 20 * 1_000_000)
    assert abs(large.estimated_rows - 1_000_000) < 1_000


def test_settings_from_the_environment() -> None:
    base = {"BULK_IMPORT_ENABLED": "true", "PERSONALIZE_DATASET_ARN": ITEMS_ARN, "BULK_IMPORT_ROLE_ARN": ROLE}
    settings = BulkImportSettings.from_env(ITEMS, base)
    assert settings is not None and settings.dataset_arn == ITEMS_ARN and settings.min_rows == 60_000
    assert BulkImportSettings.from_env(ITEMS, {}) is None
    with pytest.raises(ConfigurationError, match="BULK_IMPORT_ROLE_ARN"):
        BulkImportSettings.from_env(ITEMS, {**base, "BULK_IMPORT_ROLE_ARN": ""})
    with pytest.raises(ConfigurationError, match="INTERACTIONS dataset"):
        BulkImportSettings.from_env(EVENTS, {**base, "PERSONALIZE_TRACKING_ID": "tracker"})
    with pytest.raises(ConfigurationError, match="BULK_IMPORT_MIN_ROWS"):
        BulkImportSettings.from_env(ITEMS, {**base, "BULK_IMPORT_MIN_ROWS": "many"})
    with pytest.raises(ConfigurationError, match="BULK_IMPORT_ENABLED"):
        BulkImportSettings.from_env(ITEMS, {**base, "BULK_IMPORT_ENABLED": "yes"})


@pytest.mark.parametrize(
    ("header", "schema", "codes"),
    [
        (b"ITEM_ID,GENRES\n", None, []),
        (b"itemId,GENRES\n", None, ["not_bulk_layout", "missing_column"]),
        (b"ITEM_ID,COLOUR\n", {"fields": [{"name": "ITEM_ID", "type": "string"}]}, ["unknown_column"]),
        (b"ITEM_ID\n", {"fields": [{"name": "PRICE", "type": "float"}]}, ["missing_column"]),
        (b"ITEM_ID\n", {"fields": [{"name": "PRICE", "type": ["null", "float"]}]}, []),
        (b"", None, ["empty_file"]),
    ],
)
def test_header_checks(header: bytes, schema: dict | None, codes: list[str]) -> None:
    _, problems = check_header(ITEMS, header, schema)
    assert [p.code for p in problems] == codes
    assert all(p.line == 1 for p in problems)


def test_job_names_are_deterministic_valid_and_per_version() -> None:
    ref = ObjectRef("bucket", "items/a.csv", None, "etag-1", 0.0)
    names = {entity.name: job_name(entity, ref) for entity in ENTITIES.values()}
    for name in names.values():
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_-]*", name) and len(name) <= 63
    assert job_name(ITEMS, ref) == job_name(ITEMS, ObjectRef("bucket", "items/a.csv", None, "etag-1", 5.0))
    assert job_name(ITEMS, ref) != job_name(ITEMS, ObjectRef("bucket", "items/a.csv", None, "etag-2", 0.0))
    assert marker_key(ITEMS, "n") == "results/items/.import-jobs/n.json"


def test_a_waiting_files_notification_decodes_to_the_same_object() -> None:
    ref = ObjectRef("bucket", "items/big file+1.csv", "v1", "etag", 1795978246.0)
    message = f.sqs_message(notification_body(ref))
    (item,) = decode_event(f.sqs_event([message])).items
    (again,) = item.objects
    assert (again.bucket, again.key, again.version_id, again.etag) == (ref.bucket, ref.key, "v1", "etag")
    assert json.loads(notification_body(ref))["Records"][0]["eventName"] == "ObjectCreated:Put"
